"""``diagnose()``: one image or frame sequence + a profile -> a JSON-able action plan.

Order of work, chosen so that nothing is wasted and nothing is faked:

1. validate everything (profile, input path, reference path, an explicitly requested model)
   and raise one-line :class:`InputError` / :class:`ModelUnavailableError` before any work;
2. decode the image, or the sequence (image diagnostics then run on its *key frame*, the frame
   of peak mean brightness, and the temporal diagnostics on the whole sequence);
3. measure every diagnostic the profile lists; CLIP probes and scores only with a model;
4. verdicts, component scores, overall 0-10, pass/fail, and rule-based suggestions;
5. with ``vlm=...``, a VLM critique beside them (``vlm`` block, :mod:`gencritic.judges.critique`):
   advice that changes none of the above, with the parameters it and the rules disagree on.

Checks that cannot run here (temporal ones on a still image, CLIP ones with no model) are
listed under ``skipped`` / ``unavailable`` with the reason and left out of the score; checks
that ran but found nothing to measure are ``unmeasurable`` and score 0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gencritic.diagnose.analysers import DESCRIPTIONS, ImageContext, measure
from gencritic.diagnose.profiles import DEFAULT_PROFILE, Check, Profile, load_profile
from gencritic.diagnose.rules import component_score, overall_score, suggest, verdict
from gencritic.diagnose.segmentation import sequence_regions
from gencritic.errors import InputError, ItemError, ModelUnavailableError
from gencritic.io.images import parse_background

if TYPE_CHECKING:
    from gencritic.models import ModelPool
    from gencritic.models.vlm_cache import VLMClient

TEMPORAL_UNITS = {"flicker_index": "% luma", "temporal_ssim": "SSIM", "warping_error": "luma",
                  "peak_brightness": "luma", "time_to_peak": "fraction of duration", "decay_rate": "1/s or 1/frame",
                  "dissipation": "fraction of peak"}
TEMPORAL_DESCRIPTIONS = {
    "flicker_index": "high-frequency frame-to-frame change of the region's mean luma, in % of full scale (0 = smooth)",
    "temporal_ssim": "mean SSIM between consecutive frames (1 = identical)",
    "warping_error": "mean |luma| error after warping frame t+1 onto t with Farneback optical flow",
    "peak_brightness": "highest mean frame luma",
    "time_to_peak": "when mean brightness peaks, as a fraction of the sequence (0 start, 1 end)",
    "decay_rate": "exponential decay rate of brightness after the peak (per second if fps is known)",
    "dissipation": "last frame's brightness above the pre-peak minimum, as a fraction of the peak's",
}


def _clean(x: Any) -> Any:
    """JSON-safe, stable numbers: NaN/inf -> None, floats rounded to 6 decimals, numpy -> python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_clean(v) for v in x.tolist()]
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        f = float(x)
        return round(f, 6) if math.isfinite(f) else None
    return x


def _load_still(path: Path, background: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    from gencritic.io.images import load_image

    try:
        loaded = load_image(path, background)
    except ItemError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    return np.asarray(loaded.rgb, dtype=np.uint8), loaded.alpha


def _temporal_values(summary: dict[str, Any], fps: float | None) -> dict[str, float | None]:
    """The temporal checks' values from one region's summary (the whole frame's, or a region's)."""
    prof = summary.get("brightness_profile", {})
    decay = prof.get("decay_rate_per_s") if fps else prof.get("decay_rate_per_frame")
    return {"flicker_index": summary.get("flicker_index"), "temporal_ssim": summary.get("temporal_ssim"),
            "warping_error": summary.get("warping_error"), "peak_brightness": prof.get("peak"),
            "time_to_peak": prof.get("time_to_peak"), "decay_rate": decay, "dissipation": prof.get("dissipation")}


def _resolve_backbone(profile: Profile, model: str | None, pool: ModelPool | None,
                      unavailable: dict[str, str]) -> Any:
    """Explicit model: load or raise. Profile-requested model: load or record why not."""
    spec = model or profile.model
    if not spec:
        return None
    from gencritic.models import DEFAULT_CLIP_MODEL, ModelPool

    if spec == "default":
        spec = DEFAULT_CLIP_MODEL
    pool = pool or ModelPool()
    if model:
        return pool.clip(spec)  # ModelUnavailableError propagates: the user asked for this model
    try:
        return pool.clip(spec)
    except ModelUnavailableError as exc:
        unavailable["clip"] = str(exc)
        return None


def diagnose(input: str | Path, profile: str = DEFAULT_PROFILE, prompt: str | None = None,
             reference: str | Path | None = None, pool: ModelPool | None = None,
             model: str | None = None, vlm: str | VLMClient | None = None,
             vlm_max_new_tokens: int | None = None) -> dict[str, Any]:
    """Diagnose an image or a frame sequence (folder, GIF, MP4/WebM) against a profile.

    Returns ``{passed, overall, scores, diagnostics, suggested_parameters, issues, ...}``; see
    docs/diagnostics.md for every field. Deterministic: same inputs and settings, same dict.
    ``vlm`` (a VLM spec or client) adds the ``vlm`` critique block (docs/judges.md).
    """
    from gencritic.io.frames import is_sequence, load_frames
    from gencritic.metrics.temporal import analyse_sequence

    prof = load_profile(profile)
    path = Path(input).expanduser()
    if not path.exists():
        raise InputError(f"input not found: {path}; give an image, a folder of frames, a GIF or an MP4/WebM")
    ref_path = Path(reference).expanduser() if reference is not None else None
    if ref_path is not None and not ref_path.is_file():
        raise InputError(f"reference image not found: {ref_path}")
    if prompt is not None and not prompt.strip():
        raise InputError("--prompt is empty: give the text the image should match, or leave it out")
    try:
        background = parse_background(prof.background)
    except ValueError as exc:
        raise InputError(f"profile {prof.path}: {exc}") from None
    unavailable: dict[str, str] = {}
    metric_checks = [c for c in prof.checks if c.kind == "metric"]
    registry_metrics = {}
    if metric_checks:
        from gencritic.diagnose.registry_scores import prepare_metrics

        registry_metrics = prepare_metrics(metric_checks, model)
    backbone = _resolve_backbone(prof, model, pool, unavailable)
    vlm_client = None
    if vlm is not None:  # loaded now: an unavailable VLM the user asked for stops before any work
        from gencritic.judges.critique import make_client

        vlm_client = make_client(vlm, pool)

    # -- media ----------------------------------------------------------------------------
    sequence_info: dict[str, Any] | None = None
    temporal: dict[str, dict[str, float | None]] = {}  # region -> check -> value
    region_info: dict[str, dict[str, Any]] = {}
    temporal_regions = prof.temporal_regions()
    if is_sequence(path):
        seq = load_frames(path, background)
        wanted = sorted({r for r in temporal_regions.values() if r != "image"})
        coverage, masks = sequence_regions(seq.frames, seq.alphas, prof.segmentation, wanted)
        needs_flow = prof.check("warping_error") is not None
        analysis = analyse_sequence(seq.frames, seq.fps, {"coverage": coverage}, flow=needs_flow, regions=masks)
        key = int(np.argmax(analysis["curves"]["brightness"]))
        rgb = seq.frames[key]
        alpha = None if seq.alphas is None else seq.alphas[key]
        ctx = ImageContext.build(rgb, alpha, prof.segmentation)
        temporal["image"] = _temporal_values(analysis["summary"], seq.fps)
        region_info = analysis["summary"].get("regions", {})
        for name, part in region_info.items():
            temporal[name] = _temporal_values(part, seq.fps)
        unavailable.update(analysis["unavailable"])
        sequence_info = {"frames": len(seq), "fps": seq.fps, "key_frame": key, "key_frame_name": seq.names[key],
                         "summary": analysis["summary"]}
    else:
        rgb, alpha = _load_still(path, background)
        ctx = ImageContext.build(rgb, alpha, prof.segmentation)
    ref_ctx = None
    ref_rgb = None
    if ref_path is not None:
        ref_rgb, ref_alpha = _load_still(ref_path, background)
        ref_ctx = ImageContext.build(ref_rgb, ref_alpha, prof.segmentation)

    # -- measurements ---------------------------------------------------------------------
    diagnostics: dict[str, dict[str, Any]] = {}
    scores: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    measured: list[tuple[Check, float | None]] = []

    def record(check: Check, value: float | None, entry: dict[str, Any]) -> None:
        if value is not None and not math.isfinite(value):
            value = None
        v = "unmeasurable" if value is None else verdict(value, check.target)
        entry.update({"value": value, "target": check.target.as_list(), "verdict": v,
                      "score": component_score(value, check.target), "weight": check.weight})
        if check.required:
            entry["required"] = True
        measured.append((check, value))

    for check in prof.checks:
        if check.kind == "image":
            m = measure(ctx, check.name, check.options)
            entry: dict[str, Any] = {"unit": m.unit, "description": DESCRIPTIONS[check.name], "details": m.details}
            if m.reason:
                entry["reason"] = m.reason
            if ref_ctx is not None:
                entry["reference_value"] = measure(ref_ctx, check.name, check.options).value
            record(check, m.value, entry)
            diagnostics[check.name] = entry
        elif check.kind == "temporal":
            if sequence_info is None:
                skipped[check.name] = "needs a frame sequence (folder, GIF, MP4/WebM); input is a single image"
                continue
            if check.name in unavailable:
                skipped[check.name] = unavailable[check.name]
                continue
            region = temporal_regions[check.name]
            details: dict[str, Any] = {"region": region, "whole_frame": temporal["image"].get(check.name)}
            if region != "image":
                details["region_fraction"] = region_info[region]["fraction"]
            entry = {"unit": TEMPORAL_UNITS[check.name], "description": TEMPORAL_DESCRIPTIONS[check.name],
                     "details": details}
            value = temporal[region].get(check.name)
            if region != "image" and "reason" in region_info[region]:
                entry["reason"] = region_info[region]["reason"]
            elif value is None or not math.isfinite(value):
                entry["reason"] = (f"not measurable on this {sequence_info['frames']}-frame sequence "
                                   f"(flicker needs 3 frames, decay a falling tail after the peak)")
            record(check, value, entry)
            diagnostics[check.name] = entry

    clip_checks = [c for c in prof.checks if c.kind in ("probe", "score")]
    if backbone is None:
        why = unavailable.get("clip", "no CLIP model given (pass model=... / --model to enable CLIP probes and scores)")
        if clip_checks:
            unavailable["clip"] = why
        for check in clip_checks:
            skipped[check.name] = why
    else:
        from gencritic.diagnose.probes import encode_image, encode_texts_memo, ladder_position

        img_emb = encode_image(backbone, rgb)
        model_id = backbone.model_id
        for check in clip_checks:
            if check.kind == "probe":
                ladder = list(check.options["ladder"])
                pos, probs = ladder_position(img_emb, encode_texts_memo(backbone, ladder), backbone.logit_scale)
                entry = {"unit": "ladder position", "source": "clip_probe", "model": model_id,
                         "description": f"expected rung on: {' < '.join(ladder)}",
                         "details": {"probabilities": dict(zip(ladder, probs.tolist(), strict=True))}}
                record(check, pos, entry)
                diagnostics[check.name] = entry
            elif check.name == "clip_score":
                if prompt is None:
                    skipped[check.name] = "needs a prompt (--prompt)"
                    continue
                cos = float(encode_texts_memo(backbone, [prompt])[0] @ img_emb)
                entry = {"variant": "raw cosine (x100 in clip_score_x100, the paper convention)",
                         "clip_score_x100": 100.0 * cos, "model": model_id}
                record(check, cos, entry)
                scores[check.name] = entry
            elif check.name == "reference_similarity":
                if ref_rgb is None:
                    skipped[check.name] = "needs a reference image (--reference)"
                    continue
                cos = float(encode_image(backbone, ref_rgb) @ img_emb)
                entry = {"variant": "cosine of CLIP image embeddings", "model": model_id}
                record(check, cos, entry)
                scores[check.name] = entry

    if metric_checks:
        from gencritic.diagnose.registry_scores import run_metric
        from gencritic.models import ModelPool

        metric_pool = pool or ModelPool()
        for check in metric_checks:
            metric, column = registry_metrics[check.name]
            res = run_metric(metric, column, rgb, alpha, path, prompt, ref_path, background, metric_pool, model)
            if res.value is None:
                skipped[check.name] = res.reason or "not computed"
                if res.unavailable:
                    unavailable[check.name] = res.reason or ""
                continue
            entry = {"metric": metric.name, "column": column, "model": res.model,
                     "higher_is_better": metric.info.higher_is_better, "description": metric.info.description}
            record(check, res.value, entry)
            scores[check.name] = entry

    # -- decisions --------------------------------------------------------------------------
    overall = overall_score([(c.weight, component_score(v, c.target)) for c, v in measured])
    verdicts = {c.name: ("unmeasurable" if v is None else verdict(v, c.target)) for c, v in measured}
    describe = {}
    for c, v in measured:
        if v is not None:
            lo, hi = c.target.low, c.target.high
            describe[c.name] = f"{v:.4g} vs target [{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"
    suggestions = suggest(verdicts, prof.rules, describe)
    total_w = sum(c.weight for c, _ in measured) or 1.0
    issues: list[dict[str, Any]] = []
    for c, v in measured:
        if verdicts[c.name] != "good":
            loss = 10.0 * c.weight * (1.0 - component_score(v, c.target)) / total_w
            issues.append({"name": c.name, "verdict": verdicts[c.name], "value": v, "target": c.target.as_list(),
                           "points_lost": loss})
    issues.sort(key=lambda d: (-float(d["points_lost"]), str(d["name"])))
    covered = {(r.check, r.verdict) for r in prof.rules}
    notes = [f"no rule in profile '{prof.name}' covers {i['name']} {i['verdict']}; add one under rules: to get a "
             f"parameter suggestion" for i in issues if (i["name"], i["verdict"]) not in covered]
    failed_because = []
    if overall is None:
        failed_because.append("nothing could be measured with weight > 0")
    elif overall < prof.pass_threshold:
        failed_because.append(f"overall {overall:.2f} is below the pass threshold {prof.pass_threshold:g}")
    for c, _ in measured:
        if c.required and verdicts[c.name] != "good":
            failed_because.append(f"required check {c.name} is {verdicts[c.name]}")
    result: dict[str, Any] = {
        "input": str(path), "kind": "frames" if sequence_info else "image",
        "profile": {"name": prof.name, "path": str(prof.path), "pass_threshold": prof.pass_threshold},
        "passed": not failed_because, "failed_because": failed_because,
        "overall": overall, "scores": scores, "diagnostics": diagnostics,
        "suggested_parameters": suggestions, "issues": issues, "notes": notes,
        "skipped": skipped,
        "unavailable": {k: v for k, v in unavailable.items() if k == "clip" or k in registry_metrics},
        "model": None if backbone is None else backbone.model_id, "prompt": prompt,
        "reference": None if ref_path is None else str(ref_path),
        "segmentation": {"mask_source": ctx.masks.source, "background_rgb": list(ctx.masks.background_rgb),
                         "foreground_fraction": float(ctx.masks.foreground.mean()),
                         "emissive_fraction": float(ctx.masks.emissive.mean()),
                         "smoke_fraction": float(ctx.masks.smoke.mean())},
    }
    if sequence_info is not None:
        result["sequence"] = sequence_info
    if vlm_client is not None:
        from gencritic.judges.critique import DEFAULT_MAX_NEW_TOKENS, critique_image

        result["vlm"] = critique_image(vlm_client, rgb, prof, suggestions, vlm_max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
    return _clean(result)  # type: ignore[no-any-return]


def key_frame_rgb(result: dict[str, Any]) -> np.ndarray:
    """The pixels a diagnose result's image checks were measured on (the still, or the key frame)."""
    from gencritic.io.frames import load_frames

    prof = load_profile(result["profile"]["path"])
    background = parse_background(prof.background)
    path = Path(result["input"])
    if result.get("kind") == "frames":
        seq = load_frames(path, background)
        return np.asarray(seq.frames[int(result["sequence"]["key_frame"])])
    return _load_still(path, background)[0]


def critique(input: str | Path, profile: str = "explosion", vlm: Any = None, pool: ModelPool | None = None,
             cache_dir: Path | bool | None = True, max_new_tokens: int | None = None) -> dict[str, Any]:
    """``gencritic critique``: the rules' plan (model-free) and the VLM critique beside it
    (:mod:`gencritic.judges.critique`; ``vlm`` a spec or a client, default the default VLM).

    The image the rules measured (a still, or a sequence's key frame) is the one the VLM sees."""
    from gencritic.judges.critique import DEFAULT_MAX_NEW_TOKENS, make_client
    from gencritic.models.vlm import default_vlm_spec

    client = make_client(vlm or default_vlm_spec(), pool, cache_dir)
    result = diagnose(input, profile=profile, pool=pool, vlm=client,
                      vlm_max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
    return {"input": result["input"], "kind": result["kind"], "profile": result["profile"],
            "rules": {"passed": result["passed"], "overall": result["overall"],
                      "suggested_parameters": result["suggested_parameters"]},
            **result["vlm"]}
