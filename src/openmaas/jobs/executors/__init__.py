"""Where job attempts run: ``base.Executor`` and its ``local`` and ``ray`` backends."""
