"""Transfer: start from a trained head (``--init``), and test on another dataset (``--test-dataset``).

Why checks before any training: a head only means something on the features it was trained
on, so ``--init`` must name a head of the same backbone (same weights hash), the same kind of
features and the same number of tasks; anything else is refused in one line. Cross-dataset
testing (AAPMT's train-on-AGIQA-3K, test-on-AIGCIQA2023) scores every item of the other
dataset with the trained head and correlates each task with the rating it is mapped to
(``--test-map quality=mos_quality,...``; by default a task is compared with the rating of the
same name), with the grouped bootstrap of :func:`gencritic.agreement.train.evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gencritic.datasets.human import HumanDataset
from gencritic.errors import InputError
from gencritic.models.assessment_heads import AssessmentHead, load_head


def parse_test_map(text: str | None) -> dict[str, str]:
    """``task=column,task2=column2`` -> mapping (empty text: no mapping)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        task, sep, col = part.partition("=")
        if not sep or not task.strip() or not col.strip():
            raise InputError(f"--test-map {text!r}: write TASK=RATING pairs separated by commas, "
                             f"e.g. mos_align=mos_correspondence")
        out[task.strip()] = col.strip()
    return out


def load_init(folder: Path, tasks: Sequence[str], config: Mapping[str, Any], backbone_info: Mapping[str, Any]
              ) -> tuple[AssessmentHead, dict[str, Any], dict[str, torch.Tensor] | None]:
    """The head to start from, its card and its fine-tuned backbone layers (if it has some),
    after checking that it fits this run's features and tasks."""
    from gencritic.models.imagereward_backbone import FINETUNED_FILE, load_finetuned

    head, card = load_head(folder)
    given = dict(card["config"])
    if given.get("kind") != config.get("kind"):
        raise InputError(f"--init {folder}: a {given.get('kind')} head; this run trains a {config.get('kind')} "
                         f"head (use --head {given.get('kind')})")
    for key, what in (("image_dim", "image feature width"), ("text_dim", "text feature width"),
                      ("n_scores", "number of metric inputs")):
        if int(given.get(key, 0)) != int(config.get(key, 0)):
            raise InputError(f"--init {folder}: its {what} is {given.get(key)}, this run's is {config.get(key)} "
                             f"(train with the backbone and --no-text/--with-metrics it was trained with)")
    if int(given["n_tasks"]) != len(tasks):
        raise InputError(f"--init {folder}: it learned {len(card['tasks'])} task(s) ({', '.join(card['tasks'])}), this "
                         f"run has {len(tasks)} ({', '.join(tasks)}); name as many with --tasks, in matching order")
    theirs = (card.get("backbone_info") or {}).get("sha256")
    ours = backbone_info.get("sha256")
    if theirs and ours and theirs != ours:
        raise InputError(f"--init {folder}: trained on backbone weights sha256 {theirs[:12]}…, this run's are "
                         f"{ours[:12]}… (features of other weights mean other things)")
    finetuned = load_finetuned(folder) if FINETUNED_FILE in (card.get("files") or {}) else None
    return head, card, finetuned


def init_summary(folder: Path, card: Mapping[str, Any]) -> dict[str, Any]:
    """What a card records about the head a run started from."""
    return {"head": str(Path(folder).resolve()), "weights_sha256": card.get("weights_sha256"),
            "tasks": card.get("tasks"), "data": card.get("data")}


def task_columns(ds: HumanDataset, tasks: Sequence[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """Which rating of the test dataset each task is compared with (tasks it has no rating for
    are left out, and the card lists them); one line if none is usable."""
    unknown = [t for t in mapping if t not in tasks]
    if unknown:
        raise InputError(f"--test-map names task(s) {', '.join(unknown)} this head does not learn "
                         f"(its tasks: {', '.join(tasks)})")
    cols = {t: mapping.get(t, t) for t in tasks}
    available = set(ds.ratings) | (set(ds.items[0].columns) if ds.items else set())
    bad = {t: c for t, c in cols.items() if c not in available}
    if t_missing := [t for t in bad if t in mapping]:
        raise InputError(f"--test-map: {', '.join(f'{t}={bad[t]}' for t in t_missing)}: the test dataset has no such "
                         f"rating; its ratings are {', '.join(ds.ratings)}")
    kept = {t: c for t, c in cols.items() if t not in bad}
    if not kept:
        raise InputError(f"--test-dataset {ds.source}: none of the tasks ({', '.join(tasks)}) is a rating of it "
                         f"({', '.join(ds.ratings)}); map them with --test-map TASK=RATING,...")
    return kept


def ratings_matrix(ds: HumanDataset, columns: Sequence[str]) -> np.ndarray:
    y = np.full((len(ds.items), len(columns)), np.nan)
    for i, item in enumerate(ds.items):
        for j, c in enumerate(columns):
            v = item.columns.get(c)
            try:
                y[i, j] = float(v) if v not in (None, "") else np.nan
            except (TypeError, ValueError):
                y[i, j] = np.nan
    return y
