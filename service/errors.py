"""One error hierarchy; every error carries its HTTP status and a stable code.

Routes raise these and a single handler (see ``api/handlers.py``) renders
``{"error": {"code": ..., "message": ...}}``; nothing else builds HTTP errors.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    def headers(self) -> dict[str, str]:
        return {}


class MalformedRequest(ServiceError):
    """The body is not parseable JSON (or not a JSON object)."""

    status = 400
    code = "malformed_json"


class InvalidInput(ServiceError):
    """Parseable but wrong: a field is missing, has the wrong type or value."""

    status = 422
    code = "invalid_input"


class GapTooLarge(InvalidInput):
    code = "gap_too_large"


class NonFiniteForecast(InvalidInput):
    """The model's answer (forecast or new state) for this input is NaN or infinite."""

    code = "non_finite_forecast"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class StreamNotFound(NotFound):
    code = "stream_not_found"


class OutOfOrder(ServiceError):
    """The observation goes backwards relative to what the stream already applied."""

    status = 409
    code = "out_of_order"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class Unavailable(ServiceError):
    """Overloaded or not ready; the client should retry after a short pause."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class QueueFull(Unavailable):
    code = "queue_full"


class NotReady(Unavailable):
    code = "not_ready"


class ModelUnavailable(Unavailable):
    """The model exists on disk but failed to load."""

    code = "model_unavailable"


class InferenceError(ServiceError):
    """ONNX Runtime failed on a batch; every request in that batch gets this."""

    status = 500
    code = "inference_error"
