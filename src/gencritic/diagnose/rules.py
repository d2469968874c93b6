"""Verdicts, component scores and rules: the pure decision layer between numbers and actions.

* verdict: ``too_low`` / ``good`` / ``too_high`` against the target range;
* component score in [0, 1]: 1 inside the range, ``0.5 ** (distance / tolerance)`` outside, so
  it halves at every tolerance step and never goes flat: a loop always sees which way is up;
* overall: ``10 * sum(w * s) / sum(w)`` over the checks that could be measured or that failed
  (an unmeasurable check scores 0: "no flame found" is a failure, not a pass);
* suggestions: every rule whose (check, verdict) matches fires, in profile order; the first
  rule to name a parameter sets its change, later ones that name it again are listed as
  ``also`` so nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gencritic.diagnose.profiles import Rule, Target


def verdict(value: float, target: Target) -> str:
    if target.low is not None and value < target.low:
        return "too_low"
    if target.high is not None and value > target.high:
        return "too_high"
    return "good"


def distance(value: float, target: Target) -> float:
    if target.low is not None and value < target.low:
        return target.low - value
    if target.high is not None and value > target.high:
        return value - target.high
    return 0.0


def component_score(value: float | None, target: Target) -> float:
    if value is None:
        return 0.0
    return float(0.5 ** (distance(value, target) / target.tolerance))


def overall_score(components: Sequence[tuple[float, float]]) -> float | None:
    """``components`` are (weight, score) pairs; None when the weights sum to zero."""
    total = sum(w for w, _ in components)
    if total <= 0:
        return None
    return 10.0 * sum(w * s for w, s in components) / total


def suggest(verdicts: dict[str, str], rules: Sequence[Rule],
            describe: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Apply rules to ``{check: verdict}``; returns ``{parameter: {change, because, also?}}``."""
    out: dict[str, dict[str, Any]] = {}
    for rule in rules:
        if verdicts.get(rule.check) != rule.verdict:
            continue
        because = f"{rule.check} {rule.verdict}"
        if describe and rule.check in describe:
            because += f" ({describe[rule.check]})"
        if rule.why:
            because += f": {rule.why}"
        for param, change in rule.suggest.items():
            if param not in out:
                out[param] = {"change": change, "because": because}
            else:
                out[param].setdefault("also", []).append({"change": change, "because": because})
    return out
