"""The route table: every HTTP route once, with its body and answer schemas.

The fast path matches its routes from here, the FastAPI router registers the rest from
here, and /openapi.json is generated from here, so a route cannot exist undocumented
(tests/service/test_openapi.py checks the app against this table).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel
from starlette.routing import compile_path

from service.protocol import schemas, v2_schemas
from service.protocol.bodies import ColumnsBody
from service.protocol.requests import ForecastBody, ManyStreamsBody, StreamObservationsBody

STREAM_ROUTE = "/v1/models/{model}/streams/{stream_id}/observations"
MANY_ROUTE = "/v1/models/{model}/observations"
COLUMNS_ROUTE = "/v1/models/{model}/columns"
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
    hot: bool = False  # answered by an ASGI layer (the fast path or v2), not FastAPI
    v2: bool = False  # the Open Inference Protocol (transport/v2_http.py, its error shape)
    # The key scope it needs (None: open to anyone, e.g. the probes).
    scope: str | None = "read"
    # Media types its body must declare (None: any or none, e.g. a binary protocol's
    # client that sends no Content-Type). Declaring JSON is what a cross-site page
    # cannot do without a CORS preflight, which we never answer by default.
    content_types: tuple[str, ...] | None = None


JSON = ("application/json",)
_JSON_BODY = (400, 413, 415, 422)  # every POST: malformed, too large, not JSON, invalid
_AUTH = (401, 403)  # every route that needs a key
_MODEL = (404, 429, 503)  # under /v1/models/{model}: unknown, over a share, overloaded
_STREAM = (404, 422, 429, 503)

ROUTES: tuple[Route, ...] = (
    # The probes are hot too: under overload they must not queue behind FastAPI's stack.
    Route(
        "GET",
        "/healthz",
        "health",
        "Process alive",
        schemas.HealthAnswer,
        hot=True,
        scope=None,
    ),
    Route(
        "GET",
        "/readyz",
        "ready",
        "Models loaded",
        schemas.ReadyAnswer,
        errors=(503,),
        hot=True,
        scope=None,
    ),
    Route(
        "GET",
        "/metrics",
        "metrics",
        "Prometheus metrics (text format)",
        None,
        errors=_AUTH,
        scope="metrics",
    ),
    Route(
        "GET",
        "/openapi.json",
        "openapi",
        "This API description (OpenAPI 3.1)",
        None,
        scope=None,
    ),
    Route(
        "GET",
        "/v1/models",
        "list_models",
        "Every model version",
        schemas.ModelsAnswer,
        errors=_AUTH,
    ),
    Route(
        "GET",
        "/v1/models/{model}",
        "describe_model",
        "One model: the served version's manifest",
        schemas.ModelAnswer,
        errors=(*_AUTH, 404),
    ),
    Route(
        "POST",
        "/v1/models/{model}/forecast",
        "forecast",
        "Stateless forecast after a history",
        schemas.ForecastAnswer,
        ForecastBody,
        _JSON_BODY + _AUTH + _MODEL,
        scope="write",
        content_types=JSON,
    ),
    Route(
        "POST",
        STREAM_ROUTE,
        "observe_stream",
        "New observations of one stream; the forecast after the last",
        schemas.StreamAnswer,
        StreamObservationsBody,
        _JSON_BODY + _AUTH + _MODEL + (409,),
        hot=True,
        scope="write",
        content_types=JSON,
    ),
    Route(
        "POST",
        MANY_ROUTE,
        "observe_many",
        "Observations of many streams; a result or an error per stream",
        schemas.ManyAnswer,
        ManyStreamsBody,
        _JSON_BODY + _AUTH + _MODEL,
        hot=True,
        scope="write",
        content_types=JSON,
    ),
    Route(
        "POST",
        COLUMNS_ROUTE,
        "observe_columns",
        "Observations of many streams as parallel columns; answered as columns (JSON, or "
        "with Content-Type application/octet-stream the binary tensor layout of the Open "
        "Inference Protocol: a JSON header, whose length is the "
        "Inference-Header-Content-Length header, then raw little-endian tensors)",
        schemas.ColumnsAnswer,
        ColumnsBody,
        _JSON_BODY + _AUTH + _MODEL,
        hot=True,
        scope="write",
        content_types=(*JSON, "application/octet-stream"),
    ),
    Route(
        "GET",
        "/v1/models/{model}/streams/{stream_id}",
        "status",
        "A stream's status",
        schemas.StatusAnswer,
        errors=_AUTH + _STREAM,
    ),
    Route(
        "DELETE",
        "/v1/models/{model}/streams/{stream_id}",
        "forget",
        "Forget a stream",
        schemas.DeletedAnswer,
        errors=_AUTH + _STREAM,
        scope="admin",
    ),
)

V2_MODEL = "/v2/models/{model}"
V2_VERSION = "/v2/models/{model}/versions/{version}"
_V2_INFER = (400, 404, 413, 503)


def _v2(method: str, path: str, name: str, summary: str, answer: type[BaseModel],
        body: type[BaseModel] | None = None, errors: tuple[int, ...] = (),
        scope: str | None = "read") -> Route:  # fmt: skip
    # Any Content-Type or none: tritonclient sends binary bodies without one.
    return Route(method, path, name, summary, answer, body, errors, hot=True, v2=True,
                 scope=scope, content_types=None)  # fmt: skip


# The Open Inference Protocol (KServe v2): every model route also with /versions/{version}.
V2_ROUTES: tuple[Route, ...] = (
    _v2("GET", "/v2", "v2_server_metadata", "v2: server metadata", v2_schemas.V2ServerMetadata),
    _v2("GET", "/v2/health/live", "v2_live", "v2: server live", v2_schemas.V2Live, scope=None),
    _v2("GET", "/v2/health/ready", "v2_ready", "v2: ready", v2_schemas.V2Ready, None, (503,),
        scope=None),
    *(
        route
        for base, tag in ((V2_MODEL, ""), (V2_VERSION, "_version"))
        for route in (
            _v2("GET", base, f"v2_model{tag}_metadata", "v2: model metadata (tensors)",
                v2_schemas.V2ModelMetadata, errors=(400, 404, 503)),
            _v2("GET", f"{base}/ready", f"v2_model{tag}_ready", "v2: model ready",
                v2_schemas.V2Ready, errors=(400, 404, 503)),
            _v2("POST", f"{base}/infer", f"v2{tag}_infer",
                "v2: inference (sequence extension; JSON, or binary data after the JSON "
                "header, whose length is the Inference-Header-Content-Length header)",
                v2_schemas.V2InferAnswer, v2_schemas.V2InferBody, _V2_INFER, scope="write"),
        )
    ),
)  # fmt: skip

ROUTES = ROUTES + V2_ROUTES
HOT = tuple(r for r in ROUTES if r.hot and not r.v2)
_PATTERNS = [(compile_path(r.path)[0], r.method) for r in ROUTES]


def allowed_methods(path: str) -> str:
    """The Allow header of a 405: every method the table serves on this path."""
    return ", ".join(sorted({m for pattern, m in _PATTERNS if pattern.match(path)}))


WS_SCOPE = "write"  # the WebSocket carries observations
