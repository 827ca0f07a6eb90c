"""/openapi.json, generated from the route table and the pydantic body models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.protocol.bodies import MAX_STREAM_ID, STREAM_ID_PATTERN
from service.protocol.schemas import ErrorBody
from service.protocol.v2_schemas import V2ErrorBody
from service.transport.routes import ROUTES, WS_ROUTE

_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Malformed body (not JSON, or not an object), or a Host this service does not serve",
    401: "No API key, or an unknown one",
    403: "The key lacks the route's scope, or the stream is outside its prefix",
    404: "Unknown model, stream or path",
    409: "Out of order: the observation goes backwards",
    413: "Body, history, model steps or answer too large",
    415: "The body is not declared as application/json",
    422: "Invalid input: the message names the field and the reason",
    429: "Over a share: too many requests waiting on the stream, or the key's stream quota "
    "or new-stream rate; retry after Retry-After seconds",
    503: "Overloaded or not ready; retry after Retry-After seconds",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    405: {"Allow": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "string"}}},
    503: {"Retry-After": {"schema": {"type": "string"}}},
}
_PARAMS = {
    "stream_id": {"type": "string", "pattern": STREAM_ID_PATTERN, "maxLength": MAX_STREAM_ID},
}
_SECURITY = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
_V2_STATUS_TEXT = {
    **_STATUS_TEXT,
    400: "Bad request (body, tensor or parameter): the text names it and the reason",
    404: "Unknown model or version",
}


def build_openapi(title: str, version: str) -> dict[str, Any]:
    models: list[type[BaseModel]] = [ErrorBody, V2ErrorBody]
    for route in ROUTES:
        models += [m for m in (route.body, route.answer) if m is not None]
    unique = list(dict.fromkeys(models))
    keyed, top = models_json_schema([(m, "validation") for m in unique], ref_template=_REF)
    ref = {m: keyed[(m, "validation")]["$ref"] for m in unique}
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        op: dict[str, Any] = {"operationId": route.name, "summary": route.summary}
        params = re.findall(r"{(\w+)}", route.path)
        if params:
            op["parameters"] = [
                {
                    "name": p,
                    "in": "path",
                    "required": True,
                    "schema": _PARAMS.get(p, {"type": "string"}),
                }
                for p in params
            ]
        if route.scope is not None:
            op["security"] = [{"bearer": []}, {"apiKey": []}]
            op["description"] = f"Needs a key with the {route.scope} (or admin) scope."
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": ref[route.body]}}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if route.answer is not None:
            ok["content"] = {"application/json": {"schema": {"$ref": ref[route.answer]}}}
        elif route.name == "metrics":
            ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
        else:
            ok["content"] = {"application/json": {"schema": {"type": "object"}}}
        responses: dict[str, Any] = {"200": ok}
        error = ref[V2ErrorBody] if route.v2 else ref[ErrorBody]
        for status in route.errors:
            responses[str(status)] = {
                "description": (_V2_STATUS_TEXT if route.v2 else _STATUS_TEXT)[status],
                "content": {"application/json": {"schema": {"$ref": error}}},
            }
            if status in _HEADERS:
                responses[str(status)]["headers"] = _HEADERS[status]
        op["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": f"WebSocket {WS_ROUTE} takes the stream or multi-stream body "
            'plus an optional "id"; see docs/api.md.',
        },
        "paths": paths,
        "components": {"schemas": top.get("$defs", {}), "securitySchemes": _SECURITY},
    }
