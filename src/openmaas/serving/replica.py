"""``openmaas serve-endpoint``: a stateless replica as a bare ASGI app.

The request path is as short as we can make it: no framework routing or
validation layers, the body read straight into bytes, JSON parsed by orjson
into a float matrix, the model call micro-batched (:mod:`.batcher`), the answer
serialised by orjson. Everything else (callers, limits, routing, accounting)
is the shared :class:`~.runtime.ServingRuntime`.

Probes: ``GET /healthz`` (the process answers), ``GET /readyz`` (deployments
loaded). On SIGTERM uvicorn stops accepting connections and finishes the
requests in flight before the lifespan shutdown flushes the counters.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from openmaas.errors import InvalidInput, NotFound, OpenMaaSError, PayloadTooLarge
from openmaas.serving.batcher import Batcher
from openmaas.serving.runtime import Answer, ServingRuntime, _error

log = logging.getLogger("openmaas.serving")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
JSON_TYPE = (b"content-type", b"application/json")
PREFIX = "/api/v1/endpoints/"


class ReplicaApp:
    def __init__(self, runtime: ServingRuntime, *, max_batch_rows: int = 4096) -> None:
        self.runtime = runtime
        self.batcher = Batcher(self._predict, max_rows=max_batch_rows)

    def _predict(self, version: int, X: Any) -> Any:
        return self.runtime.predictors[version].predict(X)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            answer = await self._http(scope, receive)
            # content-length, not chunked: fewer bytes and less work for the server
            length = (b"content-length", b"%d" % len(answer.body))
            if not answer.headers:
                headers = [JSON_TYPE, length]
            else:
                headers = [(k.encode(), v.encode()) for k, v in answer.headers]
                if all(k != "content-type" for k, _ in answer.headers):
                    headers.append(JSON_TYPE)
                headers.append(length)
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": answer.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await loop.run_in_executor(None, self.runtime.start)
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                # Requests allocate many short-lived lists (parsed JSON rows): keep the
                # cyclic collector off the long-lived heap (models, modules) and run it
                # less often, or it walks that heap over and over on the request path.
                gc.collect()
                gc.freeze()
                gc.set_threshold(50_000, 20, 20)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await loop.run_in_executor(None, self.runtime.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive) -> Answer:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "GET":
            if path == "/healthz":
                return Answer(200, b'{"status":"ok"}')
            if path == "/readyz":
                ready = self.runtime.ready
                return Answer(200 if ready else 503, orjson.dumps({"ready": ready}))
            if path == "/metrics":
                return await self._metrics(scope)
        if method == "POST" and path.startswith(PREFIX):
            name, _, action = path[len(PREFIX) :].partition("/")
            if action in ("predict", "feedback"):
                auth = _header(scope, b"authorization")
                client = scope["client"][0] if scope.get("client") else None
                try:
                    message = await receive()
                    body = self._chunk(message, 0)
                    if message.get("more_body"):  # rare: the usual body is one message
                        body = await self._rest(body, receive)
                except InvalidInput as e:
                    return _error(e)
                if action == "feedback":
                    return self.runtime.feedback(name, auth, body, client)
                call = self.runtime.prepare(name, auth, body, client)
                if isinstance(call, Answer):
                    return call
                try:
                    out = await self.batcher.submit(call.version, call.X)
                except Exception as e:
                    return self.runtime.failed(call, e)
                return self.runtime.finish(call, out)
        return _error(NotFound(f"no route {method} {path[:200]}"))

    async def _metrics(self, scope: Scope) -> Answer:
        """The process's metrics and the series of the endpoints the scraper may read
        (Prometheus sends a token with ``authorization``; anonymous: public ones only)."""
        auth = _header(scope, b"authorization")
        loop = asyncio.get_running_loop()
        try:
            principal = await loop.run_in_executor(None, self.runtime.principal, auth, None)
            series = await loop.run_in_executor(None, self.runtime.metrics, principal)
        except OpenMaaSError as e:
            return _error(e)
        return Answer(200, generate_latest() + series, [("content-type", CONTENT_TYPE_LATEST)])

    def _chunk(self, message: MutableMapping[str, Any], before: int) -> bytes:
        """A message's body bytes, refused if the client left or the body grew too large."""
        if message["type"] == "http.disconnect":
            raise InvalidInput("the client went away mid-request")
        chunk: bytes = message.get("body", b"")
        limit = self.runtime.settings.serving_max_body_bytes
        if before + len(chunk) > limit:
            raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
        return chunk

    async def _rest(self, first: bytes, receive: Receive) -> bytes:
        chunks = [first]
        size = len(first)
        while True:
            message = await receive()
            chunk = self._chunk(message, size)
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
