"""The scoring package's contracts: models load on first use (a fully cached re-run loads none),
render options are one typed model checked once, records round-trip through the journal, one
embedding path for training and scoring, and set metrics over the whole run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import gencritic
from gencritic.errors import InputError
from gencritic.items import Item
from gencritic.models.loader import ModelPool
from gencritic.scoring import ScoreOptions, score
from tests.conftest import make_image

N = 6
LONG = " ".join(["a very long prompt about a coloured square"] * 20)  # past CLIP's 77 tokens


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    for i in range(N):
        make_image(folder / f"im{i}.png", ((i * 61) % 255, (i * 97) % 255, (i * 29) % 255), size=40 + i)
        (folder / f"im{i}.txt").write_text(LONG if i == 0 else f"picture {i} of a square")
    return folder


def _run(images: Path, out: Path, model: Path, cache: Path, pool: ModelPool, **kw: object) -> gencritic.ScoreRun:
    return score(images, out=out, model=str(model), cache_dir=cache, progress=False, pool=pool, device="cpu",
                 metrics="clip,clip_torchmetrics", **kw)


# --- models load on first use ----------------------------------------------------------------------

def test_a_fully_cached_rerun_into_a_new_folder_loads_no_model(images: Path, tiny_clip_dir: Path,
                                                                tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _run(images, tmp_path / "one", tiny_clip_dir, cache, ModelPool("cpu"))
    pool = ModelPool("cpu")  # as a new process has
    second = _run(images, tmp_path / "two", tiny_clip_dir, cache, pool)
    assert pool.loaded() == []  # every image, prompt and token count came from the cache
    assert second.rows == first.rows  # the same numbers, truncation counts and settings ids
    assert second.rows[0]["prompt_tokens_cut"] > 0
    assert (tmp_path / "one" / "results.csv").read_bytes() == (tmp_path / "two" / "results.csv").read_bytes()
    # one image more: the model loads for it (and only then), and the cached ones are not re-encoded
    make_image(images / "new.png", (10, 120, 240), size=45)
    pool = ModelPool("cpu")
    third = _run(images, tmp_path / "three", tiny_clip_dir, cache, pool)
    assert len(pool.loaded()) == 1 and pool.clip(str(tiny_clip_dir)).image_encode_count == 1
    assert [r for r in third.rows if r["item_id"] != "new.png"] == first.rows


def test_changed_model_files_load_the_model_again(images: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_clip_dir, model)
    cache = tmp_path / "cache"
    _run(images, tmp_path / "one", model, cache, ModelPool("cpu"))
    config = model / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))  # "edited"
    pool = ModelPool("cpu")
    _run(images, tmp_path / "two", model, cache, pool)
    assert len(pool.loaded()) == 1  # what the cache knew about the model no longer vouches for it


def test_without_a_cache_the_model_loads_up_front(images: Path, tmp_path: Path) -> None:
    """No cache to keep facts in: an unavailable model is still one error before any work."""
    with pytest.raises(gencritic.errors.ModelUnavailableError):
        score(images, out=tmp_path / "o", model=str(tmp_path / "missing-model"), cache_dir=None, progress=False,
              device="cpu")
    assert not (tmp_path / "o" / "results.csv").exists()


# --- typed render settings -------------------------------------------------------------------------

def test_render_options_are_one_typed_model_checked_when_made() -> None:
    from gencritic.render.settings import RenderSettings

    opts = ScoreOptions(render={"rig": "toys4k8", "resolution": 256})
    assert isinstance(opts.render, RenderSettings) and opts.render.resolution == 256
    # only the options given enter the fingerprint, as they did when they were a dict
    assert opts.numeric_settings()["render"] == {"resolution": 256, "rig": "toys4k8"}
    assert ScoreOptions().numeric_settings()["render"] == {}
    with pytest.raises(InputError, match=r"--resolution 5: use 16\.\.4096"):
        ScoreOptions(render={"resolution": 5})  # one line when the options are made, whatever the input
    with pytest.raises(InputError, match=r"unknown render option 'resolutoin' \(did you mean 'resolution'\?\)"):
        ScoreOptions(render={"resolutoin": 256})
    run = opts.render_for_run((0, 0, 0))  # the renderer's copy: the run's background and render cache
    assert run.background == (0, 0, 0) and run.cache_dir == opts.cache_dir / "renders"  # type: ignore[operator]
    assert run.key() != opts.render.key() and run.given() == {**opts.render.given(), "background": [0, 0, 0]}


# --- records -------------------------------------------------------------------------------------

def test_records_round_trip_through_the_journal_including_older_journals(images: Path, tiny_clip_dir: Path,
                                                                         tmp_path: Path) -> None:
    from gencritic.jsonio import journal_line, parse_journal_line
    from gencritic.scoring.journal import read_records
    from gencritic.scoring.records import ItemRecord

    _run(images, tmp_path / "o", tiny_clip_dir, tmp_path / "c", ModelPool("cpu"))
    lines = (tmp_path / "o" / ".gencritic" / "journal.jsonl").read_text().splitlines()
    for line, rec in zip(lines, read_records(tmp_path / "o"), strict=True):
        assert journal_line(rec.to_journal()) == line  # the journal's layout is what it was
    old = {"item": {"item_id": "a.png", "kind": "image", "path": "/x/a.png", "prompt": None, "columns": {}},
           "values": {"clip_score": 0.25}, "views": [{"view": "0", "values": {"clip_score": 0.25}, "error": None}],
           "num_views": 1, "prompt_tokens_cut": None, "settings_id": "abc", "model": "m",
           "num_views_scored": 1, "success": True, "error": None}  # before per-column models were kept
    rec = ItemRecord.from_journal(parse_journal_line(journal_line(old)))
    assert rec.models is None and rec.warnings == [] and rec.to_journal() == old


# --- one embedding path ------------------------------------------------------------------------------

def test_embed_gives_the_vectors_the_clip_metric_scores(images: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from gencritic.io.manifest import collect_items
    from gencritic.scoring.embed import embed

    items = collect_items(images)
    pool = ModelPool("cpu")
    emb = embed(items, pool.clip(str(tiny_clip_dir)), tmp_path / "cache", batch_size=4)
    run = score(items, model=str(tiny_clip_dir), cache_dir=tmp_path / "cache", progress=False, pool=pool,
                device="cpu")
    assert emb.text is not None and emb.errors == [None] * N
    import torch

    cosines = (torch.from_numpy(emb.image) * torch.from_numpy(emb.text)).sum(-1).double().numpy()  # as the metric
    assert np.array_equal(cosines, np.array([r["clip_score"] for r in run.rows]))
    assert run.summary["cache"]["misses"] == 0  # scoring found every vector embed() stored


# --- set metrics -------------------------------------------------------------------------------

def _diversity_by_hand(items: list[Item], model: Path) -> float:
    import torch

    from gencritic.models.loader import load_clip

    bb = load_clip(str(model), device="cpu", dtype="fp32")
    with torch.no_grad():
        from PIL import Image

        emb = bb.encode_images(torch.stack([bb.preprocess(Image.open(i.path).convert("RGB")) for i in items]))
    e = emb.double().numpy()
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    n = len(e)
    return float(sum(1.0 - e[a] @ e[b] for a in range(n) for b in range(n) if a != b) / (n * (n - 1)))


def test_a_set_metric_is_computed_over_the_whole_run(images: Path, tiny_clip_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from gencritic.io.manifest import collect_items
    from gencritic.scoring import run as scoring_run

    expected = _diversity_by_hand(collect_items(images), tiny_clip_dir)
    whole = score(images, out=tmp_path / "a", model=str(tiny_clip_dir), metrics="clip,clip_diversity", cache_dir=None,
                  progress=False, device="cpu", batch_size=2)
    got = whole.summary["set_metrics"]["clip_diversity"]
    assert got["value"] == pytest.approx(expected, abs=1e-6) and got["n_views"] == N and got["error"] is None
    assert got["higher_is_better"] is True and 0.0 <= got["value"] <= 2.0  # the declared range
    assert "clip_diversity" not in whole.columns  # not a per-row column
    assert [r["clip_score"] for r in whole.rows] == [r["clip_score"] for r in score(  # rows as without it
        images, model=str(tiny_clip_dir), cache_dir=None, progress=False, device="cpu", batch_size=2).rows]

    # interrupted after two batches, then resumed: the same value, from every item's views
    real, calls = scoring_run.score_batch, {"n": 0}

    def interrupting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring_run, "score_batch", interrupting)
    with pytest.raises(KeyboardInterrupt):
        score(images, out=tmp_path / "b", model=str(tiny_clip_dir), metrics="clip,clip_diversity",
              cache_dir=tmp_path / "cache", progress=False, device="cpu", batch_size=2)
    partial = json.loads((tmp_path / "b" / "summary.json").read_text())["set_metrics"]["clip_diversity"]
    assert partial["value"] is None and "interrupted" in partial["error"]
    monkeypatch.setattr(scoring_run, "score_batch", real)
    resumed = score(images, out=tmp_path / "b", model=str(tiny_clip_dir), metrics="clip,clip_diversity",
                    cache_dir=tmp_path / "cache", progress=False, device="cpu", batch_size=2)
    assert resumed.summary["resumed_items"] == 4
    assert resumed.summary["set_metrics"]["clip_diversity"]["value"] == pytest.approx(got["value"], abs=1e-12)

    one = score(images / "im1.png", prompt="x", model=str(tiny_clip_dir), metrics="clip_diversity", cache_dir=None,
                progress=False, device="cpu")
    assert one.summary["set_metrics"]["clip_diversity"]["value"] is None  # one view has no pairs: said, not faked
    assert "N >= 2" in one.summary["set_metrics"]["clip_diversity"]["error"]


def test_set_metrics_are_declared_and_listed() -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app
    from gencritic.metrics.base import MetricInfo, SetMetric
    from gencritic.metrics.registry import all_metrics, register

    listed = {m["name"]: m for m in json.loads(CliRunner().invoke(app, ["metrics", "--json"]).stdout)}
    assert listed["clip_diversity"]["kind"] == "set" and listed["clip"]["kind"] == "view"
    assert {n for n, cls in all_metrics().items() if issubclass(cls, SetMetric)} == {
        n for n, m in listed.items() if m["kind"] == "set"}
    info = all_metrics()["clip"].info
    with pytest.raises(RuntimeError, match="kind 'set' goes with a SetMetric"):
        register(type("Wrong", (all_metrics()["clip"],), {"info": MetricInfo(**{
            **info.as_dict(), "name": "wrong", "range": info.range, "inputs": info.inputs,
            "columns": ("wrong",), "kind": "set"})}))
