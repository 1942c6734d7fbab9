"""The one exception tree of OpenMaaS.

Every error a user can see is one of these classes. Each carries a stable
machine-readable ``code`` and the HTTP ``status`` it maps to, so what a client
sees is decided here and nowhere else: the API turns any ``OpenMaaSError`` into
``{"error": {"code", "message", "details"}}`` and the SDK maps the code back to
the class.

    OpenMaaSError
    ├── InvalidInput (422)            bad field, column, row, parameter
    │   ├── InvalidFile (422)          malformed upload content
    │   ├── TrainingDiverged (422)     NaN/inf loss, exploding gradients
    │   └── UnsupportedFormat (415)
    ├── Unauthenticated (401)
    ├── PermissionDenied (403)         visible, but not allowed
    ├── NotFound (404, also LookupError)
    ├── Conflict (409)                 name taken, immutable, wrong state
    ├── PayloadTooLarge (413)
    ├── RateLimited (429)
    ├── Unavailable (503)
    └── StoreError (500)               a storage backend failed
"""

from __future__ import annotations

from typing import Any, ClassVar


class OpenMaaSError(Exception):
    """Base of every error OpenMaaS raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(OpenMaaSError, ValueError):
    status = 422
    code = "invalid_input"


class InvalidFile(InvalidInput):
    """An uploaded file cannot be read; ``details`` name the column and row."""

    code = "invalid_file"


class TrainingDiverged(InvalidInput):
    """Training stopped being numerically sound (NaN/inf loss, exploding gradients).

    ``details`` hold ``epoch`` (or round), ``reason`` and, where known, ``learning_rate``.
    """

    code = "training_diverged"


class UnsupportedFormat(InvalidInput):
    status = 415
    code = "unsupported_format"


class Unauthenticated(OpenMaaSError):
    status = 401
    code = "unauthenticated"


class PermissionDenied(OpenMaaSError, PermissionError):
    status = 403
    code = "permission_denied"


class NotFound(OpenMaaSError, LookupError):
    status = 404
    code = "not_found"


class Conflict(OpenMaaSError):
    status = 409
    code = "conflict"


class PayloadTooLarge(InvalidInput):
    status = 413
    code = "payload_too_large"


class RateLimited(OpenMaaSError):
    status = 429
    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class Unavailable(OpenMaaSError):
    status = 503
    code = "unavailable"


class StoreError(OpenMaaSError):
    """A storage backend failed; raised ``from`` the driver's own error."""

    status = 500
    code = "store_error"


def _all_subclasses(cls: type[OpenMaaSError]) -> list[type[OpenMaaSError]]:
    out: list[type[OpenMaaSError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def error_class_for(code: str) -> type[OpenMaaSError]:
    """The class a client raises for an error ``code`` received from the server."""
    for cls in [OpenMaaSError, *_all_subclasses(OpenMaaSError)]:
        if cls.code == code:
            return cls
    return OpenMaaSError
