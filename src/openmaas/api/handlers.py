"""Every error leaves the API in one shape: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from openmaas.errors import OpenMaaSError, RateLimited

log = logging.getLogger("openmaas.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_format",
    422: "invalid_input",
    429: "rate_limited",
}


def _json_safe(value: Any) -> Any:
    """Details may carry raw values from a bad file (bytes, floats like inf): make them JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": _json_safe(details or {})}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(errors: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    clean = []
    parts = []
    for err in errors[:20]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        msg = str(err.get("msg", "invalid"))
        clean.append({"field": loc, "message": msg, "type": err.get("type")})
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts) or "invalid request", clean


def install(app: FastAPI) -> None:
    @app.exception_handler(OpenMaaSError)
    async def _domain(_: Request, exc: OpenMaaSError) -> JSONResponse:
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        if exc.status >= 500:
            log.error("server error: %s", exc.message, exc_info=exc)
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, errors = _validation_message(list(exc.errors()))
        return error_response(422, "invalid_input", message, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal_error", "internal server error")
