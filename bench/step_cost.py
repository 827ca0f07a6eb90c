"""The raw ORT step of several artifacts side by side: what a memory mode costs per step.

    python -m bench.step_cost models/elec-demand/1 models/elec-demand-seasonal/1

One thread, T=1, zero state, B=1 and B=256; the graphs are timed in interleaved rounds
(median of the rounds, min..max) so load from other work hits each alike. Prints a
markdown table with the manifest's bytes per stream and the test MAE beside the cost.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench.floor import feed, session, time_call
from bench.payloads import Model


def measure(dirs: list[Path], rounds: int, budget_s: float) -> list[dict[str, object]]:
    models = [Model.load(d) for d in dirs]
    sessions = [session(m) for m in models]
    samples: dict[tuple[int, int], list[float]] = {}
    for _ in range(rounds):
        for i, (m, sess) in enumerate(zip(models, sessions, strict=True)):
            for batch in (1, 256):
                per_call = time_call(sess, feed(m, batch), budget_s)
                samples.setdefault((i, batch), []).append(per_call * 1e6 / batch)
    rows = []
    for i, m in enumerate(models):
        row: dict[str, object] = {
            "model": f"{m.name}/{m.version_dir.name}",
            "memory": (m.manifest.get("memory") or {}).get("kind", "none"),
            "bytes_per_stream": m.manifest.get("bytes_per_stream"),
            "mae": m.manifest["evaluation"]["model"]["mae"],
        }
        for batch in (1, 256):
            values = samples[(i, batch)]
            row[f"b{batch}"] = (statistics.median(values), min(values), max(values))
        rows.append(row)
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| model | memory | bytes per stream | test MAE | µs per step, B=1 "
        "| µs per stream step, B=256 |",
        "| --- | --- | --: | --: | --: | --: |",
    ]
    for r in rows:
        cells = []
        for batch in (1, 256):
            med, lo, hi = r[f"b{batch}"]  # type: ignore[misc]
            cells.append(f"{med:.1f} ({lo:.1f}..{hi:.1f})")
        lines.append(
            f"| {r['model']} | {r['memory']} | {r['bytes_per_stream']} | {r['mae']:.4g} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="artifact version folders")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per timing")
    args = parser.parse_args()
    print(table(measure(args.dirs, args.rounds, args.budget)))


if __name__ == "__main__":
    main()
