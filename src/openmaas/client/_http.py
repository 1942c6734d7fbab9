"""The HTTP session under the SDK: auth header, error mapping, streaming."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from openmaas.errors import InvalidFile, OpenMaaSError, RateLimited, error_class_for

Progress = Callable[[int, int | None], None]
CHUNK = 1 << 20


def raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        err = body["error"]
        code, message, details = err["code"], err["message"], err.get("details") or {}
    except Exception:
        code, message, details = "http_error", response.text[:500] or response.reason_phrase, {}
    cls = error_class_for(code)
    if cls is RateLimited:
        retry = float(response.headers.get("retry-after", "1"))
        raise RateLimited(message, retry_after=retry, details=details)
    raise cls(message, details=details)


def q(segment: object) -> str:
    """A path segment, escaped: user-given names never change the path."""
    return quote(str(segment), safe="")


class Http:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 600.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token
        self.client = http or httpx.Client(timeout=timeout)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, **kw: Any) -> Any:
        r = self.client.request(method, self.base + path, headers=self.headers(), **kw)
        raise_for_error(r)
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw)

    def patch(self, path: str, json: Any) -> Any:
        return self.request("PATCH", path, json=json)

    def put(self, path: str, json: Any) -> Any:
        return self.request("PUT", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def upload(
        self,
        path: str,
        file: str | os.PathLike[str],
        params: dict[str, Any],
        progress: Progress | None = None,
    ) -> Any:
        """Stream a file as the request body, never reading it whole."""
        size = Path(file).stat().st_size

        def body() -> Iterator[bytes]:
            sent = 0
            with open(file, "rb") as f:
                while chunk := f.read(CHUNK):
                    sent += len(chunk)
                    yield chunk
                    if progress:
                        progress(sent, size)

        clean = {k: v for k, v in params.items() if v is not None}
        headers = {**self.headers(), "Content-Length": str(size)}
        r = self.client.post(self.base + path, params=clean, content=body(), headers=headers)
        raise_for_error(r)
        return r.json()

    def download(
        self,
        path: str,
        dest: BinaryIO,
        params: dict[str, Any],
        progress: Progress | None = None,
        *,
        sha256: str | None = None,
    ) -> int:
        """Stream a response body into ``dest``; returns the number of bytes.

        With ``sha256``, the body must hash to it, and to the ``X-Content-SHA256``
        the server sent, or :class:`InvalidFile` is raised (``dest`` then holds junk).
        """
        clean = {k: v for k, v in params.items() if v is not None}
        with self.client.stream("GET", self.base + path, params=clean, headers=self.headers()) as r:
            if not r.is_success:
                r.read()
                raise_for_error(r)
            total = int(r.headers["content-length"]) if "content-length" in r.headers else None
            sent = r.headers.get("x-content-sha256")
            digest = hashlib.sha256()
            done = 0
            for chunk in r.iter_bytes(CHUNK):
                dest.write(chunk)
                if sha256 is not None:
                    digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if sha256 is not None:
            got = digest.hexdigest()
            if got != sha256 or (sent is not None and sent != sha256):
                raise InvalidFile(
                    f"{path}: the download does not match its checksum (expected {sha256}, "
                    f"server sent {sent or 'none'}, received {got}); try again",
                    details={"expected": sha256, "received": got},
                )
        return done

    def close(self) -> None:
        self.client.close()


__all__ = ["Http", "OpenMaaSError", "Progress", "q", "raise_for_error"]
