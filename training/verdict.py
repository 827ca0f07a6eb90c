"""The quality gate: does the model beat what a user would do instead, in words.

A level model is judged on MAE (its median against the actuals); a returns (price) model
on pinball loss, because its value is its intervals. The verdict compares the model with
the best baseline on that metric, names it by its period in time, and says how far
ahead or behind the model is. It is printed, written into the manifest and the report,
and `--require-beat` turns it into a failing exit status with nothing exported.
"""

from __future__ import annotations

from training import frequency as freq

NAMES = {
    "naive": "naive (last value)",
    "mstl": "MSTL",
    "autoets": "AutoETS",
    "autoarima": "AutoARIMA",
    "random_walk": "random walk",
    "historical_returns": "historical returns",
    "garch": "GARCH(1,1)",
}
COVERAGE_BAND = (0.70, 0.90)  # an 80% band should cover within these
# Below this many test origins the verdict says the ranking is thin: on a short series
# (a 5-week one has 2 daily origins) one unusual day decides it.
FEW_ORIGINS = 10


class QualityGateError(RuntimeError):
    """The model does not beat the baseline --require-beat names; nothing was exported."""


def display(name: str) -> str:
    """'seasonal_naive_1w' -> 'seasonal naive 1 week'."""
    if name.startswith("seasonal_naive_"):
        return f"seasonal naive {freq.words(name.removeprefix('seasonal_naive_'))}"
    return NAMES.get(name, name)


def _percent(fraction: float) -> str:
    """A whole percent, or one decimal under 1% (0.09% is not "0% below")."""
    return f"{fraction:.0%}" if abs(fraction) >= 0.01 or fraction == 0 else f"{fraction:.1%}"


def judge(scores: dict, mode: str) -> dict[str, object]:
    """The verdict from evaluation scores ({"model": {...}, "baselines": {...}})."""
    metric = "pinball" if mode == "returns" else "mae"
    model = float(scores["model"][metric])
    others = {n: float(b[metric]) for n, b in scores["baselines"].items()}
    verdict: dict[str, object] = {"metric": metric, "model": model}
    coverage = scores["model"].get("coverage_80")
    origins = scores.get("origins")
    thin = (
        f"; only {origins} test origins: too few to rank the methods with confidence"
        if origins is not None and origins < FEW_ORIGINS
        else ""
    )
    if not others:
        text = f"model {metric.upper()} {model:.4g}; no baselines{thin}"
        verdict.update(beats_all=True, origins=origins, text=text)
        return verdict
    best = min(others, key=lambda n: others[n])
    change = model / others[best] - 1.0 if others[best] > 0 else float("inf")
    beaten = sorted(n for n, v in others.items() if model < v)
    lost = sorted((n for n, v in others.items() if model >= v), key=lambda n: others[n])
    if not lost:
        text = (
            f"model {metric.upper()} {_percent(-change)} below the best baseline ({display(best)})"
        )
    else:
        worst = lost[0]
        behind = model / others[worst] - 1.0 if others[worst] > 0 else float("inf")
        text = f"WARNING: model loses to {display(worst)} by {_percent(behind)} ({metric.upper()})"
        if len(lost) > 1:
            text += f", and to {', '.join(display(n) for n in lost[1:])}"
        if beaten:
            text += f"; it beats {', '.join(display(n) for n in beaten)}"
    if coverage is not None and not COVERAGE_BAND[0] <= coverage <= COVERAGE_BAND[1]:
        text += f"; WARNING: the 80% band covers {coverage:.0%} of actuals"
    text += thin
    verdict.update(
        best_baseline=best,
        best_baseline_value=others[best],
        change_vs_best=change,
        beats_all=not lost,
        beats=beaten,
        loses_to=lost,
        coverage_80=coverage,
        origins=origins,
        text=text,
    )
    return verdict


def require(verdict: dict[str, object], baseline: str, baselines: list[str]) -> None:
    """Raise QualityGateError unless the model beats `baseline` ("all" = every one)."""
    check_name(baseline, tuple(baselines))
    wanted = baselines if baseline == "all" else [baseline]
    lost = [b for b in wanted if b in verdict.get("loses_to", [])]  # type: ignore[operator]
    if lost:
        raise QualityGateError(
            f"--require-beat {baseline}: the model does not beat "
            f"{', '.join(display(b) for b in lost)} on {str(verdict['metric']).upper()} "
            f"({verdict['text']}); nothing was exported"
        )


def check_name(baseline: str, baselines: tuple[str, ...]) -> None:
    """Fail fast, before training, on a --require-beat name the run will not compute."""
    if baseline != "all" and baseline not in baselines:
        raise QualityGateError(
            f"--require-beat {baseline}: no such baseline in this run; "
            f"baselines: {', '.join(baselines)}, or 'all'"
        )
