"""The training CLI.

    python -m training all --config elec-demand          # train, evaluate, export
    python -m training train --config sp500              # train only: runs/<name>.pt
    python -m training evaluate --config sp500           # report from runs/<name>.pt
    python -m training export --config sp500 --out models
    python -m training ensure                            # build missing default models
    python -m training configs                           # the presets and what they derive
    python -m training suite                             # the accuracy suite (training/suite.py)

A config is a preset name; `--dataset` swaps the data (a packaged key or a CSV/Parquet
path with --time-column and --value-columns), so a user file trains with the same recipe,
its horizon, seasons and baselines derived from its own frequency.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from training import frequency as freq
from training.config import PRESETS, TrainConfig, preset
from training.data import DataError, FillPolicy, Series, load
from training.export import ExportError
from training.global_train import training_rows
from training.panel import Panel, load_panel
from training.pipeline import build_artifact, evaluation
from training.resolve import resolve
from training.train import Trained, limit_rows, train
from training.verdict import QualityGateError, check_name, display

DEFAULT_MODELS = ("elec-demand", "sp500")
COMMANDS = ["all", "train", "evaluate", "export", "ensure", "configs", "suite"]
GATE_FAILED = 3  # exit status when --require-beat is not met
EXPORT_FAILED = 4  # exit status when the exported graph fails its checks


def _series(args: argparse.Namespace, dataset: str) -> Series:
    """The data: a packaged key, or a file read with the file options and --fill."""
    fill = FillPolicy.parse(args.fill, args.long_gaps)
    if Path(dataset).suffix.lower() not in (".csv", ".parquet", ".pq"):
        return load(dataset)  # a packaged data set (or an error naming them)
    return load(
        dataset,
        time_column=args.time_column,
        value_columns=args.value_columns.split(",") if args.value_columns else None,
        frequency=args.frequency,
        target=args.target,
        fill=fill,
    )


def _periods(text: str, frequency: str, flag: str) -> tuple[int, ...]:
    """'1d,1w' or '48,336' -> steps of this frequency."""
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            out.append(int(part) if part.isdigit() else freq.steps_of_label(part, frequency))
        except ValueError as exc:
            raise DataError(f"{flag} {text!r}: {exc}") from None
    return tuple(out)


def _config(args: argparse.Namespace, series: Series | None = None) -> TrainConfig:
    config = preset(args.config)
    changes: dict[str, object] = {}
    if args.dataset:
        changes["dataset"] = args.dataset
        if args.name is None and args.dataset not in PRESETS:
            changes["name"] = Path(args.dataset).stem
    if args.name:
        changes["name"] = args.name
    for flag in ("epochs", "origin_every", "memory", "anchor", "start_weight", "max_train_seconds"):
        if getattr(args, flag) is not None:
            changes[flag] = getattr(args, flag)
    if getattr(args, "no_short_recipe", False):
        changes["short_recipe"] = False
    if args.fill != "none":
        changes["fill"] = str(FillPolicy.parse(args.fill, args.long_gaps))
    if args.time_features is not None:
        changes["time_features"] = tuple(f for f in args.time_features.split(",") if f)
    if args.baselines:
        changes["baselines"] = tuple(args.baselines.split(","))
    if series is not None:
        if args.horizon:
            changes["horizon"] = _periods(args.horizon, series.frequency, "--horizon")[0]
        if args.seasons is not None:
            seasons = _periods(args.seasons, series.frequency, "--seasons") if args.seasons else ()
            changes["seasons"] = seasons
    return config.replace(**changes) if changes else config


def _checkpoint(args: argparse.Namespace, config: TrainConfig) -> Path:
    return Path(args.runs) / f"{config.name}.pt"


def _train(args: argparse.Namespace, config: TrainConfig, series: Series) -> Trained:
    trained = train(config, series=series, progress=not args.quiet)
    path = _checkpoint(args, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "config": config.to_dict(),
            "weights": trained.model.state_dict(),
            "epochs": trained.epochs_run,
            "seconds": trained.seconds,
            "best_val_loss": trained.best_val_loss,
        },
        path,
    )
    print(
        f"trained {config.name}: {trained.epochs_run} epochs in {trained.seconds:.0f} s -> {path}"
    )
    return trained


def _restore(args: argparse.Namespace, config: TrainConfig, series: Series) -> Trained:
    """Rebuild the data and model exactly as training did, then load the saved weights."""
    path = _checkpoint(args, config)
    if not path.exists():
        raise SystemExit(f"no checkpoint {path}: run `python -m training train` first")
    saved = torch.load(path, weights_only=True)
    # The graph's shape follows the saved training: a checkpoint from before `anchor`
    # existed (or trained with --anchor naive) has no shift terms.
    # Its start weight is resolved again from the same data, as training did (a checkpoint
    # from before `start_weight` existed was not blended).
    anchor = str(saved["config"].get("anchor", "naive"))
    weight = saved["config"].get("start_weight", 0.0)
    trained = train(
        config.replace(epochs=0, anchor=anchor, start_weight=weight), series=series, progress=False
    )
    trained.model.load_state_dict(saved["weights"])
    trained.model.eval()
    # The artifact describes the training that made the weights, not this rebuild.
    trained.config = trained.config.replace(epochs=config.epochs)
    trained.epochs_run = saved["epochs"]
    trained.seconds = saved["seconds"]
    trained.best_val_loss = saved["best_val_loss"]
    return trained


def _describe(
    name: str, config: TrainConfig, series: Series, pooled_rows: int | None = None
) -> str:
    """One preset on one data set: what it sets and what it derives from the data
    (pooled_rows: a global model's training rows, as training resolves with them)."""
    series = limit_rows(series, config.max_rows)
    resolved, notes = resolve(config, series, pooled_rows)
    seasons = resolved.seasons or ()
    lines = [
        f"{name}: {series.source} ({series.frequency}, {len(series.frame)} rows), "
        f"mode {resolved.mode}",
        f"  horizon {resolved.horizon} steps; seasons "
        + (
            ", ".join(f"{s} ({freq.words(freq.label(s, series.frequency))})" for s in seasons)
            or "none"
        )
        + f"; MASE season {resolved.season}; memory {resolved.memory}"
        + (
            f" (anchor {resolved.anchor}, start weight {resolved.start_weight or 0:g})"
            if resolved.memory == "seasonal"
            else ""
        ),
        f"  time features {', '.join(resolved.time_features or ()) or 'none'}; origins every "
        f"{resolved.origin_every} steps; statsforecast window {resolved.baseline_window}",
        "  baselines " + ", ".join(display(b) for b in resolved.baselines or ()),
        *[f"  note: {n}" for n in notes],
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument(
        "--config",
        help="a preset name (see `configs`); default: 'sensor' (everything derived from the "
        "data) with --dataset, else 'elec-demand' (the served default model)",
    )
    parser.add_argument("--dataset", help="override: packaged data set key or CSV/Parquet path")
    data = parser.add_argument_group("a CSV/Parquet file")
    data.add_argument("--time-column", default="ts", help="time column (default: ts)")
    data.add_argument(
        "--id-column",
        help="long format, many series: the column naming each row's series; one global "
        "model is trained across them and evaluated per series (command 'all' only)",
    )
    data.add_argument(
        "--compare-per-series",
        action="store_true",
        help="with --id-column: also train each series alone (same settings and split) and "
        "write the MAE both ways to <runs>/<name>-global-vs-per-series.md",
    )
    data.add_argument(
        "--value-columns", help="comma-separated value columns, target first (default: all)"
    )
    data.add_argument("--target", help="the column to forecast (default: the first value column)")
    data.add_argument("--frequency", help="pandas frequency alias; inferred when omitted")
    data.add_argument(
        "--fill",
        default="none",
        help="gaps and missing values: none (refuse), carry:N (repeat the last value), "
        "interpolate:N (straight line in time) or zero:N (0, for counts of events), for "
        "runs of up to N steps (default: none)",
    )
    data.add_argument(
        "--long-gaps",
        default="refuse",
        choices=["refuse", "latest"],
        help="a run longer than --fill's N: refuse, or train on the data after the last one",
    )
    knobs = parser.add_argument_group("overrides of what is derived from the frequency")
    knobs.add_argument("--horizon", help="steps ahead, or a period: 48, 1d, 1w")
    knobs.add_argument("--seasons", help="seasonal periods: 1d,1w or 48,336; '' = none")
    knobs.add_argument("--memory", choices=["seasonal", "none"], help="seasonal memory")
    knobs.add_argument(
        "--anchor",
        choices=["fitted", "naive"],
        help="with seasonal memory, start from the fitted seasonal linear forecast "
        "(default) or from same time one longest season ago",
    )
    knobs.add_argument(
        "--start-weight",
        type=float,
        help="with the fitted anchor, the seasonal start's share of the exported median "
        "forecast (default: 0.5 on a series short enough for the short-series recipe, "
        "else 0 = the trained model alone)",
    )
    knobs.add_argument(
        "--no-short-recipe",
        action="store_true",
        help="keep the preset's segments, chunk and patience on a short series",
    )
    knobs.add_argument("--time-features", help="time_of_day,day_of_week,day_of_year; '' = none")
    knobs.add_argument("--baselines", help="comma-separated, e.g. seasonal_naive,mstl,autoets")
    knobs.add_argument("--origin-every", type=int, help="rolling origins every n steps")
    parser.add_argument("--name", help="override the model name")
    parser.add_argument("--epochs", type=int, help="override the number of epochs")
    parser.add_argument(
        "--max-train-seconds",
        type=float,
        help="training time budget; evaluation (the statistical baselines at every origin, "
        "per series) comes on top",
    )
    parser.add_argument(
        "--require-beat",
        metavar="BASELINE",
        help="fail (exit 3, nothing exported) unless the model beats this baseline "
        "(a name from the report, or 'all') on MAE (pinball for price models)",
    )
    suite = parser.add_argument_group("suite")
    suite.add_argument("--cases", help="comma-separated suite cases (default: all)")
    suite.add_argument("--quick", action="store_true", help="tiny networks, naive baselines")
    parser.add_argument("--out", default="models", help="where artifacts are written")
    parser.add_argument("--runs", default="runs", help="where checkpoints are written")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config is None:
        args.config = "sensor" if args.dataset else "elec-demand"
    try:
        if args.command == "configs" and args.id_column:
            panel = _panel(args)
            shortest = panel.shortest()
            print(
                f"{len(panel.ids)} series by {args.id_column!r} ({', '.join(panel.ids)}): "
                f"one model; settings derived from the shortest, {shortest.name}"
            )
            config = _config(args, shortest)
            rows = training_rows(config, [limit_rows(s, config.max_rows) for s in panel.series])
            print(_describe(args.config, config, shortest, rows))
            return 0
        if args.command == "configs":
            names = [args.config] if args.dataset else list(PRESETS)
            for name in names:
                series = _series(args, args.dataset or preset(name).dataset)
                print(
                    _describe(name, _config(args, series) if args.dataset else preset(name), series)
                )
            return 0
        if args.command == "suite":
            from training.suite import main as suite_main

            return suite_main(args)
        if args.command == "ensure":
            for name in DEFAULT_MODELS:
                if (Path(args.out) / name).exists():
                    print(f"{name}: present in {args.out}/")
                    continue
                print(f"{name}: missing, training it now")
                build_artifact(train(preset(name), progress=not args.quiet), Path(args.out))
            return 0
        if args.compare_per_series and not args.id_column:
            raise DataError("--compare-per-series needs --id-column (a file of many series)")
        if args.id_column:
            return _global(args)
        series = _series(args, args.dataset or preset(args.config).dataset)
        config = _config(args, series)
        # Everything the run needs is checked before minutes of training.
        resolved, _ = resolve(config, limit_rows(series, config.max_rows))
        if args.require_beat:
            check_name(args.require_beat, tuple(resolved.baselines or ()))
        if args.command == "train":
            _train(args, config, series)
        elif args.command == "evaluate":
            scores, *_ = evaluation(_restore(args, config, series))
            print(json.dumps({k: scores[k] for k in ("model", "baselines", "verdict")}, indent=2))
            print(f"verdict: {scores['verdict']['text']}", file=sys.stderr)
        elif args.command == "export":
            directory = build_artifact(
                _restore(args, config, series), Path(args.out), args.require_beat
            )
            print(directory)
            _say_verdict(directory)
        else:
            trained = _train(args, config, series)
            directory = build_artifact(trained, Path(args.out), args.require_beat)
            print((directory / "report.md").read_text())
            print(f"artifact: {directory}")
            _say_verdict(directory)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except QualityGateError as exc:
        print(f"quality gate: {exc}", file=sys.stderr)
        return GATE_FAILED
    except ExportError as exc:
        # The graph does not reproduce the trained model; staging is removed, so no
        # artifact a service could load is left behind.
        print(f"export failed: {exc}; that model was not exported", file=sys.stderr)
        return EXPORT_FAILED
    return 0


def _global(args: argparse.Namespace) -> int:
    """--id-column: one model across the series of a long-format file."""
    from training.global_pipeline import build_global_artifact
    from training.global_train import train_global

    if args.command != "all":
        raise DataError(
            f"--id-column works with the commands 'all' and 'configs', not {args.command!r}"
        )
    panel = _panel(args)
    config = _config(args, panel.shortest())
    resolved, _ = resolve(config, limit_rows(panel.shortest(), config.max_rows))
    if args.require_beat:
        check_name(args.require_beat, tuple(resolved.baselines or ()))
    trained = train_global(config, panel, progress=not args.quiet)
    directory = build_global_artifact(trained, Path(args.out), args.require_beat)
    print((directory / "report.md").read_text())
    print(f"artifact: {directory}")
    _say_verdict(directory)
    if args.compare_per_series:
        from training.global_compare import compare_per_series, comparison_table, write_comparison

        scores = json.loads((directory / "report.json").read_text())
        result = compare_per_series(trained, scores)
        path = write_comparison(result, Path(args.runs) / f"{config.name}-global-vs-per-series.md")
        print(comparison_table(result))
        print(f"written: {path}")
    return 0


def _panel(args: argparse.Namespace) -> Panel:
    """The long-format file of many series that --id-column names."""
    if not args.dataset or Path(args.dataset).suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise DataError("--id-column needs --dataset, a long-format .csv or .parquet file")
    return load_panel(
        args.dataset,
        id_column=args.id_column,
        time_column=args.time_column,
        value_columns=args.value_columns.split(",") if args.value_columns else None,
        frequency=args.frequency,
        target=args.target,
        fill=FillPolicy.parse(args.fill, args.long_gaps),
    )


def _say_verdict(directory: Path) -> None:
    verdict = json.loads((directory / "manifest.json").read_text())["verdict"]
    print(f"verdict: {verdict['text']}")


if __name__ == "__main__":
    sys.exit(main())
