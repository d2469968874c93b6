"""Profiles: YAML descriptions of a target look, validated once, before any work.

A profile says which diagnostics apply (and on which region), their target ranges and
weights in the unified 0-10 score, the pass threshold, optional CLIP probes and scores, and
rules that turn verdicts into parameter suggestions. Shipped profiles live in
``gencritic/profiles/*.yaml``; users pass a name or a path to their own YAML. The schema is
documented in docs/diagnostics.md and by the shipped files themselves. Its keys are a strict
schema (:class:`ProfileSpec`, :mod:`gencritic.schemas`): a misspelt key (``regoin:``) is refused
with the accepted keys and the closest match instead of being carried along as an unused option.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field

from gencritic.diagnose.analysers import ANALYSERS, REGIONS
from gencritic.diagnose.segmentation import DEFAULT_SEGMENTATION
from gencritic.errors import InputError
from gencritic.schemas import StrictModel, closest, validate_strict

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"
DEFAULT_PROFILE = "explosion"
TEMPORAL_DIAGNOSTICS = ("flicker_index", "temporal_ssim", "warping_error", "peak_brightness",
                        "time_to_peak", "decay_rate", "dissipation")
# Temporal checks are read over the effect's own pixels unless the profile says `region: image`:
# a small or dim emitter's flicker is diluted by the whole frame (issue 16, item 8).
TEMPORAL_DEFAULT_REGION = "foreground"
SCORE_NAMES = ("clip_score", "reference_similarity")
VERDICTS = ("too_low", "good", "too_high")
CHANGE_RE = re.compile(r"^[+-]\d+(\.\d+)?%?$")


# -- the schema of a profile file (keys and plain types; the meaning is checked in parse_profile) --

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # YAML ints count; bools and strings do not


class CheckSpec(StrictModel):
    target: Any = Field(None, description="[low, high], null for an open end")
    weight: Annotated[Number, Field(ge=0)] = Field(1.0, description="weight in the overall 0-10 score")
    tolerance: Number | None = Field(None, description="distance outside the target at which the score halves")


class DiagnosticSpec(CheckSpec):
    region: str | None = Field(None, description=f"region measured: {', '.join(REGIONS)}")


class ProbeSpec(CheckSpec):
    ladder: Any = Field(None, description="at least two prompts, low to high")


class ScoreSpec(CheckSpec):
    metric: str | None = Field(None, description="a registered metric spec (default: the score's name)")
    column: str | None = Field(None, description="which of the metric's columns (default: its first)")


class RuleSpec(StrictModel):
    when: Any = Field(None, description="'NAME too_low|too_high|unmeasurable'")
    suggest: Any = Field(None, description="parameter -> change, e.g. {emission_strength: '+30%'}")
    why: str | None = Field(None, description="the reason shown with the suggestion")


class SegmentationSpec(StrictModel):
    """Thresholds of :mod:`gencritic.diagnose.segmentation` (absent: its DEFAULT_SEGMENTATION)."""

    bg_threshold: Number | None = Field(None, description="foreground: max channel difference from the background")
    emissive_v: Number | None = Field(None, description="emissive: minimum HSV value")
    emissive_s: Number | None = Field(None, description="emissive: minimum saturation")
    hot_luma: Number | None = Field(None, description="emissive: luma of near-white hot pixels")
    smoke_s: Number | None = Field(None, description="smoke: maximum saturation")


if set(SegmentationSpec.model_fields) != set(DEFAULT_SEGMENTATION):  # pragma: no cover - a developer's slip
    raise RuntimeError("SegmentationSpec must list exactly the keys of DEFAULT_SEGMENTATION")


class ProfileSpec(StrictModel):
    name: str | None = None
    description: str | None = None
    pass_threshold: Number = Field(7.0, description="overall (0-10) needed to pass")
    background: str = Field("black", description="colour under transparent pixels")
    segmentation: SegmentationSpec | None = None
    diagnostics: dict[str, DiagnosticSpec] | None = None
    probes: dict[str, ProbeSpec] | None = None
    scores: dict[str, ScoreSpec] | None = None
    rules: list[RuleSpec] | None = None
    required: list[str] | None = Field(None, description="names that must be in range to pass")
    model: str | None = Field(None, description="a CLIP model the profile asks for even without --model")


@dataclass(frozen=True)
class Target:
    """A target range; either bound may be open. ``tolerance`` is the distance outside the
    range at which the component score halves (see :func:`gencritic.diagnose.rules.component_score`)."""

    low: float | None
    high: float | None
    tolerance: float

    def as_list(self) -> list[float | None]:
        return [self.low, self.high]


@dataclass(frozen=True)
class Check:
    """One diagnostic, probe or score the profile asks for."""

    name: str
    kind: str  # "image", "temporal", "probe", "score" (built-in CLIP) or "metric" (any registered metric)
    target: Target
    weight: float
    options: dict[str, Any] = field(default_factory=dict)  # region, ladder, ...
    required: bool = False


@dataclass(frozen=True)
class Rule:
    check: str
    verdict: str
    suggest: dict[str, Any]
    why: str


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    path: Path
    pass_threshold: float
    background: str
    segmentation: dict[str, float]
    checks: tuple[Check, ...]
    rules: tuple[Rule, ...]
    model: str | None = None  # a CLIP model the profile asks for even without --model

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def temporal_regions(self) -> dict[str, str]:
        """{temporal check: the region it is measured on} (``foreground`` unless the profile says)."""
        return {c.name: str(c.options.get("region", TEMPORAL_DEFAULT_REGION))
                for c in self.checks if c.kind == "temporal"}


def shipped_profile_paths() -> list[Path]:
    return sorted(PROFILE_DIR.glob("*.yaml"))


def list_profiles() -> list[dict[str, str]]:
    """Shipped profiles as ``{name, description, path}``, sorted by name."""
    out = []
    for path in shipped_profile_paths():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out.append({"name": str(data.get("name", path.stem)), "description": str(data.get("description", "")).strip(),
                    "path": str(path)})
    return sorted(out, key=lambda d: d["name"])


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """A shipped profile name, or a path to a YAML file; anything else is an InputError."""
    text = str(name_or_path).strip()
    candidate = Path(text).expanduser()
    if text.endswith((".yaml", ".yml")) or candidate.is_file():
        if not candidate.is_file():
            raise InputError(f"profile file not found: {text}; give a shipped profile name or an existing .yaml")
        return candidate
    for path in shipped_profile_paths():
        if path.stem == text:
            return path
    names = ", ".join(p.stem for p in shipped_profile_paths())
    raise InputError(f"unknown profile {text!r}; shipped profiles: {names} (or pass a path to your own .yaml)")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CACHE: dict[tuple[str, int, int], Profile] = {}


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> Profile:
    """Load and validate a profile; every problem is one InputError line naming the file.

    Parsed profiles are memoised by (path, mtime, size): a loop diagnosing hundreds of renders
    parses the YAML once, and an edited file is picked up at once."""
    path = resolve_profile_path(name_or_path)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key in _CACHE:
        return _CACHE[key]
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # a safe loader (C if available)
    except yaml.YAMLError as exc:
        raise InputError(f"profile {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise InputError(f"profile {path} must be a YAML mapping with 'diagnostics' and 'rules'")
    profile = parse_profile(data, path)
    _CACHE[key] = profile
    return profile


def _num(value: Any, where: str, path: Path) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise InputError(f"profile {path}: {where} must be a number or null, got {value!r}")
    return float(value)


def _target(spec: CheckSpec, where: str, path: Path) -> Target:
    raw = spec.target
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise InputError(f"profile {path}: {where}.target must be [low, high] (null for an open end)")
    low, high = _num(raw[0], f"{where}.target[0]", path), _num(raw[1], f"{where}.target[1]", path)
    if low is None and high is None:
        raise InputError(f"profile {path}: {where}.target needs at least one bound")
    if low is not None and high is not None and low > high:
        raise InputError(f"profile {path}: {where}.target low {low} is above high {high}")
    tol = spec.tolerance
    if tol is None:
        if low is not None and high is not None and high > low:
            tol = high - low
        else:
            bound = low if low is not None else high
            tol = 0.25 * abs(bound) if bound else 1.0
    if tol <= 0:
        raise InputError(f"profile {path}: {where}.tolerance must be positive")
    return Target(low, high, tol)


def parse_profile(data: dict[str, Any], path: Path) -> Profile:
    spec = validate_strict(ProfileSpec, data, f"profile {path}", noun="key")
    required = set(spec.required or [])
    checks: list[Check] = []
    sections: tuple[tuple[str, dict[str, Any], str | None], ...] = (
        ("diagnostics", spec.diagnostics or {}, None), ("probes", spec.probes or {}, "probe"),
        ("scores", spec.scores or {}, "score"))
    for section, block, kind_of in sections:
        for name, check in block.items():
            where = f"{section}.{name}"
            if kind_of is None:
                if name in ANALYSERS:
                    kind = "image"
                elif name in TEMPORAL_DIAGNOSTICS:
                    kind = "temporal"
                else:
                    known = sorted(ANALYSERS) + list(TEMPORAL_DIAGNOSTICS)
                    hint = closest(name, known)
                    raise InputError(f"profile {path}: unknown diagnostic {name!r}"
                                     f"{f' (did you mean {hint!r}?)' if hint else ''}; known: {', '.join(known)}")
            else:
                kind = kind_of
            if kind == "score" and name not in SCORE_NAMES:
                kind = "metric"  # any registered metric (checked against the registry before work)
            options = check.model_dump(exclude={"target", "weight", "tolerance"}, exclude_unset=True)
            if kind == "score" and options:
                raise InputError(f"profile {path}: {where} is a built-in score and takes no "
                                 f"{' or '.join(sorted(options))} (those name a registry metric: "
                                 f"scores: {{NAME: {{metric: SPEC, column: COLUMN, target: ...}}}})")
            if "region" in options and options["region"] not in REGIONS:
                raise InputError(f"profile {path}: {where}.region must be one of {', '.join(REGIONS)}")
            if kind == "probe":
                ladder = options.get("ladder")
                if not isinstance(ladder, list) or len(ladder) < 2 or not all(isinstance(t, str) for t in ladder):
                    raise InputError(f"profile {path}: {where}.ladder must list at least two prompts, low to high")
            checks.append(Check(name, kind, _target(check, where, path), check.weight, options, name in required))
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise InputError(f"profile {path}: a name appears in more than one section")
    if not checks:
        raise InputError(f"profile {path}: no diagnostics, probes or scores")
    unknown_required = sorted(required - set(names))
    if unknown_required:
        raise InputError(f"profile {path}: required names not in the profile: {', '.join(unknown_required)}")
    rules = []
    for i, rule in enumerate(spec.rules or []):
        where = f"rules[{i}]"
        if rule.when is None or rule.suggest is None:
            raise InputError(f"profile {path}: {where} needs 'when: NAME VERDICT' and 'suggest: {{param: change}}'")
        parts = str(rule.when).split()
        if len(parts) != 2 or parts[0] not in names or parts[1] not in ("too_low", "too_high", "unmeasurable"):
            raise InputError(f"profile {path}: {where}.when must be 'NAME too_low|too_high|unmeasurable' with "
                             f"NAME one of the profile's checks, got {rule.when!r}")
        suggest = rule.suggest
        if not isinstance(suggest, dict) or not suggest:
            raise InputError(f"profile {path}: {where}.suggest must map parameter names to changes like '+20%'")
        for param, change in suggest.items():
            if isinstance(change, str) and change[:1] in "+-" and not CHANGE_RE.match(change):
                raise InputError(f"profile {path}: {where}.suggest.{param} {change!r} is not a change like +20% or -0.5")
        rules.append(Rule(parts[0], parts[1], dict(suggest), (rule.why or "").strip()))
    if not 0 <= spec.pass_threshold <= 10:
        raise InputError(f"profile {path}: pass_threshold must be within 0..10")
    seg: dict[str, float] = spec.segmentation.model_dump(exclude_none=True) if spec.segmentation is not None else {}
    return Profile(
        name=spec.name if spec.name is not None else path.stem, description=(spec.description or "").strip(), path=path,
        pass_threshold=spec.pass_threshold, background=spec.background,
        segmentation={k: float(v) for k, v in seg.items()}, checks=tuple(checks), rules=tuple(rules),
        model=spec.model,
    )


def profile_to_yaml(profile: Profile, weights: dict[str, float] | None = None,
                    pass_threshold: float | None = None) -> str:
    """Write a profile back as YAML, optionally with new weights / threshold (for calibration)."""
    data = yaml.safe_load(profile.path.read_text(encoding="utf-8"))
    for section in ("diagnostics", "probes", "scores"):
        for name, spec in (data.get(section) or {}).items():
            if weights and name in weights:
                spec["weight"] = round(float(weights[name]), 4)
    if pass_threshold is not None:
        data["pass_threshold"] = round(float(pass_threshold), 3)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
