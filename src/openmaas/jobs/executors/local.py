"""Run attempts as local processes forked from a warm forkserver.

The first attempt starts a multiprocessing *forkserver* that imports the heavy
modules once (``Settings.worker_preload``: numpy, pandas, pyarrow, sklearn,
LightGBM, torch, the catalog); each attempt is a fork of it, so a tiny job
starts in tens of milliseconds instead of seconds. There is one forkserver
per process, so the preload of the first executor to start it wins.

Threads: the forkserver starts with ``OMP_NUM_THREADS`` & co. set to
``threads`` (default 1), and each attempt also applies ``threadpoolctl`` and
``torch.set_num_threads``, so concurrent jobs do not oversubscribe the CPUs.

Memory: ``poll`` sums the memory *private* to the attempt's process tree
(``Private_*`` in ``/proc/<pid>/smaps_rollup``) and kills the tree when it
exceeds the limit. Private, not ``VmRSS``: an attempt's RSS counts the
preloaded libraries it shares with the forkserver and every other attempt
(~300 MB with torch), which is not memory the job costs.

Liveness: each attempt holds the read end of a pipe whose only write end is
in the worker; when the worker dies (even by ``SIGKILL``) the pipe closes and
the attempt exits at once, so it never races the attempt that replaces it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from typing import Any

from openmaas.config import Settings
from openmaas.jobs.executors.base import Executor, Handle, Status
from openmaas.jobs.queue import Claim

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
#: Exit code of an attempt that stopped because its worker died.
EXIT_ORPHANED = 75
_TREE_TTL_S = 1.0


# /proc readers ------------------------------------------------------------------------


def _ppids() -> dict[int, int]:
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rpartition(b")")[2].split()
        if len(fields) > 1:
            out[int(name)] = int(fields[1])
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents before children."""
    children: dict[int, list[int]] = {}
    for child, parent in _ppids().items():
        children.setdefault(parent, []).append(child)
    tree, i = [pid], 0
    while i < len(tree):
        tree.extend(children.get(tree[i], []))
        i += 1
    return tree


def private_mb(pid: int) -> float:
    """Memory private to ``pid`` in MB (``VmRSS`` where ``smaps_rollup`` is missing)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            kb = sum(int(line.split()[1]) for line in f if line.startswith(b"Private_"))
        return kb / 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def default_memory_limit_mb(concurrency: int = 1) -> int | None:
    """80% of the machine's memory shared by ``concurrency`` jobs, or ``None`` if unknown."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemTotal:"):
                    return int(int(line.split()[1]) / 1024 * 0.8 / max(1, concurrency))
    except OSError:
        pass
    return None


# The attempt's process -------------------------------------------------------------------


def _exit_with_worker(alive: Connection) -> None:
    try:
        while True:
            alive.recv()
    except (EOFError, OSError):
        pass
    os._exit(EXIT_ORPHANED)


def _limit_threads(threads: int) -> None:
    for var in THREAD_VARS:
        os.environ[var] = str(threads)  # for libraries imported later, and subprocesses
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        with suppress(RuntimeError):  # already set in this process
            torch.set_num_interop_threads(threads)


def _attempt_main(
    settings: Settings,
    claim: Claim,
    handler_ref: str,
    messages: Connection,
    alive: Connection,
    threads: int,
) -> None:
    """The body of an attempt's process (a forkserver child)."""
    from openmaas.jobs.runner import run_attempt

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the worker to handle
    threading.Thread(target=_exit_with_worker, args=(alive,), daemon=True).start()
    _limit_threads(threads)
    lock = threading.Lock()

    def report(message: dict[str, Any]) -> None:
        with lock, suppress(OSError):
            messages.send(message)

    report({"outcome": run_attempt(settings, claim, handler_ref, report)})


def _noop() -> None:
    pass


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# The executor ------------------------------------------------------------------------------


class LocalHandle(Handle):
    def __init__(
        self,
        claim: Claim,
        process: Any,
        messages: Connection,
        alive: Connection,
        memory_limit_mb: int | None,
    ) -> None:
        super().__init__(claim)
        self.process = process
        self.pid: int = process.pid
        self.messages = messages
        self.alive = alive
        self.memory_limit_mb = memory_limit_mb
        self.tree: list[int] = [self.pid]
        self.tree_at = 0.0
        self.next_check = 0.0
        self.memory_mb: float | None = None
        self.peak_memory_mb: float | None = None
        self.failure: str | None = None
        self.failure_code: str | None = None
        self.exit_code: int | None = None
        self.closed = False


class LocalExecutor(Executor):
    """Attempts as forkserver children of this process; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        preload: list[str] | None = None,
        threads: int | None = None,
        memory_check_s: float = 0.2,
    ) -> None:
        self.settings = settings
        self.preload = list(settings.worker_preload if preload is None else preload)
        self.threads = settings.worker_threads if threads is None else threads
        self.memory_check_s = memory_check_s
        self._mp = mp.get_context("forkserver")

    def _ensure_forkserver(self) -> None:
        with _environ(dict.fromkeys(THREAD_VARS, str(self.threads))):
            self._mp.set_forkserver_preload(self.preload)
            forkserver.ensure_running()

    def warm_up(self) -> None:
        """Start the forkserver and wait until its preloads are imported."""
        self._ensure_forkserver()
        p = self._mp.Process(target=_noop, name="openmaas-warm-up")
        p.start()
        p.join()
        p.close()

    def start(
        self, claim: Claim, handler_ref: str, memory_limit_mb: int | None = None
    ) -> LocalHandle:
        self._ensure_forkserver()
        messages_r, messages_w = self._mp.Pipe(duplex=False)
        alive_r, alive_w = self._mp.Pipe(duplex=False)
        process = self._mp.Process(
            target=_attempt_main,
            args=(self.settings, claim, handler_ref, messages_w, alive_r, self.threads),
            name=f"openmaas-job-{claim.job_id}-{claim.attempt}",
        )
        try:
            process.start()
        finally:
            messages_w.close()
            alive_r.close()
        return LocalHandle(claim, process, messages_r, alive_w, memory_limit_mb)

    def poll(self, handle: Handle) -> Status:
        h = _local(handle)
        progress = self._drain(h)
        if h.exit_code is None:
            h.exit_code = h.process.exitcode
        if h.exit_code is None:
            self._check_memory(h)
        if h.exit_code is not None:
            progress = self._drain(h) or progress
            self._close(h)
        return Status(
            running=h.exit_code is None,
            exit_code=h.exit_code,
            failure=h.failure,
            failure_code=h.failure_code,
            progress=progress,
            memory_mb=h.memory_mb,
            peak_memory_mb=h.peak_memory_mb,
        )

    def kill(self, handle: Handle) -> None:
        h = _local(handle)
        if h.exit_code is None and h.process.exitcode is None:
            for pid in process_tree(h.pid):  # the attempt first: it can fork no more
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            h.process.join(30)
        if h.exit_code is None:
            h.exit_code = h.process.exitcode
        self._close(h)

    # Helpers ---------------------------------------------------------------------------
    def _check_memory(self, h: LocalHandle) -> None:
        now = time.monotonic()
        if now < h.next_check:
            return
        h.next_check = now + self.memory_check_s
        if now - h.tree_at > _TREE_TTL_S:
            h.tree, h.tree_at = process_tree(h.pid), now
        mb = sum(private_mb(pid) for pid in h.tree)
        h.memory_mb = mb
        h.peak_memory_mb = max(mb, h.peak_memory_mb or 0.0)
        limit = h.memory_limit_mb
        if limit is not None and mb > limit:
            h.failure = f"the job exceeded the memory limit of {limit} MB (it used {mb:.0f} MB)"
            h.failure_code = "memory_limit"
            self.kill(h)

    @staticmethod
    def _drain(h: LocalHandle) -> dict[str, Any] | None:
        progress = None
        try:
            while not h.messages.closed and h.messages.poll():
                message = h.messages.recv()
                if "progress" in message:
                    progress = message["progress"]
        except (EOFError, OSError):
            pass
        return progress

    @staticmethod
    def _close(h: LocalHandle) -> None:
        if h.closed or h.exit_code is None:
            return
        h.closed = True
        h.messages.close()
        h.alive.close()
        h.process.close()


def _local(handle: Handle) -> LocalHandle:
    if not isinstance(handle, LocalHandle):
        raise TypeError(f"LocalExecutor got a handle of another executor: {handle!r}")
    return handle
