"""The run's metrics together: built from specs, set up, and what they need from the run.

One object answers what the run asks of its metrics as a group: which CLIP backbones they share
(so prompts are encoded once, up front), whether any needs text, pixels or references, which
model each column comes from, and which metrics are over the whole set (FID-like, computed
once per run) rather than per view.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gencritic.errors import InputError, ModelUnavailableError
from gencritic.items import Item
from gencritic.metrics.base import Metric, SetMetric
from gencritic.metrics.registry import create_metric
from gencritic.models.clip import ClipBackbone
from gencritic.views import RunContext, encode_texts_cached

log = logging.getLogger("gencritic")


@dataclass
class MetricSet:
    """The metrics of one run, in the order asked for; after :meth:`setup`, only those that are
    ready (optional ones without weights are in ``unavailable``, never faked)."""

    metrics: list[Metric]
    unavailable: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, specs: Sequence[str], model: str) -> MetricSet:
        """Create every metric from its spec (options checked now, before any work)."""
        metrics = [create_metric(s, model) for s in specs]
        if not metrics:
            raise InputError("no metrics asked for: use --metrics clip (see `gencritic metrics`)")
        names = [m.name for m in metrics]
        dupes = {n for n in names if names.count(n) > 1 and n != "learned"}
        if dupes:
            raise InputError(f"metric(s) listed twice: {', '.join(sorted(dupes))}")
        return cls(metrics)

    def setup(self, ctx: RunContext) -> None:
        """Set every metric up (models are bound, and load on first use); an optional metric
        without weights is reported, not faked, unless it is the only one."""
        ready: list[Metric] = []
        for metric in self.metrics:
            try:
                metric.setup(ctx)
                ready.append(metric)
            except ModelUnavailableError as exc:
                if metric.info.optional_weights and len(self.metrics) > 1:
                    self.unavailable[metric.name] = str(exc)
                    log.warning("metric %s unavailable: %s", metric.name, exc)
                else:
                    raise
        if not ready:
            raise ModelUnavailableError("; ".join(self.unavailable.values()))
        self.metrics = ready

    # -- what the run asks of them ------------------------------------------------------------
    @property
    def view_metrics(self) -> list[Metric]:
        """Metrics with a value per view (and so per item and per row)."""
        return [m for m in self.metrics if not isinstance(m, SetMetric)]

    @property
    def set_metrics(self) -> list[SetMetric]:
        """Metrics over the whole run's views (one value per run, in the summary)."""
        return [m for m in self.metrics if isinstance(m, SetMetric)]

    @property
    def backbones(self) -> list[ClipBackbone]:
        """The CLIP backbones the metrics hold, each once."""
        seen: dict[int, ClipBackbone] = {}
        for m in self.metrics:
            bb = getattr(m, "backbone", None)
            if isinstance(bb, ClipBackbone):
                seen[id(bb)] = bb
        return list(seen.values())

    @property
    def uses_text(self) -> bool:
        return any("text" in m.info.inputs for m in self.metrics)

    @property
    def needs_pixels(self) -> bool:
        return any(m.info.needs_pixels for m in self.metrics)

    @property
    def needs_reference(self) -> bool:
        return any("reference" in m.info.inputs for m in self.metrics)

    def file_inputs(self) -> dict[str, Any]:
        """What each metric read from files its spec names (they enter the fingerprint)."""
        return {m.name: inputs for m in self.metrics if (inputs := m.external_inputs()) is not None}

    def model_label(self) -> str:
        """The ``model`` column: every model the metrics use, once each, in order."""
        return ",".join(dict.fromkeys(str(m.model_id()) for m in self.metrics if m.model_id()))

    def column_models(self) -> dict[str, str | None]:
        """Each per-view column's own model (None for weight-free metrics)."""
        return {c: m.model_id() for m in self.view_metrics for c in m.info.columns}

    # -- prompts ------------------------------------------------------------------------------
    def token_cuts(self, items: Sequence[Item]) -> dict[str, int]:
        """Tokens each distinct prompt loses to truncation, worst over backbones; warn once per text."""
        backbones = self.backbones
        if not (self.uses_text and backbones):
            return {}
        cuts: dict[str, int] = {}
        texts = sorted({i.prompt for i in items if i.prompt})
        counts = {id(b): b.token_counts(texts) for b in backbones}
        for k, text in enumerate(texts):
            cut = max(max(0, counts[id(b)][k] - b.context_length) for b in backbones)
            cuts[text] = cut
            if cut:
                ctx_len = min(b.context_length for b in backbones)
                log.warning("prompt %r is %d tokens over the model's %d-token context: %d tokens cut "
                            "(use a long-caption metric such as longclip/specs or clip_chunked to keep them)",
                            text[:60] + ("..." if len(text) > 60 else ""), cut, ctx_len, cut)
        return cuts

    def encode_prompts(self, ctx: RunContext, texts: Sequence[str]) -> None:
        """Encode every distinct prompt once, up front, in big batches (the cache keeps them)."""
        if not (self.uses_text and texts):
            return
        for bb in self.backbones:
            encode_texts_cached(bb, ctx, texts)
