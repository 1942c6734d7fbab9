"""Receiving a file upload: streamed to disk, bounded, and complete or rejected."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import Request
from starlette.requests import ClientDisconnect

from openmaas.domain.context import Platform
from openmaas.errors import InvalidInput, PayloadTooLarge

CONTENT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/jsonlines": "jsonl",
}


def format_of(request: Request, explicit: str | None) -> str:
    if explicit:
        return explicit
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in CONTENT_TYPES:
        return CONTENT_TYPES[ctype]
    raise InvalidInput(
        "say what the file is: add ?format=csv|parquet|jsonl or a Content-Type of "
        "text/csv, application/vnd.apache.parquet or application/x-ndjson",
        details={"field": "format"},
    )


@contextlib.asynccontextmanager
async def received_file(request: Request, platform: Platform) -> AsyncIterator[Path]:
    """Write the request body to a temporary file and yield its path.

    Rejects bodies over the size limit as soon as they cross it, and truncated
    uploads (fewer bytes than Content-Length, or a dropped connection); the file
    is removed in every case when the block ends.
    """
    limit = platform.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    expected: int | None = None
    if declared is not None:
        try:
            expected = int(declared)
        except ValueError:
            raise InvalidInput("invalid Content-Length header") from None
        if expected > limit:
            raise PayloadTooLarge(
                f"the upload is {expected} bytes; the limit is {limit} bytes",
                details={"limit": limit},
            )
    tmp_dir = platform.settings.tmp_dir
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path = tmp_dir / f"upload-{uuid.uuid4().hex}"
    received = 0
    try:
        with path.open("wb") as f:
            try:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > limit:
                        raise PayloadTooLarge(
                            f"the upload exceeds the limit of {limit} bytes",
                            details={"limit": limit},
                        )
                    f.write(chunk)
            except ClientDisconnect:
                raise InvalidInput(
                    f"the upload was interrupted after {received} bytes",
                    details={"received": received},
                ) from None
        if expected is not None and received != expected:
            raise InvalidInput(
                f"truncated upload: received {received} of {expected} bytes",
                details={"received": received, "expected": expected},
            )
        yield path
    finally:
        path.unlink(missing_ok=True)
