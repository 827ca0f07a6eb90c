"""/openapi.json, generated from the route table and the pydantic body models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.protocol.schemas import ErrorBody
from service.transport.routes import ROUTES, WS_ROUTE

_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Malformed body (not JSON, or not an object)",
    404: "Unknown model, stream or path",
    409: "Out of order: the observation goes backwards",
    413: "Body or history too large",
    422: "Invalid input: the message names the field and the reason",
    503: "Overloaded or not ready; retry after Retry-After seconds",
}


def build_openapi(title: str, version: str) -> dict[str, Any]:
    models: list[type[BaseModel]] = [ErrorBody]
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
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
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
        for status in route.errors:
            responses[str(status)] = {
                "description": _STATUS_TEXT[status],
                "content": {"application/json": {"schema": {"$ref": ref[ErrorBody]}}},
            }
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
        "components": {"schemas": top.get("$defs", {})},
    }
