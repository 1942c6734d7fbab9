"""Receiving a file upload: streamed to disk, bounded, and parsed while it arrives.

The body is written unbuffered to a temporary file wrapped in a
``GrowingFile``; the domain call runs in a worker thread at the same time and
reads the file as it grows, so ingest overlaps the transfer. A body over the
size limit, shorter than its Content-Length, or cut off makes every read of the
growing file fail with that error, so nothing is stored from it; the
temporary file is removed in every case.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from openmaas.domain.context import Platform
from openmaas.errors import InvalidInput, PayloadTooLarge
from openmaas.ml.data.growing import GrowingFile, UploadFailed

T = TypeVar("T")

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


def _expected_length(request: Request, limit: int) -> int | None:
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    try:
        expected = int(declared)
    except ValueError:
        raise InvalidInput("invalid Content-Length header") from None
    if expected > limit:
        raise PayloadTooLarge(
            f"the upload is {expected} bytes; the limit is {limit} bytes",
            details={"limit": limit},
        )
    return expected


async def _receive(
    request: Request,
    growing: GrowingFile,
    limit: int,
    expected: int | None,
    task: asyncio.Future[T],
) -> None:
    received = 0
    with growing.path.open("wb", buffering=0) as f:
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise PayloadTooLarge(
                        f"the upload exceeds the limit of {limit} bytes", details={"limit": limit}
                    )
                if task.done():
                    continue  # the reader gave up (bad content): drain, don't store
                f.write(chunk)
                growing.grew(len(chunk))
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


async def ingest_upload(
    request: Request, platform: Platform, work: Callable[[GrowingFile], T]
) -> T:
    """Receive the request body while ``work(growing_file)`` reads it; return its result."""
    limit = platform.settings.max_upload_bytes
    expected = _expected_length(request, limit)
    tmp_dir = platform.settings.tmp_dir
    tmp_dir.mkdir(parents=True, exist_ok=True)
    growing = GrowingFile(tmp_dir / f"upload-{uuid.uuid4().hex}")
    growing.path.touch()
    task = asyncio.ensure_future(run_in_threadpool(work, growing))
    upload_error: BaseException | None = None
    try:
        try:
            await _receive(request, growing, limit, expected, task)
        except BaseException as e:
            upload_error = e
            growing.finish(e)
        else:
            growing.finish()
        try:
            result = await task
        except UploadFailed:
            assert upload_error is not None
            raise upload_error from None
        except Exception:
            if upload_error is not None:
                raise upload_error from None
            raise
        if upload_error is not None:
            raise upload_error
        return result
    finally:
        growing.path.unlink(missing_ok=True)
