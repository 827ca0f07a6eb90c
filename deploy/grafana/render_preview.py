"""Render a static preview of the Grafana dashboard from a running Prometheus.

Runs every target of every panel of deploy/grafana/dashboards/forecast.json as a range
query (Grafana variables set to "All") and draws one matplotlib axis per panel, so the
docs can show what the dashboard looks like without a Grafana. Needs matplotlib (the
[train] extra) and httpx.

    python deploy/grafana/render_preview.py --prometheus http://127.0.0.1:9090 \
        --minutes 3 --out docs/dashboard.png
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DASHBOARD = Path(__file__).resolve().parent / "dashboards" / "forecast.json"
BUILTINS = {"__rate_interval": "15s", "__interval": "15s", "__range": "1m"}


def substitute(expr: str, variables: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)(?::\w+)?\}|\$(\w+)",
        lambda m: variables[m.group(1) or m.group(2)],
        expr,
    )


def legend(template: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    return text.strip() or ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    args = parser.parse_args()

    dash = json.loads(DASHBOARD.read_text())
    variables = dict(BUILTINS)
    for var in dash["templating"]["list"]:
        variables[var["name"]] = var.get("allValue") or ".*"
    panels = [p for p in dash["panels"] if p.get("targets")]
    end = time.time()
    start = end - 60 * args.minutes
    step = max(1.0, (end - start) / 200)

    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows), squeeze=False)
    with httpx.Client(base_url=args.prometheus, timeout=30) as client:
        for ax, panel in zip(axes.flat, panels, strict=False):
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
            for target in panel["targets"]:
                query = substitute(target["expr"], variables)
                body = client.get(
                    "/api/v1/query_range",
                    params={"query": query, "start": start, "end": end, "step": step},
                ).json()
                for series in body["data"]["result"][:8]:
                    t = [float(v[0]) - end for v in series["values"]]
                    y = [float(v[1]) for v in series["values"]]
                    style = "--" if target["legendFormat"].startswith("offline") else "-"
                    label = legend(target.get("legendFormat", ""), series["metric"])
                    ax.plot(t, y, style, label=label[:40])
            ax.set_title(panel["title"], fontsize=10)
            ax.set_xlabel("seconds before now", fontsize=8)
            if unit and unit != "none":
                ax.set_ylabel(unit, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="upper left")
        for ax in axes.flat[len(panels) :]:
            ax.axis("off")
    fig.suptitle(f"{dash['title']} — preview from a real Prometheus", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
