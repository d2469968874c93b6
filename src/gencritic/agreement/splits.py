"""Train/validation/test splits with content isolation.

Why groups: several images generated from one prompt share content, and their ratings are
correlated. If some land in train and others in test, a head can score well by recognising
the prompt, not by judging the image, and the test number flatters it. So the unit of a
split is the content group (the prompt by default): a group is wholly in train, val or test.
Splits are seeded (``numpy.random.default_rng(seed)``) over the sorted group names, so the
same data and seed always give the same split whatever the row order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Item indices of each part (sorted)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": int(self.train.size), "val": int(self.val.size), "test": int(self.test.size)}


def _group_index(groups: Sequence[str]) -> tuple[list[str], np.ndarray]:
    names = sorted(set(groups))
    lookup = {g: i for i, g in enumerate(names)}
    return names, np.array([lookup[g] for g in groups], dtype=np.int64)


def _take_groups(order: np.ndarray, sizes: np.ndarray, target: float, keep: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Take groups in ``order`` until at least ``target`` items are taken (at least one group,
    and never so many that fewer than ``keep`` groups remain for the other parts)."""
    if target <= 0 or order.size == 0:
        return order[:0], order
    cum = np.cumsum(sizes[order])
    k = int(np.searchsorted(cum, target, side="left")) + 1
    k = min(max(k, 1), max(order.size - keep, 0))
    return order[:k], order[k:]


def group_split(groups: Sequence[str], test_fraction: float = 0.2, val_fraction: float = 0.1,
                seed: int = 0) -> Split:
    """One seeded split where no content group straddles two parts."""
    if not 0 <= test_fraction < 1 or not 0 <= val_fraction < 1 or test_fraction + val_fraction >= 1:
        raise ValueError("test and validation fractions must be in [0, 1) and sum below 1")
    names, gid = _group_index(groups)
    if len(names) < 2 + (val_fraction > 0):
        raise ValueError(f"only {len(names)} content group(s): need at least 3 distinct prompts to split")
    sizes = np.bincount(gid, minlength=len(names))
    order = np.random.default_rng(seed).permutation(len(names))
    n = len(groups)
    test_g, rest = _take_groups(order, sizes, test_fraction * n, keep=1 + (val_fraction > 0))
    val_g, train_g = _take_groups(rest, sizes, val_fraction * n)
    if train_g.size == 0:
        raise ValueError("the split left no group for training; lower the test/validation fractions")
    return Split(*(np.flatnonzero(np.isin(gid, g)) for g in (train_g, val_g, test_g)))


def group_kfold(groups: Sequence[str], k: int = 5, val_fraction: float = 0.1, seed: int = 0) -> list[Split]:
    """k folds of whole groups (balanced by item count); fold i is the test part of split i and
    a seeded share of the other groups is held out for validation (early stopping)."""
    names, gid = _group_index(groups)
    if k < 2 or k > len(names):
        raise ValueError(f"k-fold needs 2 <= k <= number of content groups ({len(names)}), got {k}")
    sizes = np.bincount(gid, minlength=len(names))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = np.empty(len(names), dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    for g in order:  # greedy: next group to the lightest fold (ties to the lowest index)
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += sizes[g]
    splits = []
    for i in range(k):
        test_g = np.flatnonzero(fold_of == i)
        rest = np.random.default_rng(seed + 1 + i).permutation(np.flatnonzero(fold_of != i))
        val_g, train_g = _take_groups(rest, sizes, val_fraction * len(groups)) if val_fraction > 0 else (rest[:0], rest)
        splits.append(Split(*(np.flatnonzero(np.isin(gid, g)) for g in (train_g, val_g, test_g))))
    return splits


def straddling_groups(groups: Sequence[str], split: Split) -> list[str]:
    """Groups found in more than one part (empty when content isolation holds)."""
    arr = np.asarray(groups, dtype=object)
    parts = [set(arr[idx].tolist()) for idx in (split.train, split.val, split.test)]
    bad = (parts[0] & parts[1]) | (parts[0] & parts[2]) | (parts[1] & parts[2])
    return sorted(bad)
