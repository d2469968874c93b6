"""What a metric is: declared metadata plus a pure, batched compute.

A metric never reads files or prints. The pipeline hands it a :class:`ViewBatch` (decoded
views, prompts, references) whose :class:`Features` memoise and cache embeddings, so three
metrics on one CLIP backbone encode each image once. Metrics are registered in one place
(:mod:`gencritic.metrics.registry`) so ``gencritic metrics`` is always complete.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
from pydantic import Field

from gencritic.errors import InputError
from gencritic.schemas import StrictModel, describe_schema, validate_strict

if TYPE_CHECKING:
    from gencritic.models.clip import ClipBackbone
    from gencritic.views import RunContext, ViewBatch

INPUT_KINDS = ("image", "text", "reference", "frames", "set")
METRIC_KINDS = ("view", "set")


class MetricOptions(StrictModel):
    """A metric's ``name:key=value;...`` options. This base declares none, so a metric that does
    not declare its own schema refuses every key instead of ignoring it. Values arrive as
    strings from ``--metrics`` and are converted (and refused when they do not convert) here."""


class ClipModelOptions(MetricOptions):
    """The options of metrics that only need a CLIP backbone."""

    model: str | None = Field(None, description="CLIP backbone: a Hugging Face id, a save_pretrained folder, a "
                                                "checkpoint file or an open_clip NAME/TAG; default: the run's --model")


OptionsT = TypeVar("OptionsT", bound=MetricOptions)


@dataclass(frozen=True)
class MetricInfo:
    """Honest metadata. ``columns[0]`` is the primary output; ``range`` is the value range
    the tests assert; ``higher_is_better`` says which way is good."""

    name: str
    family: str
    inputs: tuple[str, ...]
    columns: tuple[str, ...]
    range: tuple[float, float]
    higher_is_better: bool
    default_model: str | None
    description: str
    reference: str
    needs_pixels: bool = False  # needs decoded pixels beyond cached embeddings (LPIPS, NIQE, ...)
    optional_weights: bool = False  # weights often absent; reported unavailable rather than failing the run
    # "view": a value per view (and per item, per row); "set": one value over the whole run's
    # views (FID/KID-like, in summary.json), see :class:`SetMetric`
    kind: str = "view"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["range"] = list(self.range)
        d["inputs"] = list(self.inputs)
        d["columns"] = list(self.columns)
        return d


@dataclass
class MetricResult:
    """Per-view outputs: each column an array of len(batch) (NaN where the view failed),
    and ``errors[i]`` the reason view i failed for this metric (None when it did not)."""

    values: dict[str, np.ndarray]
    errors: list[str | None] = field(default_factory=list)

    @classmethod
    def from_columns(cls, n: int, **columns: Sequence[float] | np.ndarray) -> MetricResult:
        values = {k: np.asarray(v, dtype=np.float64).reshape(n) for k, v in columns.items()}
        return cls(values=values, errors=[None] * n)


def prompt_errors(prompts: Sequence[str | None]) -> list[str | None]:
    """Why each prompt cannot be scored by a text metric (None when it can): one wording for
    every text metric, so users see the same fix whichever metric failed."""
    errors: list[str | None] = []
    for p in prompts:
        if p is None:
            errors.append("no prompt for this item (add a 'prompt' column, a sidecar .txt, or --prompt)")
        elif not p.strip():
            errors.append("empty prompt: a text metric needs non-empty text")
        else:
            errors.append(None)
    return errors


def parse_options(text: str) -> dict[str, str]:
    """``k=v;k2=v2`` -> dict. Used by metric specs like ``lpips:net=vgg``."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"metric option {part!r} should look like key=value")
        out[key.strip()] = value.strip()
    return out


class Metric(ABC):
    """Base class. Subclasses set ``info`` (and ``options_schema`` when they take options) and
    implement ``setup`` and ``compute``."""

    info: ClassVar[MetricInfo]
    options_schema: ClassVar[type[MetricOptions]] = MetricOptions

    def __init__(self, options: dict[str, str] | None = None, default_model: str | None = None) -> None:
        self.options = dict(options or {})  # as written: what settings() records
        # Checked here, when the metric is created, so a typo stops the run before any work.
        self.opts = validate_strict(self.options_schema, self.options, f"metric {self.info.name!r}")
        self.default_model = default_model  # the run's --model, for CLIP-based metrics

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The metric's metadata and its options schema (what ``gencritic metrics --json`` prints)."""
        return {**cls.info.as_dict(), "options": describe_schema(cls.options_schema)}

    def typed_options(self, schema: type[OptionsT]) -> OptionsT:
        """The validated options as the subclass's own schema type (for typed access)."""
        if not isinstance(self.opts, schema):
            raise TypeError(f"{self.name}: options are {type(self.opts).__name__}, not {schema.__name__}")
        return self.opts

    @property
    def name(self) -> str:
        return self.info.name

    def model_id(self) -> str | None:
        """The model this metric's numbers come from (recorded in every row), or None for a
        metric that uses none: the run's ``--model`` replaces only a declared default model, so
        a weight-free metric (flicker, SSIM, ...) never names a CLIP model it did not use."""
        if self.info.default_model is None:
            return self.options.get("model")
        return self.options.get("model") or self.default_model or self.info.default_model

    def settings(self) -> dict[str, Any]:
        """Everything besides the model that changes the numbers (recorded per row)."""
        return {k: v for k, v in sorted(self.options.items()) if k != "model"}

    def external_inputs(self) -> Any:
        """What the metric read from files its spec names (None when none). It enters the run's
        fingerprint, so editing such a file makes a resumed run score again instead of keeping
        rows computed from the old contents."""
        return None

    @abstractmethod
    def setup(self, ctx: RunContext) -> None:
        """Load models through ``ctx.pool``. Raise ModelUnavailableError when weights are absent."""

    def clip_backbone(self, ctx: RunContext) -> ClipBackbone:
        """The run's CLIP backbone for this metric's model (``model=`` option, else the run's
        ``--model``): the setup of every metric that needs only a CLIP backbone."""
        model = self.model_id()
        if model is None:
            raise InputError(f"metric {self.name} needs a model")
        return ctx.clip(model)

    @abstractmethod
    def compute(self, batch: ViewBatch) -> MetricResult:
        """Score every view of the batch. Pure apart from model calls via ``batch.features``."""


class SetMetric(Metric):
    """A metric over a whole set of views (FID, KID, diversity): one value per run, not per view.

    The run owns the set: it asks :meth:`features` of every batch (per-view feature rows, from
    the same cached embeddings per-view metrics use), keeps them per item, and once every item
    is scored (resumed ones included) calls :meth:`compute_set` on all of them in input order,
    so the value does not depend on batching or on where a run was interrupted. The values are
    in ``summary.json`` under ``set_metrics``. ``info.kind`` is ``"set"``; ``info.columns`` name
    the values :meth:`compute_set` returns.
    """

    @abstractmethod
    def features(self, batch: ViewBatch) -> np.ndarray:
        """(len(batch), D) feature rows of the batch's views."""

    @abstractmethod
    def compute_set(self, features: np.ndarray) -> dict[str, float]:
        """Column -> value over the (N, D) features of every view of the run. Raise ValueError
        when the set cannot give a value (too few views): the summary says why instead."""

    def compute(self, batch: ViewBatch) -> MetricResult:
        raise TypeError(f"{self.name} is a set metric: it has no per-view values (see SetMetric)")
