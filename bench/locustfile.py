"""Realistic users of the forecasting service, for locust.

- Sensor: one stream per user, posts one observation per cadence tick (seq and ts one
  period apart, as a device would), reads its forecast.
- BatchProducer: a gateway forwarding 100 sensors at once through the multi-stream
  endpoint, every few seconds.
- ColumnarProducer: a gateway of 1000 sensors sending columns (service.client builds
  the body from arrays), JSON and the binary layout in turn.
- DashboardReader: a status page polling the model list, the model and some streams.

Headless (the service on 127.0.0.1:8000):
    .venv/bin/locust -f bench/locustfile.py --headless -u 50 -r 10 -t 30s \
        --host http://127.0.0.1:8000 --only-summary
or `python -m bench.locust_run` (starts its own service, pinned; prints the summary).
Settings: BENCH_MODEL (default: the first serving model), BENCH_CADENCE_S (default 1.0).
"""

from __future__ import annotations

import itertools
import math
import os
import random
import uuid
from typing import Any, ClassVar

import numpy as np
import orjson
from locust import FastHttpUser, constant_pacing, task

from contract.timefeatures import add_business_days
from service.client import binary_answer, columns_binary_body, columns_body

JSON = "application/json"

RUN = uuid.uuid4().hex[:8]  # stream ids unique per run: a rerun never goes backwards
T0 = 1_401_580_800  # 2014-06-01T00:00:00Z, a Sunday
CADENCE_S = float(os.environ.get("BENCH_CADENCE_S", "1.0"))
_ids = itertools.count()
_live_streams: list[str] = []  # sensors that have posted, for the dashboard to read
_model: dict[str, Any] = {}


def _load_model(user: FastHttpUser) -> dict[str, Any]:
    if not _model:
        with user.client.get("/v1/models", name="/v1/models", catch_response=True) as r:
            entries = (
                [e for e in r.json()["models"] if e.get("status") == "serving"]
                if (r.status_code == 200)
                else []
            )
            wanted = os.environ.get("BENCH_MODEL")
            chosen = next((e for e in entries if e["name"] == wanted or not wanted), None)
            if chosen is None:
                r.failure(f"no serving model {wanted or ''} in /v1/models")
                raise RuntimeError("no model to load")
            _model.update(chosen)
    return _model


class _Series:
    """One stream's observations: ts one period apart (weekdays for "B"), increasing seq."""

    def __init__(self, model: dict[str, Any]) -> None:
        self.business = model["frequency"] == "B"
        self.period = int(model["frequency_seconds"])
        self.n_inputs = len(model["inputs"])
        self.base = [random.uniform(50, 150) for _ in range(self.n_inputs)]
        self.k = 0

    def ts(self, k: int) -> int:
        if not self.business:
            return T0 + k * self.period
        return int(add_business_days(T0, k))

    def next(self) -> dict[str, Any]:
        k = self.k
        self.k += 1
        w = 1.0 + 0.05 * math.sin(k / 7.0) + random.gauss(0, 0.01)
        return {"ts": self.ts(k), "seq": k, "values": [b * w for b in self.base]}


def _json(body: Any) -> dict[str, Any]:
    return {"data": orjson.dumps(body), "headers": {"content-type": "application/json"}}


class Sensor(FastHttpUser):
    weight = 10
    wait_time = constant_pacing(CADENCE_S)

    def on_start(self) -> None:
        self.model = _load_model(self)
        self.stream_id = f"locust-{RUN}-sensor-{next(_ids)}"
        self.series = _Series(self.model)
        self.path = f"/v1/models/{self.model['name']}/streams/{self.stream_id}/observations"
        self.posted = False

    @task
    def post_observation(self) -> None:
        body = {"observations": [self.series.next()]}
        name = "/v1/models/[model]/streams/[id]/observations"
        with self.client.post(self.path, name=name, catch_response=True, **_json(body)) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {(r.text or '')[:200]} {r.error or ''}")
            elif not self.posted:
                self.posted = True
                _live_streams.append(self.stream_id)


class BatchProducer(FastHttpUser):
    weight = 2
    wait_time = constant_pacing(5 * CADENCE_S)
    streams = 100

    def on_start(self) -> None:
        self.model = _load_model(self)
        me = next(_ids)
        self.ids = [f"locust-{RUN}-batch-{me}-{j}" for j in range(self.streams)]
        self.series = _Series(self.model)
        self.path = f"/v1/models/{self.model['name']}/observations"

    @task
    def post_batch(self) -> None:
        obs = self.series.next()  # every sensor of the gateway reports the same period
        body = {"streams": [{"stream_id": s, "observations": [obs]} for s in self.ids]}
        name = "/v1/models/[model]/observations (100 streams)"
        with self.client.post(self.path, name=name, catch_response=True, **_json(body)) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {(r.text or '')[:200]} {r.error or ''}")
                return
            bad = [x for x in r.json()["results"] if "error" in x]
            if bad:
                r.failure(f"{len(bad)} stream errors, e.g. {bad[0]}")


class ColumnarProducer(FastHttpUser):
    weight = 1
    wait_time = constant_pacing(5 * CADENCE_S)
    streams = 1000

    def on_start(self) -> None:
        self.model = _load_model(self)
        me = next(_ids)
        self.ids = [f"locust-{RUN}-columns-{me}-{j}" for j in range(self.streams)]
        self.series = _Series(self.model)
        self.base = np.random.default_rng(me).uniform(50, 150, (self.streams, self.series.n_inputs))
        self.path = f"/v1/models/{self.model['name']}/columns"

    @task
    def post_columns(self) -> None:
        obs = self.series.next()  # the tick: every sensor reports the same period
        k = obs["seq"]
        values = self.base * (1.0 + 0.05 * math.sin(k / 7.0))
        seqs = np.full(self.streams, k, dtype=np.int64)
        if k % 2:
            body, head = columns_binary_body(self.ids, float(obs["ts"]), values, seqs, "none")
            kind, extra = "application/octet-stream", {"inference-header-content-length": str(head)}
            name = "/v1/models/[model]/columns (1000 streams, binary)"
        else:
            body, kind, extra = columns_body(self.ids, obs["ts"], values, seqs, "none"), JSON, {}
            name = "/v1/models/[model]/columns (1000 streams, JSON)"
        headers = {"content-type": kind, **extra}
        with self.client.post(self.path, name=name, catch_response=True, data=body,
                              headers=headers) as r:  # fmt: skip
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {(r.text or '')[:200]} {r.error or ''}")
                return
            length = r.headers.get("inference-header-content-length")
            errors = (
                binary_answer(r.content, int(length))["errors"]
                if length is not None
                else orjson.loads(r.content)["errors"]
            )
            if errors:
                r.failure(f"{len(errors)} stream errors, e.g. {errors[0]}")


class DashboardReader(FastHttpUser):
    weight = 1
    wait_time = constant_pacing(2 * CADENCE_S)
    paths: ClassVar[list[str]] = []

    def on_start(self) -> None:
        self.model = _load_model(self)

    @task(2)
    def models(self) -> None:
        self.client.get("/v1/models", name="/v1/models")

    @task(2)
    def model_info(self) -> None:
        self.client.get(f"/v1/models/{self.model['name']}", name="/v1/models/[model]")

    @task(4)
    def stream_status(self) -> None:
        if not _live_streams:
            return
        sid = random.choice(_live_streams)
        self.client.get(
            f"/v1/models/{self.model['name']}/streams/{sid}", name="/v1/models/[model]/streams/[id]"
        )

    @task(1)
    def ready(self) -> None:
        self.client.get("/readyz", name="/readyz")
