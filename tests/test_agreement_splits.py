"""Content-isolated splits: no prompt on two sides, seeded, sizes near the asked fractions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from gencritic.agreement.splits import group_kfold, group_split, straddling_groups


def _groups(n_groups: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"prompt {g}" for g in range(n_groups) for _ in range(int(rng.integers(1, 7)))]


@settings(max_examples=40, deadline=None)
@given(hs.integers(3, 60), hs.integers(0, 10_000))
def test_split_isolates_groups_and_covers_everything(n_groups: int, seed: int) -> None:
    groups = _groups(n_groups, seed)
    split = group_split(groups, 0.2, 0.1, seed=seed)
    assert straddling_groups(groups, split) == []
    allidx = np.concatenate([split.train, split.val, split.test])
    assert sorted(allidx.tolist()) == list(range(len(groups)))
    assert split.train.size and split.test.size


def test_split_is_seeded_and_independent_of_row_order() -> None:
    groups = _groups(40)
    a, b = group_split(groups, seed=3), group_split(groups, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((a.train, a.val, a.test), (b.train, b.val, b.test), strict=True))
    c = group_split(groups, seed=4)
    assert not np.array_equal(a.test, c.test)
    # shuffling rows does not change which prompts land in test
    perm = np.random.default_rng(1).permutation(len(groups))
    shuffled = [groups[i] for i in perm]
    d = group_split(shuffled, seed=3)
    assert {shuffled[i] for i in d.test} == {groups[i] for i in a.test}


def test_split_sizes_follow_fractions() -> None:
    groups = [f"g{g}" for g in range(200) for _ in range(4)]
    s = group_split(groups, 0.25, 0.1, seed=0)
    assert s.sizes() == {"train": 520, "val": 80, "test": 200}


def test_kfold_partitions_groups() -> None:
    groups = _groups(30)
    folds = group_kfold(groups, k=5, seed=0)
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests.tolist()) == list(range(len(groups)))  # each item tested exactly once
    for f in folds:
        assert straddling_groups(groups, f) == []
        assert f.val.size and f.train.size


def test_too_few_groups_is_an_error() -> None:
    with pytest.raises(ValueError, match="content group"):
        group_split(["a", "a", "b", "b"], 0.2, 0.1)
    with pytest.raises(ValueError, match="k-fold"):
        group_kfold(["a", "b"], k=3)
