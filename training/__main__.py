"""The training CLI.

    python -m training all --config elec-demand          # train, evaluate, export
    python -m training train --config sp500              # train only: runs/<name>.pt
    python -m training evaluate --config sp500           # report from runs/<name>.pt
    python -m training export --config sp500 --out models
    python -m training ensure                            # build missing default models
    python -m training configs                           # the named configs

A config is a preset name; `--dataset` swaps the data (a packaged key or a CSV/Parquet
path with --time-column and --value-columns), so a user file trains with the same recipe.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from training.config import PRESETS, TrainConfig, preset
from training.data import DataError, load
from training.pipeline import build_artifact, evaluation
from training.train import Trained, train

DEFAULT_MODELS = ("elec-demand", "sp500")
COMMANDS = ["all", "train", "evaluate", "export", "ensure", "configs"]


def _config(args: argparse.Namespace) -> TrainConfig:
    config = preset(args.config)
    changes: dict[str, object] = {}
    if args.dataset:
        changes["dataset"] = args.dataset
        if args.name is None and args.dataset not in PRESETS:
            changes["name"] = Path(args.dataset).stem
    if args.name:
        changes["name"] = args.name
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    return config.replace(**changes) if changes else config


def _series(args: argparse.Namespace, config: TrainConfig):
    if args.value_columns:
        return load(
            config.dataset,
            time_column=args.time_column,
            value_columns=args.value_columns.split(","),
            frequency=args.frequency,
        )
    return None


def _checkpoint(args: argparse.Namespace, config: TrainConfig) -> Path:
    return Path(args.runs) / f"{config.name}.pt"


def _train(args: argparse.Namespace, config: TrainConfig) -> Trained:
    trained = train(config, series=_series(args, config), progress=not args.quiet)
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


def _restore(args: argparse.Namespace, config: TrainConfig) -> Trained:
    """Rebuild the data and model exactly as training did, then load the saved weights."""
    path = _checkpoint(args, config)
    if not path.exists():
        raise SystemExit(f"no checkpoint {path}: run `python -m training train` first")
    saved = torch.load(path, weights_only=True)
    trained = train(config.replace(epochs=0), series=_series(args, config), progress=False)
    trained.model.load_state_dict(saved["weights"])
    trained.model.eval()
    # The artifact describes the training that made the weights, not this rebuild.
    trained.config = config
    trained.epochs_run = saved["epochs"]
    trained.seconds = saved["seconds"]
    trained.best_val_loss = saved["best_val_loss"]
    return trained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    parser.add_argument(
        "command", choices=["all", "train", "evaluate", "export", "ensure", "configs"]
    )
    parser.add_argument("--config", default="elec-demand", help="a preset name (see `configs`)")
    parser.add_argument("--dataset", help="override: packaged data set key or CSV/Parquet path")
    parser.add_argument("--time-column", default="ts", help="time column of a CSV/Parquet file")
    parser.add_argument("--value-columns", help="comma-separated value columns, target first")
    parser.add_argument("--frequency", help="pandas frequency alias; inferred when omitted")
    parser.add_argument("--name", help="override the model name")
    parser.add_argument("--epochs", type=int, help="override the number of epochs")
    parser.add_argument("--out", default="models", help="where artifacts are written")
    parser.add_argument("--runs", default="runs", help="where checkpoints are written")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    try:
        if args.command == "configs":
            for name, config in PRESETS.items():
                print(f"{name:12s} {config.dataset} horizon={config.horizon} mode={config.mode}")
            return 0
        if args.command == "ensure":
            for name in DEFAULT_MODELS:
                if (Path(args.out) / name).exists():
                    print(f"{name}: present in {args.out}/")
                    continue
                print(f"{name}: missing, training it now")
                build_artifact(train(preset(name), progress=not args.quiet), Path(args.out))
            return 0
        config = _config(args)
        if args.command == "train":
            _train(args, config)
        elif args.command == "evaluate":
            scores, *_ = evaluation(_restore(args, config))
            print(json.dumps({k: scores[k] for k in ("model", "baselines")}, indent=2))
        elif args.command == "export":
            print(build_artifact(_restore(args, config), Path(args.out)))
        else:
            directory = build_artifact(_train(args, config), Path(args.out))
            print((directory / "report.md").read_text())
            print(f"artifact: {directory}")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
