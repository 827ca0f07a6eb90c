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


def ratios(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's bars, each as (figure, bar, met) from this run's own measurements."""
    out: list[dict[str, Any]] = []

    def bar(name: str, value: float | None, op: str, limit: float, how: str) -> None:
        if value is None:
            out.append(
                {"ratio": name, "value": "n/a", "bar": f"{op} {limit:g}", "met": "n/a", "how": how}
            )
            return
        met = value >= limit if op == ">=" else value <= limit
        out.append(
            {
                "ratio": name,
                "value": round(value, 3),
                "bar": f"{op} {limit:g}",
                "met": "yes" if met else "NO",
                "how": how,
            }
        )

    c = r.get("ratio_concurrency", 16)
    svc = _rps(r.get("service_one_obs", []), c)
    triv = _rps(r.get("trivial", []), c)
    naive = _rps(r.get("naive", []), c)
    bar(
        "service 1-obs req/s ÷ trivial FastAPI",
        _div(svc, triv),
        ">=",
        0.9,
        f"requests/s at concurrency {c}",
    )
    bar(
        "service 1-obs req/s ÷ naive stateless",
        _div(svc, naive),
        ">=",
        5,
        f"requests/s at concurrency {c}, naive window {r.get('naive_window')}",
    )
    multi = r.get("multi", [])
    full = [m for m in multi if m.get("forecast", "full") == "full"]
    best_full = max((m["stream_updates_per_s"] for m in full), default=None)
    best = max(multi, key=lambda m: m["stream_updates_per_s"], default=None)
    best_multi = best["stream_updates_per_s"] if best else None
    bar(
        "multi-stream updates/s, full forecasts",
        best_full,
        ">=",
        100_000,
        "best multi-stream row answering full forecasts",
    )
    bar(
        "multi-stream updates/s, any answer",
        best_multi,
        ">=",
        100_000,
        f"best row: {best['streams_per_request']} streams, forecast={best.get('forecast')}"
        if best
        else "",
    )
    ceiling = r.get("ort_ceiling_b1024_steps_per_s")
    bar(
        "multi-stream updates/s ÷ raw ORT at B=1024",
        _div(best_multi, ceiling),
        ">=",
        0.4,
        f"ORT ceiling {ceiling} steps/s, same run",
    )
    sc = r.get("scaling", {})
    bar(
        "cost after 100k obs ÷ after 10",
        sc.get("ratio_p50_last_vs_first"),
        "<=",
        1.1,
        "p50 latency, interleaved, one connection",
    )
    mem_rows = r.get("memory", {}).get("rows", [])
    per = mem_rows[-1]["bytes_per_stream"] / 1024 if mem_rows else None
    bar(
        "KB per live stream (sensor model)",
        per,
        "<=",
        2,
        f"at {mem_rows[-1]['live_streams']:,} streams" if mem_rows else "",
    )
    return out


def _rps(rows: list[dict[str, Any]], concurrency: int) -> float | None:
    for row in rows:
        if row.get("concurrency") == concurrency:
            return float(row["rps"])
    return None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def render(r: dict[str, Any]) -> str:
    parts = [
        f"## Benchmark ({r['mode']}) — {r['machine']['cpu']}, {r['machine']['cores']} cores",
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
        "p50_ms",
        "p99_ms",
        "requests",
        "errors",
        "statuses",
        "client_cpu_pct",
        "rows_per_call",
        "us_per_ort_call",
        "ort_share_pct",
    ]
    side = []
    for key, label in (
        ("service_one_obs", "service"),
        ("trivial", "trivial FastAPI"),
        ("naive", "naive FastAPI+torch"),
    ):
        side += [{"server": label, **row} for row in r.get(key, [])]
    side += [{"server": f"service ({row['model']})", **row} for row in r.get("other_models", [])]
    parts.append(table("One observation per request (same client, same run)", side, cols))
    parts.append(
        table(
            "Multi-stream requests",
            r.get("multi", []),
            [
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
            "Ratios against the bars", r.get("ratios", []), ["ratio", "value", "bar", "met", "how"]
        )
    )
    for note in r.get("notes", []):
        parts.append(f"- {note}")
    return "\n".join(parts) + "\n"
