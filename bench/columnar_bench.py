"""`python -m bench.columnar_bench [--rounds 3] [--duration 3]`: the columnar multi-stream
form against the row form and the raw ONNX Runtime ceiling, in one run.

Two parts, both printed and written to bench/results/columnar-<time>.json:

- in-process (no network, load-independent enough to decide on): CPU µs and Python calls
  per stream of 1000-stream requests through the ASGI app, row form and columnar form,
  and the columnar profile per stream: parse, lane (engine minus ORT), ORT, answer.
- a real server (bench/serve.py, pinned to its core; the client on the other): stream
  updates/s of 1000-stream requests, columnar full/none and row full/none, and the ORT
  ceiling at B=1024 (one thread, no Python), measured in each of `rounds` interleaved
  rounds (the order rotating), reported as median (min..max).

``--compare-cores`` instead runs only bulk JSON and binary against a service on one core
and a service on every core, interleaved, with the ceiling on core 0 in each round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import columnar_loads as loads
from bench import floor
from bench.columnar_loads import STREAMS, columns_request
from bench.payloads import Model, find_models
from bench.request_cost import _measure, _post
from bench.servers import cpus, pin_self_to_client_core, start_service
from service.client import columns_binary_body

RESULTS = Path(__file__).parent / "results"


def _model(models_dir: Path) -> Model:
    models = find_models(models_dir)
    return next((m for m in models if m.name == "elec-demand"), models[0])


async def in_process(models_dir: Path, model: Model, requests: int = 20) -> dict[str, float]:
    """CPU and calls per stream through the app, and the columnar profile."""
    from service.app import create_app
    from service.protocol.columns import parse_columns
    from service.protocol.columns_answer import answer_columns
    from service.protocol.requests import load_json
    from service.settings import Settings

    app: Any = create_app(
        Settings(
            models_dir=models_dir,
            snapshot_path=None,
            accuracy_sample_fraction=0.0,
            auth_disabled=True,
            max_batch_rows=1024,
        )
    )
    ids = [f"col-{j}" for j in range(STREAMS)]
    step = [0]
    col_path = f"/v1/models/{model.name}/columns"
    row_path = f"/v1/models/{model.name}/observations"
    out: dict[str, float] = {}

    def runner(path: str, body: Any) -> Any:
        async def run() -> None:
            for _ in range(requests):
                step[0] += 1
                await _send(app, path, body(step[0]))

        return run

    def binary(k: int, detail: str) -> tuple[bytes, int]:
        values = np.tile(np.asarray(model.means, dtype=np.float32), (STREAMS, 1))
        seqs = np.full(STREAMS, k, dtype=np.int64)
        return columns_binary_body(ids, float(model.ts(k)), values, seqs, detail)

    async with app.router.lifespan_context(app):
        for detail in ("full", "none"):
            for form, path, body in (
                ("columnar", col_path, lambda k, d=detail: columns_request(model, ids, k, d)),
                ("binary", col_path, lambda k, d=detail: binary(k, d)),
                ("row", row_path, lambda k, d=detail: model.multi(ids, k, d)),
            ):
                step[0] += 1
                await _send(app, path, body(step[0]))  # the streams exist: the lane runs
                cpu, calls = await _measure(runner(path, body), requests * STREAMS)
                out[f"{form}_{detail}_cpu_us_per_stream"] = cpu
                out[f"{form}_{detail}_calls_per_stream"] = calls
        # The profile of one columnar full request, part by part (CPU time).
        m = app.state.service.model(model.name)
        ort_total = [0.0]
        run = m.runtime.run

        def timed(x: Any, state: Any) -> Any:  # ORT's CPU time, in whichever thread it runs
            t0 = time.thread_time()
            answer = run(x, state)
            ort_total[0] += time.thread_time() - t0
            return answer

        m.runtime.run = timed
        from service.engine.columns import observe_columns
        from service.protocol.answers import dumps

        parse = lane = ort_s = answer = 0.0
        for _ in range(requests):
            step[0] += 1
            raw = columns_request(model, ids, step[0], "full")
            c0 = time.process_time()
            req = parse_columns(load_json(raw), m.wire)
            c1 = time.process_time()
            before = ort_total[0]
            result = await observe_columns(m, req)
            c2 = time.process_time()
            ort_s += ort_total[0] - before
            spec = m.spec
            dumps(answer_columns(m.name, m.version, req.ids, result, "full",
                                 list(spec.quantiles), spec.median_index))  # fmt: skip
            c3 = time.process_time()
            parse += c1 - c0
            lane += c2 - c1
            answer += c3 - c2
        per = 1e6 / (requests * STREAMS)
        out["profile_parse_us"] = parse * per
        out["profile_ort_us"] = ort_s * per
        out["profile_lane_us"] = lane * per - out["profile_ort_us"]
        out["profile_answer_us"] = answer * per
        # What printing the forecast alone costs, in the answer's [N, H, Q] and flat: the
        # floor under the JSON answer whatever else is made cheaper (docs/benchmarks.md).
        for name, array in (("nested", result.forecast), ("flat", result.forecast.ravel())):
            c0 = time.process_time()
            for _ in range(requests):
                dumps(array)
            out[f"forecast_print_{name}_us"] = (time.process_time() - c0) * per
    return {k: round(v, 3) for k, v in out.items()}


async def _send(app: Any, path: str, body: bytes | tuple[bytes, int]) -> None:
    """One request through the ASGI app: JSON, or (body, header length) in binary."""
    if isinstance(body, bytes):
        await _post(app, path, body)
        return
    raw, head = body
    extra = (
        (b"content-type", b"application/octet-stream"),
        (b"inference-header-content-length", b"%d" % head),
    )
    answer = await _post(app, path, raw, extra=extra)
    if b'"code"' in answer[:2000]:  # a row's error, in the binary answer's header
        raise RuntimeError(f"{path}: {answer[:300]!r}")


def _stat(xs: list[float], digits: int = 1) -> dict[str, float]:
    return {"median": round(float(np.median(xs)), digits), "min": round(min(xs), digits),
            "max": round(max(xs), digits)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument(
        "--both-cores",
        action="store_true",
        help="serve on every core (the client shares one): ORT's thread beside the loop",
    )
    parser.add_argument(
        "--compare-cores",
        action="store_true",
        help="only: one server core against every core, interleaved (bulk JSON and binary)",
    )
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--threads", action="store_true", help="also 1 vs 2 ORT threads")
    args = parser.parse_args()
    models_dir = Path(args.models_dir).resolve()
    model = _model(models_dir)
    report: dict[str, Any] = {"load_before": os.getloadavg(), "model": model.name}
    if args.compare_cores:
        report["cores"] = compare_cores(
            models_dir, model, args.rounds, args.duration, args.connections
        )
        report["load_after"] = os.getloadavg()
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"columnar-cores-{time.strftime('%Y%m%d-%H%M')}.json"
        out.write_text(json.dumps(report, indent=1))
        print(json.dumps(report["cores"], indent=1))
        print(f"written {out}")
        return 0
    report["in_process"] = asyncio.run(in_process(models_dir, model))
    print(json.dumps(report["in_process"], indent=1))
    if not args.skip_server:
        report["server"] = serve_rounds(
            models_dir, model, args.rounds, args.duration, args.connections, args.both_cores
        )
    if args.threads:
        report["ort_threads"] = ort_threads(model, args.rounds)
        print(json.dumps(report["ort_threads"], indent=1))
    report["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"columnar-{time.strftime('%Y%m%d-%H%M')}.json"
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report.get("server", {}), indent=1))
    print(f"written {out}")
    return 0


def ort_threads(
    model: Model, rounds: int, batches: tuple[int, ...] = (256, 1024)
) -> dict[str, Any]:
    """Raw ORT steps/s with 1 and 2 intra-op threads (this process on every core), in
    interleaved rounds: whether a second thread pays at large batches."""
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    sessions = {t: floor.session(model, t) for t in (1, 2)}
    figures: dict[str, list[float]] = {f"b{b}_t{t}": [] for b in batches for t in sessions}
    for r in range(rounds):
        for b in batches:
            inputs = floor.feed(model, b)
            for t in sorted(sessions, reverse=bool(r % 2)):
                figures[f"b{b}_t{t}"].append(b / floor.time_call(sessions[t], inputs, 0.5))
    out: dict[str, Any] = {k: _stat(v) for k, v in figures.items()}
    for b in batches:
        ratio = [a / c for a, c in zip(figures[f"b{b}_t2"], figures[f"b{b}_t1"], strict=True)]
        out[f"b{b}_t2_vs_t1"] = _stat(ratio, 3)
    return out


def serve_rounds(
    models_dir: Path, model: Model, rounds: int, secs: float, conns: int, both: bool = False
) -> dict[str, Any]:
    """Every case in each round (the order rotating), the ORT ceiling between them."""
    cases = [
        (form, detail) for form in ("json", "binary", "row", "ws") for detail in ("full", "none")
    ]
    figures: dict[str, list[float]] = {f"{f}_{d}": [] for f, d in cases}
    figures["ort_ceiling_b1024"] = []
    cores = set(range(os.cpu_count() or 1)) if both else None
    server = start_service(models_dir, RESULTS / "logs", cores, accuracy_sample_fraction=0.0,
                           max_batch_rows=1024)  # fmt: skip
    pin_self_to_client_core()
    sess, inputs = floor.session(model), floor.feed(model, 1024)
    out: dict[str, Any] = {"connections": conns, "streams_per_request": STREAMS,
                           "server_cores": server.affinity()}  # fmt: skip
    try:
        for r in range(rounds):
            order = cases[r % len(cases) :] + cases[: r % len(cases)]
            for form, detail in order:
                tag = f"r{r}{form}{detail}"
                if form == "ws":
                    ups = asyncio.run(loads.ws_columnar(model, server.port, tag, detail, secs))
                else:
                    raw = loads.bulk(model, server.port, tag, form, detail)
                    result = asyncio.run(
                        loads.closed_loop(server.port, raw, conns, secs, units=STREAMS)
                    )
                    ups = result["per_s"]
                figures[f"{form}_{detail}"].append(ups)
            # The ceiling on the server's core, between the loads of the same round.
            os.sched_setaffinity(0, set(server.affinity()))
            figures["ort_ceiling_b1024"].append(1024 / floor.time_call(sess, inputs, 0.5))
            pin_self_to_client_core()
        out["fairness"] = asyncio.run(loads.fairness(model, server.port, "fair", secs))
    finally:
        server.stop()
    out.update({k: _stat(v) for k, v in figures.items()})
    ceiling = figures["ort_ceiling_b1024"]
    for k in figures:
        if k != "ort_ceiling_b1024":
            ratios = [a / b for a, b in zip(figures[k], ceiling, strict=True)]
            out[f"{k}_vs_ceiling"] = _stat(ratios, 3)
    return out


def compare_cores(
    models_dir: Path, model: Model, rounds: int, secs: float, conns: int
) -> dict[str, Any]:
    """The service on one core against the service on every core (ORT's thread free to
    run beside the loop; the client still on core 1), in interleaved rounds, each setup
    with a fresh server per round; the ORT ceiling on core 0 between them."""
    server_core, client_core = cpus()
    setups = {"one_core": server_core, "all_cores": server_core | client_core}
    cases = [("json", "full"), ("json", "none"), ("binary", "full"), ("binary", "none")]
    figures: dict[str, list[float]] = {f"{name}_{f}_{d}": [] for name in setups for f, d in cases}
    figures["ort_ceiling_b1024"] = []
    sess, inputs = floor.session(model), floor.feed(model, 1024)
    mine = os.sched_getaffinity(0)  # restored at the end: a caller (a test) stays unpinned
    try:
        _compare_rounds(models_dir, model, rounds, secs, conns, setups, cases, figures,
                        sess, inputs)  # fmt: skip
    finally:
        os.sched_setaffinity(0, mine)
    out: dict[str, Any] = {k: _stat(v) for k, v in figures.items()}
    for form, detail in cases:
        one, every = figures[f"one_core_{form}_{detail}"], figures[f"all_cores_{form}_{detail}"]
        gain = [a / b if b else 0.0 for a, b in zip(every, one, strict=True)]
        out[f"{form}_{detail}_all_vs_one"] = _stat(gain, 3)
        for name in setups:
            ratios = [a / c for a, c in zip(figures[f"{name}_{form}_{detail}"],
                                            figures["ort_ceiling_b1024"], strict=True)]  # fmt: skip
            out[f"{name}_{form}_{detail}_vs_ceiling"] = _stat(ratios, 3)
    return out


def _compare_rounds(
    models_dir: Path, model: Model, rounds: int, secs: float, conns: int,
    setups: dict[str, set[int]], cases: list[tuple[str, str]],
    figures: dict[str, list[float]], sess: Any, inputs: Any,
) -> None:  # fmt: skip
    for r in range(rounds):
        order = list(setups) if r % 2 == 0 else list(reversed(setups))
        for name in order:
            server = start_service(models_dir, RESULTS / "logs", setups[name],
                                   accuracy_sample_fraction=0.0, max_batch_rows=1024)  # fmt: skip
            pin_self_to_client_core()
            try:
                for form, detail in cases:
                    raw = loads.bulk(model, server.port, f"c{r}{name}{form}{detail}", form, detail)
                    result = asyncio.run(
                        loads.closed_loop(server.port, raw, conns, secs, units=STREAMS)
                    )
                    figures[f"{name}_{form}_{detail}"].append(result["per_s"])
            finally:
                server.stop()
        os.sched_setaffinity(0, setups["one_core"])
        figures["ort_ceiling_b1024"].append(1024 / floor.time_call(sess, inputs, 0.5))
        pin_self_to_client_core()
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in figures.items()),
              flush=True)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
