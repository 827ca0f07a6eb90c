"""JSON responses (orjson, numpy arrays serialized directly) and the one error renderer."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import Response

from service.errors import ServiceError

log = logging.getLogger(__name__)

_OPTS = orjson.OPT_SERIALIZE_NUMPY


def dumps(body: Any) -> bytes:
    return orjson.dumps(body, option=_OPTS)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


def error_body(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ServiceError):
        return {"error": exc.to_dict()}
    return {"error": {"code": "internal_error", "message": "internal error; see the server log"}}


def error_response(exc: BaseException) -> Response:
    """The single place an exception becomes an HTTP answer."""
    if isinstance(exc, ServiceError):
        return Response(
            dumps(error_body(exc)),
            status_code=exc.status,
            media_type="application/json",
            headers=exc.headers(),
        )
    log.error("unexpected error", exc_info=exc)
    return Response(dumps(error_body(exc)), status_code=500, media_type="application/json")
