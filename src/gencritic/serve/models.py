"""Which models and files a request's metric options may name, and how many models stay loaded.

Why: metric options name files (``clip:model=/anywhere``, ``learned:/dir``,
``aesthetic:head=/file``, ``ladder:prompts_file=...``). Through the service they let a client
load a model from outside the roots, learn from the error whether a file exists there, and
keep every distinct model in memory. In the service, models and heads are the operator's
choice:

* an option that names a model or file must name one the operator allowed at start (the
  service's ``--model``, each ``--allow-model``, or the metric's own default), or a file or
  folder under a ``--root``; anything else is 403, with the same words whether or not such a
  file exists, and nothing is opened to find out;
* only options known to be plain settings (``net=``, ``prompts=``, ``scale=`` ...) are let
  through unchecked; every other option, including any a metric adds later, is treated as
  naming a file, so a new file option is refused until it is listed, never let through;
* the model pool is bounded (:class:`BoundedModelPool`: least recently used first out).

The check runs twice: on the spec text before the metric is created (creating ``learned`` and
``ladder`` metrics reads files), and on the created metric (its options as the metric itself
parsed them, and the backbone a head file chose).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from gencritic.errors import InputError
from gencritic.metrics.base import Metric, parse_options
from gencritic.models.loader import ModelPool
from gencritic.serve.errors import AccessDenied, shown
from gencritic.serve.limits import DEFAULT_MAX_MODELS
from gencritic.serve.security import Roots

# Options whose values are settings, not names of models or files.
PLAIN_OPTIONS = frozenset({"net", "mask", "version", "arch", "pairs", "prompts", "scale",
                           "subsets", "subset_size", "seed"})  # kd_*: numbers, never paths


class ModelPolicy:
    """The operator's allow-list plus the roots: what metric options may name."""

    def __init__(self, allowed: Iterable[str], roots: Roots) -> None:
        self.allowed = tuple(dict.fromkeys(a for a in allowed if a))
        self.roots = roots

    def _refuse(self, what: str) -> AccessDenied:
        allowed = ", ".join(shown(a) for a in self.allowed) or "none"
        return AccessDenied(
            f"{what} is not allowed on this server: it loads only the models its operator allowed at start "
            f"({allowed}; more with --allow-model) and files under its roots", 403)

    def resolve(self, what: str, value: str, metric_default: str | None = None) -> str:
        """The value to use for an option naming a model or file: allowed as written, or the real
        path of a file under a root; else :class:`AccessDenied` (403)."""
        if value in self.allowed or (metric_default is not None and value == metric_default):
            return value
        try:
            return str(self.roots.confine(value))
        except AccessDenied:
            raise self._refuse(what) from None

    def check_spec(self, spec: str) -> str:
        """A metric spec with every option that names a file allowed (paths under a root made
        absolute, as the metric opens them from the service's folder, not the first root)."""
        from gencritic.metrics.registry import all_metrics

        name, sep, arg = spec.partition(":")
        key = name.strip().lower()
        if not sep or not arg.strip():
            return spec
        cls = all_metrics().get(key)
        if cls is None:
            return spec  # the registry says it is unknown; nothing is opened
        if key == "learned" and "=" not in arg:  # learned:DIR (learned:head=DIR is options, below)
            return f"{name}:{self.resolve(f'learned head {shown(arg.strip())}', arg.strip())}"
        try:
            options = parse_options(arg)
        except ValueError as exc:
            raise InputError(f"metric {shown(spec)}: {exc}") from None
        changed = False
        for opt, value in options.items():
            if opt.lower() in PLAIN_OPTIONS:
                continue
            default = cls.info.default_model if opt.lower() == "model" else None
            resolved = self.resolve(f"metric option {shown(f'{opt}={value}')}", value, default)
            changed |= resolved != value
            options[opt] = resolved
        if not changed:
            return spec
        return f"{name}:" + ";".join(f"{k}={v}" for k, v in options.items())

    def check_metric(self, metric: Metric, service_model: str) -> None:
        """The created metric: its own options, and a backbone that a head file chose."""
        from gencritic.metrics.registry import all_metrics

        cls = all_metrics().get(metric.info.name)
        for opt, value in metric.options.items():
            if opt.lower() not in PLAIN_OPTIONS:
                default = cls.info.default_model if cls is not None and opt.lower() == "model" else None
                self.resolve(f"metric option {shown(f'{opt}={value}')}", str(value), default)
        if cls is not None and metric.info.default_model != cls.info.default_model:
            backbone = metric.model_id()
            if backbone is not None and backbone != service_model:
                self.resolve(f"model {shown(backbone)} (named by {metric.info.name}'s files)", backbone)


class BoundedModelPool(ModelPool):
    """A :class:`ModelPool` that keeps at most ``capacity`` models (least recently used out first).

    Pinned keys (the service's own model, loaded at start) never leave. A model evicted while a
    request still uses it stays alive for that request (the request holds it) and is freed after.
    """

    def __init__(self, device: str = "auto", dtype: str = "auto", capacity: int = DEFAULT_MAX_MODELS) -> None:
        super().__init__(device, dtype)
        if capacity < 1:
            raise InputError(f"--max-models must be at least 1, got {capacity}")
        self.capacity = capacity
        self._models: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._pinned: set[tuple[str, str]] = set()

    def pin(self, key: tuple[str, str]) -> None:
        self._pinned.add(key)

    def get(self, key: tuple[str, str], factory: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            value = factory()
            self._models[key] = value
            for old in [k for k in self._models if k not in self._pinned and k != key]:
                if len(self._models) <= self.capacity:
                    break
                del self._models[old]
            return value
