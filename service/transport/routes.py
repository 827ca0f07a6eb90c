"""The route table: every HTTP route once, with its body and answer schemas.

The fast path matches its routes from here, the FastAPI router registers the rest from
here, and /openapi.json is generated from here, so a route cannot exist undocumented
(tests/service/test_openapi.py checks the app against this table).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from service.protocol import schemas
from service.protocol.requests import ForecastBody, ManyStreamsBody, StreamObservationsBody

STREAM_ROUTE = "/v1/models/{model}/streams/{stream_id}/observations"
MANY_ROUTE = "/v1/models/{model}/observations"
WS_ROUTE = "/v1/models/{model}/stream"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str  # the data plane operation it calls
    summary: str
    answer: type[BaseModel] | None  # None: not described by a model of ours
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    hot: bool = False  # answered by the ASGI fast path, not FastAPI


_JSON_BODY = (400, 413, 422)  # every POST: malformed, too large, invalid
_MODEL = (404, 503)  # every route under /v1/models/{model}: unknown, not ready or overloaded
_STREAM = (404, 422, 503)

ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", "health", "Process alive", schemas.HealthAnswer),
    Route("GET", "/readyz", "ready", "Models loaded", schemas.ReadyAnswer, errors=(503,)),
    Route("GET", "/metrics", "metrics", "Prometheus metrics (text format)", None),
    Route("GET", "/openapi.json", "openapi", "This API description (OpenAPI 3.1)", None),
    Route("GET", "/v1/models", "list_models", "Every model version", schemas.ModelsAnswer),
    Route(
        "GET",
        "/v1/models/{model}",
        "describe_model",
        "One model: the served version's manifest",
        schemas.ModelAnswer,
        errors=(404,),
    ),
    Route(
        "POST",
        "/v1/models/{model}/forecast",
        "forecast",
        "Stateless forecast after a history",
        schemas.ForecastAnswer,
        ForecastBody,
        _JSON_BODY + _MODEL,
    ),
    Route(
        "POST",
        STREAM_ROUTE,
        "observe_stream",
        "New observations of one stream; the forecast after the last",
        schemas.StreamAnswer,
        StreamObservationsBody,
        _JSON_BODY + _MODEL + (409,),
        hot=True,
    ),
    Route(
        "POST",
        MANY_ROUTE,
        "observe_many",
        "Observations of many streams; a result or an error per stream",
        schemas.ManyAnswer,
        ManyStreamsBody,
        _JSON_BODY + _MODEL,
        hot=True,
    ),
    Route(
        "GET",
        "/v1/models/{model}/streams/{stream_id}",
        "status",
        "A stream's status",
        schemas.StatusAnswer,
        errors=_STREAM,
    ),
    Route(
        "DELETE",
        "/v1/models/{model}/streams/{stream_id}",
        "forget",
        "Forget a stream",
        schemas.DeletedAnswer,
        errors=_STREAM,
    ),
)

HOT = tuple(r for r in ROUTES if r.hot)
