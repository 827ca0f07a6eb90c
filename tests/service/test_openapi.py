"""/openapi.json: generated from the route table, and it says what the service accepts."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError
from svc_helpers import SENSOR, LiveServer

from service.protocol import schemas
from service.protocol.requests import ForecastBody, ManyStreamsBody, StreamObservationsBody
from service.transport.routes import ROUTES

BODIES: dict[str, type[BaseModel]] = {
    "forecast": ForecastBody,
    "observe_stream": StreamObservationsBody,
    "observe_many": ManyStreamsBody,
}
PATHS = {r.name: r.path.format(model=SENSOR, stream_id="openapi-s") for r in ROUTES}


def _examples(model: type[BaseModel]) -> list[dict[str, Any]]:
    examples = model.model_json_schema().get("examples")
    assert examples, f"{model.__name__} documents no example"
    return copy.deepcopy(examples)


def test_document_covers_every_route_with_bodies_and_answers(
    server: LiveServer, client: httpx.Client
) -> None:
    doc = client.get("/openapi.json").json()
    schemas_ = doc["components"]["schemas"]
    app_routes = {
        (m, r.path)
        for r in server.app.routes
        for m in getattr(r, "methods", None) or ()
        if m != "HEAD"
    }
    assert len(app_routes) >= 8
    table = {(r.method, r.path) for r in ROUTES}
    assert app_routes - table == set()  # nothing the router serves is undocumented
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        assert "200" in op["responses"]
        for status in route.errors:
            ref = op["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorBody")
        if route.method == "POST":
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in schemas_
    assert {"StreamEntryBody", "ObservationBody", "ManyAnswer", "ErrorBody"} <= set(schemas_)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_documented_examples_are_accepted(client: httpx.Client, name: str) -> None:
    route = next(r for r in ROUTES if r.name == name)
    for body in _examples(BODIES[name]):
        r = client.post(PATHS[name], json=body)
        assert r.status_code == 200, r.text
        assert route.answer is not None
        route.answer.model_validate(r.json())  # the answer is what the document says
        if name == "observe_many":
            assert all("error" not in e for e in r.json()["results"])


def _violations(example: dict[str, Any], entry: bool) -> list[dict[str, Any]]:
    """Bodies the schema refuses, each breaking one rule of an observation or the body."""

    def with_obs(**change: Any) -> dict[str, Any]:
        body = copy.deepcopy(example)
        obs = body["streams"][0]["observations"][0] if entry else body["observations"][0]
        for key, value in change.items():
            if value is _DROP:
                obs.pop(key, None)
            else:
                obs[key] = value
        return body

    out = [
        with_obs(ts=_DROP),
        with_obs(ts=None),
        with_obs(ts=True),
        with_obs(seq=-1),
        with_obs(seq=2**62),
        with_obs(seq=1.5),
        with_obs(seq=True),
        with_obs(values="1,2"),
        with_obs(values=[1.0, "2"]),
        with_obs(values=[1.0, True]),
        with_obs(value=1.0),  # both values and value
        with_obs(values=_DROP),  # neither
        with_obs(extra=1),
    ]
    top = copy.deepcopy(example)
    top["unknown"] = 1
    out.append(top)
    return out


_DROP = object()


@pytest.mark.parametrize("name", ["forecast", "observe_stream"])
def test_schema_violations_are_refused_by_both(client: httpx.Client, name: str) -> None:
    model = BODIES[name]
    example = _examples(model)[0]
    bad = _violations(example, entry=False)
    bad += [{}, {"observations": []}, {"observations": {}}]
    if name == "observe_stream":
        bad.append({**example, "reset": "yes"})
    for body in bad:
        with pytest.raises(ValidationError):
            model.model_validate(body)
        r = client.post(PATHS[name], json=body)
        assert r.status_code in (400, 422), (body, r.text)
        schemas.ErrorBody.model_validate(r.json())


def test_multi_stream_violations_are_refused_by_both(client: httpx.Client) -> None:
    example = _examples(ManyStreamsBody)[0]
    for body in [{}, {"streams": []}, {"streams": {}}, {**example, "forecast": "all"}]:
        with pytest.raises(ValidationError):
            ManyStreamsBody.model_validate(body)
        r = client.post(PATHS["observe_many"], json=body)
        assert r.status_code == 422, (body, r.text)
    # An entry that breaks a rule fails alone, inside a 200: the others still apply.
    for body in _violations(example, entry=True)[:-1]:
        with pytest.raises(ValidationError):
            ManyStreamsBody.model_validate(body)
        body["streams"].append(
            {"stream_id": "openapi-ok", "observations": [{"ts": 1401580800, "values": [1.0, 2.0]}]}
        )
        r = client.post(PATHS["observe_many"], json=body)
        assert r.status_code == 200, r.text
        bad_entry, good_entry = r.json()["results"]
        assert bad_entry["status"] == 422 and "error" in bad_entry, (body, bad_entry)
        assert "error" not in good_entry
        schemas.ManyAnswer.model_validate(r.json())
