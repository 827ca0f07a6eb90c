"""The error hierarchy and its one renderer.

Every error carries its HTTP status, a stable code and its headers, fixed when it is
built (the attributes are read-only). Code anywhere raises these; ``render`` is the one
place an exception becomes an answer, for HTTP and WebSocket alike.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, ClassVar

log = logging.getLogger(__name__)


class ServiceError(Exception):
    STATUS: ClassVar[int] = 500
    CODE: ClassVar[str] = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, stream_id: str | None = None
    ) -> None:
        super().__init__(message)
        self._message = message
        self._code = code or self.CODE
        self._stream_id = stream_id

    @property
    def status(self) -> int:
        return self.STATUS

    @property
    def code(self) -> str:
        return self._code

    @property
    def message(self) -> str:
        return self._message

    @property
    def stream_id(self) -> str | None:
        """The stream a multi-stream entry's error belongs to, when it named one."""
        return self._stream_id

    def headers(self) -> dict[str, str]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    def located(self, message: str, stream_id: str | None) -> ServiceError:
        """The same error (class, status, code, headers) with a message that says where
        it happened, e.g. inside which entry of a multi-stream request."""
        other = copy.copy(self)
        other._message = message
        other._stream_id = stream_id
        other.args = (message,)
        return other


class MalformedRequest(ServiceError):
    """The body is not parseable JSON (or not a JSON object)."""

    STATUS = 400
    CODE = "malformed_json"


class InvalidInput(ServiceError):
    """Parseable but wrong: a field is missing, has the wrong type or value."""

    STATUS = 422
    CODE = "invalid_input"


class GapTooLarge(InvalidInput):
    CODE = "gap_too_large"


class NonFiniteForecast(InvalidInput):
    """The model's answer (forecast or new state) for this input is NaN or infinite."""

    CODE = "non_finite_forecast"


class NotFound(ServiceError):
    STATUS = 404
    CODE = "not_found"


class ModelNotFound(NotFound):
    CODE = "model_not_found"


class StreamNotFound(NotFound):
    CODE = "stream_not_found"


class MethodNotAllowed(ServiceError):
    STATUS = 405
    CODE = "method_not_allowed"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self._allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": self._allow}


class OutOfOrder(ServiceError):
    """The observation goes backwards relative to what the stream already applied."""

    STATUS = 409
    CODE = "out_of_order"


class PayloadTooLarge(ServiceError):
    STATUS = 413
    CODE = "payload_too_large"


class Unavailable(ServiceError):
    """Overloaded or not ready; the client should retry after a short pause."""

    STATUS = 503
    CODE = "unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, code=code)
        self._retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self._retry_after)))}


class QueueFull(Unavailable):
    CODE = "queue_full"


class NotReady(Unavailable):
    CODE = "not_ready"


class ModelUnavailable(Unavailable):
    """The model exists on disk but failed to load."""

    CODE = "model_unavailable"


class InferenceError(ServiceError):
    """ONNX Runtime failed on a batch; every request in that batch gets this."""

    STATUS = 500
    CODE = "inference_error"


def as_service_error(exc: BaseException) -> ServiceError:
    """Any exception as one of ours: unexpected ones become a logged 500 whose answer
    says nothing of the internals."""
    if isinstance(exc, ServiceError):
        return exc
    log.error("unexpected error", exc_info=exc)
    return ServiceError("internal error; see the server log")


def render(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The one renderer: (status, ``{"error": {"code", "message"}}``, headers)."""
    err = as_service_error(exc)
    return err.status, {"error": err.to_dict()}, err.headers()
