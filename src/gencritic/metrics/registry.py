"""The one list of metrics. ``gencritic metrics`` reads it; ``--metrics`` specs resolve here.

A spec is ``name`` or ``name:options`` (``lpips:net=vgg``, ``learned:/path/to/head``).
Every metric declares its options as a strict schema (``Metric.options_schema``); creating a
metric validates them, so an unknown key or a value of the wrong type is one InputError line
with the accepted keys and the closest match, before any work. Family modules register their classes with :func:`register` when imported; this module
imports every family so the registry is always complete.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from gencritic.errors import InputError
from gencritic.metrics.base import METRIC_KINDS, Metric, SetMetric, parse_options
from gencritic.schemas import closest

_REGISTRY: dict[str, type[Metric]] = {}

# Each family module lives in gencritic/metrics/<family>.py and calls register() at import.
FAMILY_MODULES = (
    "alignment",
    "longcaption",
    "ladder",
    "preference",
    "reference",
    "quality",
    "learned",
    "temporal",
    "sets",
    "set_distances",
    "vlm",
)
_loaded = False


def register(cls: type[Metric]) -> type[Metric]:
    """Class decorator: add a metric to the registry under ``cls.info.name``. Its kind is checked
    against its class: a :class:`SetMetric` declares ``kind="set"``, every other metric ``"view"``."""
    name = cls.info.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise RuntimeError(f"metric {name!r} registered twice")
    if cls.info.kind not in METRIC_KINDS:
        raise RuntimeError(f"metric {name!r}: kind {cls.info.kind!r}, expected one of {', '.join(METRIC_KINDS)}")
    if (cls.info.kind == "set") != issubclass(cls, SetMetric):
        raise RuntimeError(f"metric {name!r}: kind 'set' goes with a SetMetric subclass, and only with one")
    _REGISTRY[name] = cls
    return cls


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    for family in FAMILY_MODULES:
        importlib.import_module(f"gencritic.metrics.{family}")
    _loaded = True


def all_metrics() -> dict[str, type[Metric]]:
    _ensure_loaded()
    return dict(sorted(_REGISTRY.items()))


def split_specs(text: str | Iterable[str]) -> list[str]:
    """``clip,lpips:net=vgg`` -> ['clip', 'lpips:net=vgg']; empty entries dropped."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    return [p.strip() for p in parts if p and p.strip()]


def create_metric(spec: str, default_model: str | None = None) -> Metric:
    """Instantiate a metric from its spec (options validated against its schema), or fail with
    one line: the known names for an unknown metric, the accepted keys for an unknown option."""
    _ensure_loaded()
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    cls = _REGISTRY.get(name)
    if cls is None:
        known = ", ".join(sorted(_REGISTRY))
        hint = closest(name, sorted(_REGISTRY))
        raise InputError(f"unknown metric {name!r}{f' (did you mean {hint!r}?)' if hint else ''}; "
                         f"known metrics: {known} (see `gencritic metrics`)")
    from_spec = getattr(cls, "from_spec", None)
    if from_spec is not None:
        return from_spec(arg, default_model)  # type: ignore[no-any-return]
    try:
        options = parse_options(arg)
    except ValueError as exc:
        raise InputError(f"metric {spec!r}: {exc}") from None
    return cls(options, default_model)
