"""API keys over the Open Inference Protocol: REST and gRPC need the same key, scope and
tenant prefix as /v1 (tritonclient sends the key as a header, or gRPC metadata)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from svc_helpers import SENSOR, LiveServer, held_out
from tritonclient.utils import InferenceServerException
from v2_helpers import infer, triton_client

KEYS = {
    "reader": "scopes=read prefix=acme:",
    "acme": "scopes=read,write prefix=acme:",
    "admin": "scopes=admin",
}


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}  # lower case: gRPC metadata keys must be


@pytest.fixture
def secured(serve: Callable[..., LiveServer], tmp_path: Path) -> LiveServer:
    keys = tmp_path / "keys"
    keys.write_text(
        "".join(f"{hashlib.sha256(k.encode()).hexdigest()} {f} name={k}\n" for k, f in KEYS.items())
    )
    return serve(auth_disabled=False, api_keys_file=keys, grpc_port=0)


def _refused(call: Callable[[], object]) -> str:
    with pytest.raises(InferenceServerException) as refused:
        call()
    return str(refused.value)


@pytest.mark.parametrize("mode", ["http-binary", "grpc"])
def test_v2_needs_a_key_its_scope_and_its_tenant(
    models_dir: Path, secured: LiveServer, mode: str
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)

    def step(key: str | None, sid: str, i: int = 0, **kw: object) -> object:
        headers = _auth(key) if key is not None else None
        return infer(client, mode, SENSOR, seconds[i : i + 1], values[i : i + 1],
                     sequence_id=sid, headers=headers, **kw)  # fmt: skip

    with triton_client(secured, mode) as client, httpx.Client(base_url=secured.url) as v1:
        assert client.is_server_live() and client.is_server_ready()  # open, like the probes
        assert "[missing_key]" in _refused(lambda: client.get_model_metadata(SENSOR))
        meta = client.get_model_metadata(SENSOR, headers=_auth("reader"))
        assert (meta["name"] if isinstance(meta, dict) else meta.name) == SENSOR
        assert "[missing_key]" in _refused(lambda: step(None, "acme:a"))
        assert "[invalid_key]" in _refused(lambda: step("nope", "acme:a"))
        assert "[forbidden_scope]" in _refused(lambda: step("reader", "acme:a"))
        # Another tenant's stream is refused before anything is stored.
        # In the request's own terms (not /v1's stream_id / "reset": true).
        assert "[forbidden_stream] parameters.sequence_id: " in _refused(
            lambda: step("acme", f"globex:{mode}")
        )
        assert v1.get(f"/v1/models/{SENSOR}/streams/globex:{mode}",
                      headers=_auth("admin")).status_code == 404  # fmt: skip
        # Its own stream goes through, and is the stream /v1 reads.
        step("acme", f"acme:{mode}", 0)
        step("acme", f"acme:{mode}", 1)
        stream = f"/v1/models/{SENSOR}/streams/acme:{mode}"
        assert v1.get(stream, headers=_auth("acme")).json()["count"] == 2
        # sequence_start resets and sequence_end forgets: admin, as reset and DELETE on /v1.
        assert "parameters.sequence_start: true needs a key with the admin scope" in _refused(
            lambda: step("acme", f"acme:{mode}", 0, sequence_start=True)
        )
        assert "admin scope" in _refused(lambda: step("acme", f"acme:{mode}", 1,
                                                      sequence_end=True))  # fmt: skip
        assert v1.get(stream, headers=_auth("acme")).json()["count"] == 2  # nothing changed
        step("admin", f"acme:{mode}", 1, sequence_end=True)
        assert v1.get(stream, headers=_auth("acme")).status_code == 404
        text = v1.get("/metrics", headers=_auth("admin")).text
    failures = {
        line.split('reason="')[1].split('"')[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("forecast_auth_failures_total{")
    }
    assert failures["missing_key"] >= 2 and failures["invalid_key"] >= 1
    assert failures["forbidden_scope"] >= 1
