"""``python -m openmaas.jobs.worker_main``: a worker process without the CLI (tests, scripts).

Settings come from ``OPENMAAS_*`` variables; the options override them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _list(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openmaas.jobs.worker_main")
    parser.add_argument("--worker-id")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--kinds", type=_list, help="comma-separated kinds (default: all)")
    parser.add_argument("--module", action="append", default=[], help="registers job kinds")
    parser.add_argument("--memory-limit-mb", type=int)
    parser.add_argument("--lease-s", type=float)
    parser.add_argument("--heartbeat-s", type=float)
    parser.add_argument("--poll-interval", type=float)
    parser.add_argument("--preload", type=_list, help="comma-separated forkserver preloads")
    parser.add_argument("--drain-s", type=float, default=0.0)
    parser.add_argument(
        "--no-builtin-kinds", action="store_true", help="skip the platform's own job kinds"
    )
    args = parser.parse_args(argv)

    from openmaas.config import Settings
    from openmaas.jobs.cli_entry import run_worker

    return run_worker(
        Settings(),
        args.concurrency,
        worker_id=args.worker_id,
        kinds=args.kinds,
        modules=args.module,
        memory_limit_mb=args.memory_limit_mb,
        lease_s=args.lease_s,
        heartbeat_s=args.heartbeat_s,
        poll_interval=args.poll_interval,
        preload=args.preload,
        drain_s=args.drain_s,
        builtin_kinds=not args.no_builtin_kinds,
    )


if __name__ == "__main__":
    sys.exit(main())
