"""Pairwise 3D judging (GPTEval3D's protocol): a VLM compares two generators' assets for one prompt.

For every prompt that at least two generators answered, every pair of those generators and
every criterion, the VLM sees one picture, the first asset's views tiled on the left half and
the second's on the right, and is asked which is better; then again with the sides swapped, so
a preference for one side cancels out. Its choice is read like VQAScore: the first-token
probabilities of "1" and "2" (greedy, deterministic, and never an unparseable answer). A
comparison whose answer is unknown (an endpoint that listed neither token, a failed request,
an asset without views) is recorded as failed and left out of the ratings.

Ratings are Bradley–Terry strengths on the Elo scale with prompt-grouped bootstrap intervals
(:mod:`gencritic.judges.ratings`), per criterion and over all criteria; the leaderboard is written
as CSV, JSON and a self-contained HTML page (:mod:`gencritic.judges.leaderboard`).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from gencritic.errors import InputError
from gencritic.items import ItemKind
from gencritic.judges.assets import AssetViews, generator_entries, load_views, read_prompts, sidecar_prompt
from gencritic.judges.ratings import DEFAULT_L2, Match, rate
from gencritic.models.vlm_cache import VLMClient

# GPTEval3D's five criteria, as questions (its text-asset alignment, 3D plausibility,
# texture-geometry coherency, geometry details, texture details).
CRITERIA: dict[str, str] = {
    "alignment": "Which object matches the description better?",
    "plausibility": "Which object is the more plausible 3D object, with a coherent shape and no floating, "
                    "missing or broken parts?",
    "coherence": "In which object do the texture and the geometry fit each other better?",
    "geometry": "Which object has the finer and cleaner geometric detail?",
    "texture": "Which object has the more detailed and realistic texture and colours?",
}
DEFAULT_CRITERIA = ("alignment", "geometry", "texture")
OPTIONS = ("1", "2")
DEFAULT_TILE = 256
DEFAULT_VIEWS = 4
DEFAULT_MAX_SIDE = 1024  # a pair picture is two grids wide: keep it legible to the VLM
GAP = 16
GAP_COLOUR = (128, 128, 128)


@dataclass
class JudgeOptions:
    criteria: Sequence[str] = DEFAULT_CRITERIA
    views: int = DEFAULT_VIEWS
    tile: int = DEFAULT_TILE
    bootstrap: int = 1000
    seed: int = 0
    l2: float = DEFAULT_L2
    prompts_file: Path | None = None
    names: Sequence[str] | None = None
    render_options: dict[str, Any] = field(default_factory=dict)


def question(criterion: str, prompt: str | None, n_views: int) -> str:
    """The words the VLM reads for one comparison."""
    seen = f"each seen from {n_views} viewpoints" if n_views > 1 else "each in one picture"
    described = f' Both were generated for the description "{prompt}".' if prompt else ""
    return (f"The image shows two 3D objects side by side, {seen}: object 1 fills the left half and object 2 the "
            f"right half.{described} {CRITERIA[criterion]} Answer with 1 or 2.")


def grid(images: Sequence[Image.Image], tile: int) -> Image.Image:
    """Views tiled row by row in a near-square grid, each fitted into a ``tile``² cell on white."""
    cols = max(1, math.ceil(math.sqrt(len(images))))
    rows = max(1, math.ceil(len(images) / cols))
    sheet = Image.new("RGB", (cols * tile, rows * tile), (255, 255, 255))
    for k, im in enumerate(images):
        cell = im.convert("RGB").copy()
        cell.thumbnail((tile, tile), Image.Resampling.BICUBIC)
        x, y = (k % cols) * tile + (tile - cell.width) // 2, (k // cols) * tile + (tile - cell.height) // 2
        sheet.paste(cell, (x, y))
    return sheet


def pair_picture(left: AssetViews, right: AssetViews, tile: int) -> Image.Image:
    """Left asset's grid | grey gap | right asset's grid."""
    a, b = grid(left.images, tile), grid(right.images, tile)
    out = Image.new("RGB", (a.width + GAP + b.width, max(a.height, b.height)), GAP_COLOUR)
    out.paste(a, (0, 0))
    out.paste(b, (a.width + GAP, 0))
    return out


def pair_sha(left: AssetViews, right: AssetViews, tile: int) -> str:
    """The pair picture's content key, from its views' hashes (no need to compose it on a cache hit)."""
    text = f"pair|tile={tile}|gap={GAP}|" + ",".join(left.shas) + "|" + ",".join(right.shas)
    return hashlib.sha256(text.encode()).hexdigest()


def decide(logprobs: Sequence[float | None]) -> tuple[int | None, str | None]:
    """(0 = left wins, 1 = right wins, None = tie) from log P("1"), log P("2"); or an error.
    An option the backend did not list is less likely than one it did."""
    lp1, lp2 = logprobs
    if lp1 is None and lp2 is None:
        return None, "neither '1' nor '2' is among the first tokens the VLM listed"
    if lp2 is None or (lp1 is not None and lp1 > lp2):
        return 0, None
    if lp1 is None or lp2 > lp1:
        return 1, None
    return None, None


def _probability(lp: float | None) -> float | None:
    return None if lp is None else math.exp(lp)


@dataclass(frozen=True)
class JudgePlan:
    """What will be compared, checked before any model is loaded."""

    names: list[str]
    entries: list[dict[str, tuple[ItemKind, Path]]]
    prompts: dict[str, str]
    prompt_ids: list[str]


def plan_judging(folders: Sequence[Path], options: JudgeOptions | None = None) -> JudgePlan:
    """Validate the folders and options (one InputError line each) and list the shared prompts."""
    opts = options or JudgeOptions()
    if len(folders) < 2:
        raise InputError("judge3d needs at least two generator folders to compare")
    unknown = [c for c in opts.criteria if c not in CRITERIA]
    if unknown or not opts.criteria:
        raise InputError(f"unknown criterion {', '.join(unknown) or '(none given)'}; use any of {', '.join(CRITERIA)}")
    names = list(opts.names) if opts.names else [Path(f).resolve().name for f in folders]
    if len(names) != len(folders) or len(set(names)) != len(names):
        raise InputError(f"generator names must be unique, one per folder (got {', '.join(names)}); use --names")
    if opts.views < 1 or opts.tile < 16:
        raise InputError("--views must be at least 1 and --tile at least 16 pixels")
    entries = [generator_entries(Path(f)) for f in folders]
    given = read_prompts(opts.prompts_file) if opts.prompts_file is not None else {}
    prompt_ids = sorted({pid for e in entries for pid in e if sum(pid in other for other in entries) >= 2})
    if not prompt_ids:
        raise InputError("no prompt id is answered by two generators: name each output by its prompt id "
                         "(the same file or folder name in every generator folder)")
    return JudgePlan(names, entries, given, prompt_ids)


def judge_generators(folders: Sequence[Path] | JudgePlan, client: VLMClient, options: JudgeOptions | None = None,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Judge every shared prompt of the generators' folders (or of a plan from :func:`plan_judging`);
    returns the comparisons (``rows``), ratings per criterion and overall, and the settings."""
    opts = options or JudgeOptions()
    plan = folders if isinstance(folders, JudgePlan) else plan_judging(folders, opts)
    names, entries, given, prompt_ids = plan.names, plan.entries, plan.prompts, plan.prompt_ids

    matches: list[dict[str, Any]] = []
    for n_done, pid in enumerate(prompt_ids):
        present = [g for g in range(len(entries)) if pid in entries[g]]
        prompt = given.get(pid) or next((p for g in present if (p := sidecar_prompt(*entries[g][pid]))), None)
        views = {g: load_views(pid, *entries[g][pid], opts.views, opts.render_options) for g in present}
        jobs: list[dict[str, Any]] = []
        for a, b in itertools.combinations(present, 2):
            for criterion in opts.criteria:
                for left, right in ((a, b), (b, a)):
                    row: dict[str, Any] = {"prompt_id": pid, "prompt": prompt, "criterion": criterion,
                                           "left": names[left], "right": names[right], "p_left": None,
                                           "p_right": None, "winner": None, "error": None}
                    bad = views[left].error or views[right].error
                    if bad:
                        failed = names[left] if views[left].error else names[right]
                        row["error"] = f"{failed}: {bad}"
                    elif criterion == "alignment" and not prompt:
                        row["error"] = (f"no prompt text for {pid!r}: add {pid}.txt beside the outputs or "
                                        f"--prompts CSV")
                    else:
                        jobs.append({"row": row, "left": views[left], "right": views[right]})
                    matches.append(row)
        if jobs:
            answers = client.first_token_logprobs(
                [functools.partial(pair_picture, j["left"], j["right"], opts.tile) for j in jobs],
                [pair_sha(j["left"], j["right"], opts.tile) for j in jobs],
                [question(j["row"]["criterion"], prompt, len(j["left"].images)) for j in jobs], OPTIONS)
            for job, ans in zip(jobs, answers, strict=True):
                row = job["row"]
                if ans.error is not None:
                    row["error"] = ans.error
                    continue
                row["p_left"], row["p_right"] = (_probability(v) for v in ans.value)
                side, err = decide(ans.value)
                row["error"] = err
                if err is None:
                    row["winner"] = "tie" if side is None else (row["left"], row["right"])[side]
        if progress is not None:
            progress(f"{n_done + 1}/{len(prompt_ids)} prompts judged ({pid})")
    return summarise(names, list(opts.criteria), matches, opts, client, len(prompt_ids))


def _to_matches(names: list[str], rows: Sequence[dict[str, Any]]) -> list[Match]:
    index = {n: k for k, n in enumerate(names)}
    out = []
    for r in rows:
        if r["winner"] is None:
            continue
        left, right = index[r["left"]], index[r["right"]]
        if r["winner"] == "tie":
            out.append(Match(left, right, r["prompt_id"], tie=True))
        elif r["winner"] == r["left"]:
            out.append(Match(left, right, r["prompt_id"]))
        else:
            out.append(Match(right, left, r["prompt_id"]))
    return out


def position_consistency(rows: Sequence[dict[str, Any]]) -> float | None:
    """Share of comparisons whose two orders named the same winner (1.0: no position bias seen)."""
    decided: dict[tuple[str, str, frozenset[str]], list[str]] = {}
    for r in rows:
        if r["winner"] is not None:
            decided.setdefault((r["prompt_id"], r["criterion"], frozenset((r["left"], r["right"]))), []).append(
                r["winner"])
    both = [w for w in decided.values() if len(w) == 2]
    return sum(w[0] == w[1] for w in both) / len(both) if both else None


def summarise(names: list[str], criteria: list[str], rows: list[dict[str, Any]], opts: JudgeOptions,
              client: VLMClient, n_prompts: int) -> dict[str, Any]:
    ratings: dict[str, list[dict[str, Any]]] = {}
    for criterion in [*criteria, "overall"]:
        chosen = rows if criterion == "overall" else [r for r in rows if r["criterion"] == criterion]
        board = rate(names, _to_matches(names, chosen), opts.bootstrap, opts.seed, opts.l2)
        ratings[criterion] = [r.as_dict(k + 1) for k, r in enumerate(board)]
    failed = [r for r in rows if r["error"]]
    return {
        "generators": names, "criteria": criteria, "prompts": n_prompts,
        "matches": {"total": len(rows), "decided": len(rows) - len(failed), "failed": len(failed),
                    "position_consistency": position_consistency(rows)},
        "ratings": ratings,
        "settings": {"vlm": client.model_id, "vlm_settings": client.vlm.settings(), "views": opts.views,
                     "tile": opts.tile, "bootstrap": opts.bootstrap, "seed": opts.seed, "l2": opts.l2,
                     "ci": "95% percentile, prompts resampled", "answer_tokens": list(OPTIONS)},
        "rows": rows,
    }
