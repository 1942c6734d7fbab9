"""Background jobs: the queue, the worker loop, executors and the attempt runner.

``queue`` holds the fenced state machine over the ``jobs`` table, ``worker``
the loop that claims, starts, heartbeats and settles attempts, ``executors``
where attempts run (forks of a local forkserver, or Ray tasks on a cluster)
and ``runner`` the code every attempt runs, whichever executor started it.
"""
