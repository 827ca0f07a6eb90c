"""Tables and ratios from one run's results (a dict that is also written as JSON)."""

from __future__ import annotations

from typing import Any


def table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return f"{title}\n  (none)\n"
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"
    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    body = [
        "| " + " | ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    return "\n".join([f"### {title}", "", line, sep, *body, ""])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return " ".join(f"{k}:{x}" for k, x in v.items())
    return str(v)


SERVERS = {
    "service": "service",
    "trivial_asgi": "trivial raw ASGI",
    "trivial_fastapi": "trivial FastAPI",
    "naive": "naive FastAPI+torch",
}


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min and max of one figure over the rounds of a run."""
    v = sorted(values)
    mid = len(v) // 2
    median = v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
    return {"median": median, "min": v[0], "max": v[-1], "rounds": len(v)}


def summarise_rounds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (server, concurrency): req/s and latency as median over the rounds,
    req/s also with its min and max."""
    keys: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        keys.setdefault((row["server"], row["concurrency"]), []).append(row)
    out = []
    for (server, c), group in keys.items():
        rps = spread([g["rps"] for g in group])
        summary: dict[str, Any] = {
            "server": server,
            "concurrency": c,
            "rps": round(rps["median"], 1),
            "rps_min": rps["min"],
            "rps_max": rps["max"],
            "rounds": rps["rounds"],
            "errors": sum(g["errors"] for g in group),
        }
        for k in (
            "p50_ms",
            "p99_ms",
            "client_cpu_pct",
            "rows_per_call",
            "us_per_ort_call",
            "ort_share_pct",
        ):
            vals = [g[k] for g in group if k in g]
            if vals:
                summary[k] = round(spread(vals)["median"], 3)
        out.append(summary)
    return out


def _per_round(rows: list[dict[str, Any]], server: str, c: int) -> dict[int, float]:
    return {
        row["round"]: float(row["rps"])
        for row in rows
        if row["server"] == server and row["concurrency"] == c
    }


def ratios(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's bars, each from this run's own measurements: the median over the
    run's interleaved rounds (a ratio is taken inside each round, then summarised), with
    the min and max beside it."""
    out: list[dict[str, Any]] = []

    def bar(name: str, values: list[float], op: str, limit: float, how: str) -> None:
        row: dict[str, Any] = {"ratio": name, "bar": f"{op} {limit:g}", "how": how}
        if not values:
            out.append({**row, "value": "n/a", "min": "n/a", "max": "n/a", "met": "n/a"})
            return
        s = spread(values)
        met = s["median"] >= limit if op == ">=" else s["median"] <= limit
        out.append(
            {
                **row,
                "value": round(s["median"], 3),
                "min": round(s["min"], 3),
                "max": round(s["max"], 3),
                "rounds": s["rounds"],
                "met": "yes" if met else "NO",
            }
        )

    c = r.get("ratio_concurrency", 16)
    rounds = r.get("one_obs_rounds", [])
    svc = _per_round(rounds, "service", c)
    for other, label in (
        ("trivial_asgi", "trivial raw ASGI"),
        ("trivial_fastapi", "trivial FastAPI"),
        ("naive", "naive stateless"),
    ):
        theirs = _per_round(rounds, other, c)
        values = [svc[k] / theirs[k] for k in sorted(svc) if theirs.get(k)]
        limit, how = (
            (5, f", naive window {r.get('naive_window')}") if other == "naive" else (0.9, "")
        )
        bar(
            f"service 1-obs req/s ÷ {label}",
            values,
            ">=",
            limit,
            f"requests/s at concurrency {c}, per round{how}",
        )
    multi = r.get("multi", [])
    by_round: dict[int, list[dict[str, Any]]] = {}
    for m in multi:
        by_round.setdefault(m.get("round", 0), []).append(m)
    best_full = [
        max(m["stream_updates_per_s"] for m in ms if m.get("forecast", "full") == "full")
        for ms in by_round.values()
        if any(m.get("forecast", "full") == "full" for m in ms)
    ]
    best_any = {k: max(m["stream_updates_per_s"] for m in ms) for k, ms in by_round.items()}
    bar(
        "multi-stream updates/s, full forecasts",
        best_full,
        ">=",
        100_000,
        "best multi-stream row answering full forecasts, per round",
    )
    bar(
        "multi-stream updates/s, any answer",
        list(best_any.values()),
        ">=",
        100_000,
        "best multi-stream row of any answer detail, per round",
    )
    ceilings = {row["round"]: row["steps_per_s"] for row in r.get("multi_ceiling", [])}
    bar(
        "multi-stream updates/s ÷ raw ORT at B=1024",
        [best_any[k] / ceilings[k] for k in sorted(best_any) if ceilings.get(k)],
        ">=",
        0.4,
        "best row ÷ the ORT ceiling measured in the same round",
    )
    sc = r.get("scaling", {})
    bar(
        "cost after 100k obs ÷ after 10",
        sc.get("ratio_p50_parts", []),
        "<=",
        1.1,
        "p50 latency, interleaved on one connection, per slice of the run",
    )
    mem_rows = r.get("memory", {}).get("rows", [])
    bar(
        "KB per live stream (sensor model)",
        [mem_rows[-1]["bytes_per_stream"] / 1024] if mem_rows else [],
        "<=",
        2,
        f"at {mem_rows[-1]['live_streams']:,} streams (one measurement)" if mem_rows else "",
    )
    return out


def render(r: dict[str, Any]) -> str:
    mach = r["machine"]
    parts = [
        f"## Benchmark ({r['mode']}) — {mach['cpu']}, {mach['cores']} cores",
        "",
        f"Run {mach.get('date', '?')} at commit {mach.get('git', '?')};"
        f" {r.get('plan', {}).get('rounds', 1)} interleaved rounds.",
        "",
    ]
    for name, rows in r.get("floor", {}).items():
        parts.append(
            table(
                f"Floor: raw ORT step, {name}, 1 thread",
                rows,
                ["batch", "us_per_call", "us_per_stream_step", "steps_per_s"],
            )
        )
    if "floor_sequence" in r:
        parts.append(
            table(
                "Floor: ORT window call, B=1",
                r["floor_sequence"],
                ["model", "steps", "us_per_call"],
            )
        )
    cols = [
        "server",
        "concurrency",
        "rps",
        "rps_min",
        "rps_max",
        "rounds",
        "p50_ms",
        "p99_ms",
        "errors",
        "client_cpu_pct",
        "rows_per_call",
        "us_per_ort_call",
        "ort_share_pct",
    ]
    side = [
        {**row, "server": SERVERS.get(row["server"], row["server"])} for row in r.get("one_obs", [])
    ]
    side += [{"server": f"service ({row['model']})", **row} for row in r.get("other_models", [])]
    parts.append(
        table("One observation per request (req/s: median of the rounds, min..max)", side, cols)
    )
    parts.append(
        table(
            "Multi-stream requests (every round)",
            r.get("multi", []),
            [
                "round",
                "streams_per_request",
                "forecast",
                "concurrency",
                "rps",
                "stream_updates_per_s",
                "p50_ms",
                "p99_ms",
                "errors",
                "client_cpu_pct",
                "rows_per_call",
                "us_per_ort_call",
                "ort_share_pct",
            ],
        )
    )
    parts.append(
        table(
            "WebSocket (one observation per message)",
            r.get("websocket", []),
            [
                "connections",
                "streams_per_connection",
                "in_flight_per_connection",
                "observations_per_s",
                "errors",
                "client_cpu_pct",
            ],
        )
    )
    parts.append(
        table(
            "Stateless forecast (history per request)",
            r.get("stateless", []),
            [
                "window",
                "concurrency",
                "rps",
                "p50_ms",
                "p99_ms",
                "errors",
                "rows_per_call",
                "us_per_ort_call",
                "ort_share_pct",
            ],
        )
    )
    parts.append(
        table(
            "Scaling: one observation after N earlier ones",
            r.get("scaling", {}).get("rows", []),
            ["earlier_observations", "requests", "p50_ms", "mean_ms", "p99_ms"],
        )
    )
    parts.append(
        table(
            "Memory per live stream (service RSS)",
            r.get("memory", {}).get("rows", []),
            ["live_streams", "rss_mb", "bytes_per_stream", "create_streams_per_s"],
        )
    )
    parts.append(
        table(
            "ORT ceiling at B=1024, per multi-stream round",
            r.get("multi_ceiling", []),
            ["round", "steps_per_s"],
        )
    )
    parts.append(
        table(
            "Ratios against the bars (value = median of the rounds)",
            r.get("ratios", []),
            ["ratio", "value", "min", "max", "rounds", "bar", "met", "how"],
        )
    )
    for note in r.get("notes", []):
        parts.append(f"- {note}")
    return "\n".join(parts) + "\n"
