"""The manifest of a model artifact (models/<name>/<version>/manifest.json) and what serving
derives from it.

`Manifest` is the one schema: training builds one and writes it, the service validates
the file with it on load, and docs/manifest.schema.json is its generated JSON schema.
`ServingSpec.from_manifest` is the one place the serving view is derived (median index,
flat state slots, time columns, input bounds). docs/artifact.md explains the contract.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.timefeatures import TimeColumn

MANIFEST_FILE = "manifest.json"


def median_index(quantiles: Sequence[float]) -> int:
    """Index of the quantile closest to 0.5 (the first on a tie): the point forecast."""
    return min(range(len(quantiles)), key=lambda j: abs(quantiles[j] - 0.5))


class _Strict(BaseModel):
    # A misspelt key (say "min_exlusive") must be refused, not silently ignored.
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    # Free-form records (training config, data, evaluation): kept as written.
    model_config = ConfigDict(extra="allow")


class InputFeature(_Strict):
    """A column of the graph's x taken from the client's values."""

    name: str = Field(description="one of `inputs`")
    source: Literal["input"]
    min_exclusive: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="values at or below this are refused (a price a returns graph logs)",
    )


class TimeFeature(_Strict):
    """A column of the graph's x computed from the timestamp, never sent by a client."""

    name: str = Field(description="a label, e.g. time_of_day_sin")
    source: Literal["time"]
    period_seconds: float = Field(gt=0, allow_inf_nan=False, description="the cycle's length")
    function: Literal["sin", "cos"] = Field(
        description="value = function(2π · (epoch_seconds mod period_seconds) / period_seconds)"
    )


Feature = Annotated[InputFeature | TimeFeature, Field(discriminator="source")]


class StateTensor(_Strict):
    """One per-stream recurrent state tensor: a graph input and its updated output."""

    name: str = Field(description="a label, e.g. h or c")
    input: str = Field(description="graph input fed the state (zeros for a new stream)")
    output: str = Field(description="graph output holding the state after the last step")
    shape: list[Annotated[int, Field(ge=1)]] = Field(
        min_length=1, description="per stream, without the batch axis"
    )
    dtype: Literal["float32"] = "float32"


class Graph(_Strict):
    """The ONNX graph file and its input/output names."""

    file: str = Field(min_length=1, description="file name inside the version folder")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="hex digest of the graph file")
    opset: int = Field(description="ONNX opset of the graph")
    exporter: str = Field(description="what exported it, with its version")
    input: str = Field(description="the [B, T, F] observations input")
    output: str = Field(description="the [B, horizon, Q] forecast output")


class Scores(_Open):
    """Evaluation figures of one method on the test split."""

    mae_by_horizon: list[float] = Field(
        default_factory=list, description="test-split MAE per forecast step 1..horizon"
    )


class Evaluation(_Open):
    """Figures of the model and its baselines on the same test origins."""

    model: Scores | None = Field(default=None, description="the model's own figures")


class Verdict(_Strict):
    """The quality gate's judgement: the model against the best baseline, in words."""

    metric: Literal["mae", "pinball"] = Field(
        description="mae for level models, pinball for price (returns) models"
    )
    model: float = Field(description="the model's figure on that metric")
    text: str = Field(description="the verdict in words, e.g. 'model MAE 18% below ...'")
    beats_all: bool = Field(description="the model beats every baseline on the metric")
    best_baseline: str | None = Field(default=None, description="the best baseline's name")
    best_baseline_value: float | None = Field(default=None, description="its figure")
    change_vs_best: float | None = Field(
        default=None, description="model / best baseline - 1 (negative: the model is better)"
    )
    beats: list[str] = Field(default_factory=list, description="baselines the model beats")
    loses_to: list[str] = Field(default_factory=list, description="baselines it does not")
    coverage_80: float | None = Field(default=None, description="the 80% band's coverage")
    origins: int | None = Field(
        default=None, description="test origins the figures come from (few: the text says so)"
    )


class Memory(_Strict):
    """What the state remembers besides the recurrent cell."""

    kind: Literal["none", "seasonal"] = Field(
        description="'seasonal': a ring of the last max(seasons) targets is declared state"
    )
    seasons: list[Annotated[int, Field(ge=2)]] = Field(
        default_factory=list, description="the seasons, in steps, the graph looks back by"
    )


class Manifest(_Strict):
    """Everything needed to feed the graph and read its answer.

    Also checked, beyond what the schema expresses: inputs[target_index] is target, the
    inputs are distinct, each appears exactly once among the input features, and the
    quantiles ascend.
    """

    name: str = Field(min_length=1, description="the model name (its folder's name)")
    version: str = Field(min_length=1, description="the version (its folder's name)")
    created: str = Field(description="UTC time the artifact was written")
    code_revision: str = Field(description="git commit of the training code, or 'unknown'")
    frequency: str = Field(description="pandas alias; 'B' = business days (Mon-Fri)")
    frequency_seconds: float = Field(
        gt=0, allow_inf_nan=False, description="the nominal step; 86400 for 'B'"
    )
    target: str = Field(description="the forecast input")
    inputs: list[str] = Field(min_length=1, description="what a client sends, in this order")
    target_index: int = Field(description="position of target in inputs")
    features: list[Feature] = Field(description="the graph's F axis, in order")
    mode: Literal["level", "returns"] = Field(
        default="level", description="'returns': price in, log returns inside the graph"
    )
    horizon: int = Field(ge=1, description="forecast steps")
    quantiles: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        min_length=1, description="the Q axis of the forecast, ascending"
    )
    state: list[StateTensor] = Field(min_length=1, description="in graph order")
    graph: Graph
    training: dict[str, Any] = Field(description="the full training config")
    data: dict[str, Any] = Field(description="data set, source, split and gap fill policy")
    evaluation: Evaluation
    verdict: Verdict | None = Field(default=None, description="the quality gate's verdict")
    memory: Memory | None = Field(default=None, description="seasonal memory, if any")
    bytes_per_stream: int | None = Field(
        default=None, ge=1, description="bytes of state one stream carries (all tensors)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if not 0 <= self.target_index < len(self.inputs):
            raise ValueError(f"target_index {self.target_index} is outside inputs")
        if self.inputs[self.target_index] != self.target:
            raise ValueError(
                f"target_index {self.target_index} points at "
                f"{self.inputs[self.target_index]!r}, not at target {self.target!r}"
            )
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError("inputs: a name appears twice")
        used: list[str] = []
        for i, feature in enumerate(self.features):
            if isinstance(feature, InputFeature):
                if feature.name not in self.inputs:
                    raise ValueError(f"features[{i}] {feature.name!r} is not in inputs")
                used.append(feature.name)
        if sorted(used) != sorted(self.inputs):
            raise ValueError("features: every input must appear exactly once")
        if self.quantiles != sorted(self.quantiles):
            raise ValueError("quantiles must be ascending")
        return self

    @property
    def n_features(self) -> int:
        return len(self.features)


class ManifestError(ValueError):
    """A manifest that does not follow the contract; the message names each bad field."""


def validate_manifest(content: object) -> Manifest:
    """Parsed JSON -> Manifest, or ManifestError naming every bad field and why."""
    if not isinstance(content, dict):
        raise ManifestError("not a JSON object")
    try:
        return Manifest.model_validate(content)
    except ValidationError as exc:
        raise ManifestError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems: list[str] = []
    missing: dict[str, list[str]] = {}  # parent -> its missing fields, said in one go
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if error["type"] == "missing":
            missing.setdefault(_where(loc[:-1]), []).append(str(loc[-1]))
            continue
        if error["type"] == "value_error":
            reason = str(error.get("ctx", {}).get("error", error["msg"]))
        else:
            reason = error["msg"]
        where = _where(loc)
        problems.append(f"{where}: {reason}" if where else reason)
    for parent, names in missing.items():
        problems.insert(
            0, f"{parent}: missing fields {names}" if parent else f"missing fields {names}"
        )
    return "; ".join(problems)


def _where(loc: tuple[int | str, ...]) -> str:
    """('features', 3, 'time', 'period_seconds') -> 'features[3].period_seconds'."""
    where = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            where += f"[{part}]"
        elif i and isinstance(loc[i - 1], int) and part in ("input", "time"):
            continue  # the discriminator's tag, not a field
        else:
            where += f".{part}" if where else part
    return where


@dataclass(frozen=True)
class StateSlot:
    """A state tensor's place in the flat per-stream state row."""

    name: str
    input: str
    output: str
    shape: tuple[int, ...]
    offset: int  # first column in the flat per-stream state row
    size: int


@dataclass(frozen=True)
class ServingSpec:
    """What the service needs from a manifest, derived once in ready-to-use form."""

    name: str
    version: str
    frequency: str
    frequency_seconds: float
    target: str
    inputs: list[str]
    target_index: int
    # Per graph feature, either an index into the client's inputs or a TimeColumn.
    features: list[int | TimeColumn]
    horizon: int
    quantiles: list[float]
    median_index: int
    state: list[StateSlot]
    state_size: int
    graph_file: str
    graph_input: str
    graph_output: str
    sha256: str
    mae_by_horizon: list[float]
    # The manifest as JSON (the keys it was written with), for /v1/models.
    manifest: dict[str, Any] = field(repr=False)
    mode: str = "level"
    # Inputs with a manifest "min_exclusive": (input index, bound, why), checked on parse.
    bounds: tuple[tuple[int, float, str], ...] = ()

    @property
    def n_features(self) -> int:
        return len(self.features)

    @classmethod
    def from_manifest(cls, m: Manifest) -> ServingSpec:
        features: list[int | TimeColumn] = []
        bounds: list[tuple[int, float, str]] = []
        for feature in m.features:
            if isinstance(feature, InputFeature):
                j = m.inputs.index(feature.name)
                features.append(j)
                if feature.min_exclusive is not None:
                    why = (
                        f"{feature.name} is a price"
                        if m.mode == "returns"
                        else f"min_exclusive of {feature.name}"
                    )
                    bounds.append((j, feature.min_exclusive, why))
            else:
                features.append(TimeColumn(feature.period_seconds, feature.function))
        state: list[StateSlot] = []
        offset = 0
        for entry in m.state:
            shape = tuple(entry.shape)
            size = math.prod(shape)
            state.append(StateSlot(entry.name, entry.input, entry.output, shape, offset, size))
            offset += size
        scores = m.evaluation.model
        return cls(
            name=m.name,
            version=m.version,
            frequency=m.frequency,
            frequency_seconds=m.frequency_seconds,
            target=m.target,
            inputs=list(m.inputs),
            target_index=m.target_index,
            features=features,
            horizon=m.horizon,
            quantiles=list(m.quantiles),
            median_index=median_index(m.quantiles),
            state=state,
            state_size=offset,
            graph_file=m.graph.file,
            graph_input=m.graph.input,
            graph_output=m.graph.output,
            sha256=m.graph.sha256.lower(),
            mae_by_horizon=list(scores.mae_by_horizon) if scores is not None else [],
            manifest=m.model_dump(mode="json", exclude_unset=True),
            mode=m.mode,
            bounds=tuple(bounds),
        )


def schema_text() -> str:
    """The JSON schema of Manifest as committed in docs/manifest.schema.json."""
    return json.dumps(Manifest.model_json_schema(), indent=2) + "\n"
