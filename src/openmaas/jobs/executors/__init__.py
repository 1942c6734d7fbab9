"""Where job attempts run: ``base.Executor`` is the interface, ``local`` and ``ray`` implement it."""
