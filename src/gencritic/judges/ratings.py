"""Ratings from pairwise matches: Bradley–Terry strengths on the Elo scale, with prompt-grouped bootstrap CIs.

Model: generator g has strength ``β_g`` and wins against h with probability ``σ(β_g − β_h)``.
The fit is :func:`gencritic.diagnose.calibrate.fit_pairwise_weights` (Newton on the L2-penalised
log-likelihood, strictly convex: one answer, no randomness) with one-hot features, so the
calibration of profiles and the ranking of generators share one tested implementation. The
small penalty ``l2`` keeps strengths finite when a generator wins every match (the plain
maximum-likelihood estimate is then infinite) and centres them (``Σ β = 0``).

Elo is the same fit on Chatbot Arena's and GPTEval3D's scale: ``1000 + 400 · β / ln 10``, so
200 points apart means the stronger wins ~76 % of matches. Sequential Elo updates are not used:
they depend on the order matches were played in, which here is arbitrary.

A tie counts as one win each way. Confidence intervals resample *prompts* (all matches of a
prompt together), as comparisons of one prompt share its difficulty and are not independent;
resampling single matches would make the intervals too narrow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gencritic.agreement.bootstrap import resample_counts
from gencritic.diagnose.calibrate import fit_pairwise_weights

ELO_BASE = 1000.0
ELO_SCALE = 400.0 / math.log(10.0)
DEFAULT_L2 = 0.01


@dataclass(frozen=True)
class Match:
    """One judged comparison: ``winner`` beat ``loser`` (or they tied) on a prompt."""

    winner: int
    loser: int
    group: str  # the prompt: what the bootstrap resamples
    tie: bool = False


def elo(strength: np.ndarray | float) -> np.ndarray:
    """Bradley–Terry strengths (natural log-odds) on the Elo scale."""
    return ELO_BASE + ELO_SCALE * np.asarray(strength, dtype=np.float64)


def _pairs(matches: Sequence[Match]) -> np.ndarray:
    rows: list[tuple[int, int]] = []
    for m in matches:
        rows.append((m.winner, m.loser))
        if m.tie:
            rows.append((m.loser, m.winner))
    return np.array(rows, dtype=int).reshape(-1, 2)


def fit_strengths(n_players: int, pairs: np.ndarray, l2: float = DEFAULT_L2) -> np.ndarray:
    """β minimising ``Σ log(1 + exp(−(β_w − β_l))) + l2/2 · |β|²`` over (winner, loser) rows."""
    p = np.asarray(pairs, dtype=int).reshape(-1, 2)
    if n_players < 2:
        raise ValueError("ratings need at least two players")
    if p.size == 0:
        return np.zeros(n_players)
    return fit_pairwise_weights(np.eye(n_players), p, l2=l2)


def bradley_terry(n_players: int, matches: Sequence[Match], l2: float = DEFAULT_L2) -> np.ndarray:
    """Strengths from matches (ties as one win each way)."""
    return fit_strengths(n_players, _pairs(matches), l2)


def bootstrap_strengths(n_players: int, matches: Sequence[Match], n_boot: int = 1000, seed: int = 0,
                        l2: float = DEFAULT_L2) -> np.ndarray:
    """(n_boot, n_players) strengths refitted on resamples of whole prompts (seeded)."""
    groups = sorted({m.group for m in matches})
    if not groups or n_boot <= 0:
        return np.zeros((0, n_players))
    index = {g: k for k, g in enumerate(groups)}
    by_group: list[list[Match]] = [[] for _ in groups]
    for m in matches:
        by_group[index[m.group]].append(m)
    group_pairs = [_pairs(ms) for ms in by_group]
    counts = resample_counts(len(groups), n_boot, seed)
    out = np.empty((n_boot, n_players))
    for b in range(n_boot):
        drawn = [np.repeat(group_pairs[g], c, axis=0) for g, c in enumerate(counts[b]) if c]
        out[b] = fit_strengths(n_players, np.concatenate(drawn) if drawn else np.zeros((0, 2), int), l2)
    return out


@dataclass(frozen=True)
class Rating:
    """One generator's row of a leaderboard."""

    name: str
    strength: float
    elo: float
    elo_ci: tuple[float, float] | None
    wins: int
    losses: int
    ties: int

    @property
    def matches(self) -> int:
        return self.wins + self.losses + self.ties

    def as_dict(self, rank: int) -> dict[str, object]:
        n = self.matches
        return {"rank": rank, "generator": self.name, "elo": self.elo,
                "elo_ci_low": None if self.elo_ci is None else self.elo_ci[0],
                "elo_ci_high": None if self.elo_ci is None else self.elo_ci[1],
                "strength": self.strength, "wins": self.wins, "losses": self.losses, "ties": self.ties,
                "matches": n, "win_rate": (self.wins + 0.5 * self.ties) / n if n else None}


def rate(names: Sequence[str], matches: Sequence[Match], n_boot: int = 1000, seed: int = 0,
         l2: float = DEFAULT_L2, level: float = 0.95) -> list[Rating]:
    """Leaderboard rows, best first (ties in Elo broken by name): strengths, Elo, percentile CIs."""
    n = len(names)
    beta = bradley_terry(n, matches, l2)
    boots = bootstrap_strengths(n, matches, n_boot, seed, l2)
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    rows = []
    for k, name in enumerate(names):
        wins = sum(1 for m in matches if m.winner == k and not m.tie)
        losses = sum(1 for m in matches if m.loser == k and not m.tie)
        ties = sum(1 for m in matches if m.tie and k in (m.winner, m.loser))
        ci = None
        if len(boots):
            e = elo(boots[:, k])
            ci = (float(np.percentile(e, lo_q)), float(np.percentile(e, hi_q)))
        rows.append(Rating(name, float(beta[k]), float(elo(beta[k])), ci, wins, losses, ties))
    return sorted(rows, key=lambda r: (-r.elo, r.name))
