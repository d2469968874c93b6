"""The scoring run as a whole: resume after a kill or Ctrl-C, byte-identical re-runs,
the embedding cache, output formats and the CLI contract."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import gencritic
from gencritic.errors import InputError
from gencritic.models.loader import ModelPool
from tests.conftest import ROOT, make_image

N_IMAGES = 24


@pytest.fixture()
def many_images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    for i in range(N_IMAGES):
        make_image(folder / f"im{i:02d}.png", ((i * 37) % 255, (i * 91) % 255, (i * 53) % 255), size=36 + i)
        (folder / f"im{i:02d}.txt").write_text(f"picture number {i} of a coloured square")
    return folder


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gencritic.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT, timeout=300)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_two_runs_give_byte_identical_files(tiny_clip_dir: Path, many_images: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        gencritic.score(many_images, out=tmp_path / name, model=str(tiny_clip_dir), cache_dir=tmp_path / f"c{name}",
                        batch_size=5, progress=False, formats=["csv", "jsonl"])
    for f in ("results.csv", "views.csv", "results.jsonl"):
        assert _read(tmp_path / "a" / f) == _read(tmp_path / "b" / f)
    a = json.loads(_read(tmp_path / "a" / "summary.json"))
    b = json.loads(_read(tmp_path / "b" / "summary.json"))
    for volatile in ("wall_time_s", "cache"):
        a.pop(volatile), b.pop(volatile)
    assert a == b


def test_ctrl_c_then_resume_completes_without_duplicates(tiny_clip_dir: Path, many_images: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from gencritic.scoring import run as pipeline

    reference = gencritic.score(many_images, out=tmp_path / "ref", model=str(tiny_clip_dir), cache_dir=None,
                                batch_size=4, progress=False)
    real = pipeline.score_batch
    calls = {"n": 0}

    def interrupting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "score_batch", interrupting)
    with pytest.raises(KeyboardInterrupt):
        gencritic.score(many_images, out=tmp_path / "out", model=str(tiny_clip_dir), cache_dir=None, batch_size=4,
                        progress=False)
    partial = json.loads(_read(tmp_path / "out" / "summary.json"))
    assert partial["interrupted"] is True and partial["count"] == 8  # two batches of 4 saved
    monkeypatch.setattr(pipeline, "score_batch", real)
    resumed = gencritic.score(many_images, out=tmp_path / "out", model=str(tiny_clip_dir), cache_dir=None,
                              batch_size=4, progress=False)
    assert resumed.summary["resumed_items"] == 8
    assert _read(tmp_path / "out" / "results.csv") == _read(tmp_path / "ref" / "results.csv")
    ids = [r["item_id"] for r in resumed.rows]
    assert len(ids) == len(set(ids)) == N_IMAGES
    assert reference.summary["mean"] == resumed.summary["mean"]


def test_sigkill_midway_then_rerun_is_identical(tiny_clip_dir: Path, many_images: Path, tmp_path: Path) -> None:
    """A real kill -9 while batches are being written, then the same command again."""
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import time, gencritic
        from gencritic.scoring import run as pipeline
        real = pipeline.score_batch
        def slow(*a, **k):
            r = real(*a, **k)
            time.sleep(0.4)
            return r
        pipeline.score_batch = slow
        gencritic.score({str(many_images)!r}, out={str(out)!r}, model={str(tiny_clip_dir)!r}, cache_dir=None,
                        batch_size=3, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    journal = out / ".gencritic" / "journal.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= 6:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(journal.read_text().splitlines())
    assert 6 <= done_before < N_IMAGES
    with open(journal, "a") as fh:  # and a torn line, as if killed mid-write
        fh.write('{"item": {"item_id": "im2')
    result = _cli("score", str(many_images), "--out", str(out), "--model", str(tiny_clip_dir), "--no-cache",
                  "--batch-size", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    gencritic.score(many_images, out=tmp_path / "ref", model=str(tiny_clip_dir), cache_dir=None, batch_size=3,
                    progress=False)
    assert _read(out / "results.csv") == _read(tmp_path / "ref" / "results.csv")
    summary = json.loads(_read(out / "summary.json"))
    assert summary["count"] == N_IMAGES and summary["resumed_items"] == done_before


def test_warm_cache_skips_the_encoder(tiny_clip_dir: Path, many_images: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    pool = ModelPool("cpu")
    first = gencritic.score(many_images, out=tmp_path / "one", model=str(tiny_clip_dir), cache_dir=cache,
                            progress=False, pool=pool)
    backbone = pool.clip(str(tiny_clip_dir))
    encoded = backbone.image_encode_count
    assert encoded == N_IMAGES
    second = gencritic.score(many_images, out=tmp_path / "two", model=str(tiny_clip_dir), cache_dir=cache,
                             progress=False, pool=pool)
    assert backbone.image_encode_count == encoded  # nothing re-encoded: images were not even decoded
    assert second.summary["cache"]["hits"] >= N_IMAGES
    assert [r["clip_score"] for r in first.rows] == [r["clip_score"] for r in second.rows]


def test_identical_images_and_texts_are_encoded_once(tiny_clip_dir: Path, tmp_path: Path) -> None:
    make_image(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("image,prompt\n" + "a.png,same prompt\n" * 5 + "a.png,other prompt\n")
    pool = ModelPool("cpu")
    gencritic.score(tmp_path / "m.csv", model=str(tiny_clip_dir), cache_dir=None, progress=False, pool=pool)
    bb = pool.clip(str(tiny_clip_dir))
    assert bb.image_encode_count == 1 and bb.text_encode_count == 2


def test_changed_settings_refuse_to_mix_results(tiny_clip_dir: Path, many_images: Path, tmp_path: Path) -> None:
    gencritic.score(many_images, out=tmp_path / "o", model=str(tiny_clip_dir), cache_dir=None, progress=False)
    with pytest.raises(InputError, match="other settings"):
        gencritic.score(many_images, out=tmp_path / "o", model=str(tiny_clip_dir), cache_dir=None, progress=False,
                        background="black")
    again = gencritic.score(many_images, out=tmp_path / "o", model=str(tiny_clip_dir), cache_dir=None,
                            progress=False, background="black", overwrite=True)
    assert again.summary["resumed_items"] == 0


def test_output_formats_and_summary_fields(tiny_clip_dir: Path, many_images: Path, tmp_path: Path) -> None:
    import pandas as pd

    run = gencritic.score(many_images, out=tmp_path / "o", model=str(tiny_clip_dir), cache_dir=None,
                          progress=False, formats=["parquet", "jsonl"])
    frame = pd.read_parquet(tmp_path / "o" / "results.parquet")
    csv = pd.read_csv(tmp_path / "o" / "results.csv")
    assert list(frame.columns) == list(csv.columns) == run.columns
    assert {"clip_score", "clip_score_x100", "success", "error", "model", "settings_id"} <= set(csv.columns)
    assert len(pd.read_json(tmp_path / "o" / "results.jsonl", lines=True)) == N_IMAGES
    s = json.loads(_read(tmp_path / "o" / "summary.json"))
    for key in ("mean", "mean_x100", "std", "count", "successes", "success_rate", "model", "settings", "versions",
                "wall_time_s"):
        assert key in s
    assert s["mean_x100"] == pytest.approx(100 * s["mean"])
    assert s["mean"] == pytest.approx(csv["clip_score"].mean(), abs=1e-9)
    assert s["success_rate"] == 1.0 and s["versions"]["torch"]


def test_long_prompt_is_truncated_with_a_warning(tiny_clip_dir: Path, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    make_image(tmp_path / "a.png")
    long_prompt = " ".join(f"word{i}" for i in range(120))
    with caplog.at_level("WARNING", logger="gencritic"):
        run = gencritic.score(tmp_path / "a.png", prompt=long_prompt, model=str(tiny_clip_dir), cache_dir=None,
                              progress=False)
    cut = run.rows[0]["prompt_tokens_cut"]
    assert cut > 0 and run.rows[0]["success"]
    assert any(f"{cut} tokens cut" in rec.message for rec in caplog.records)


def test_cli_contract(tiny_clip_dir: Path, many_images: Path, tmp_path: Path) -> None:
    version = _cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("gencritic ")
    for command in ("score", "metrics"):
        helped = _cli(command, "--help")
        assert helped.returncode == 0 and "Usage" in helped.stdout
    ok = _cli("score", str(many_images), "--out", str(tmp_path / "o"), "--model", str(tiny_clip_dir), "--no-cache",
              "--quiet", "--metrics", "clip,clip_torchmetrics")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o" / "results.csv").exists() and (tmp_path / "o" / "summary.json").exists()
    bad_metric = _cli("score", str(many_images), "--out", str(tmp_path / "x"), "--model", str(tiny_clip_dir),
                      "--metrics", "clip,nonsense")
    assert bad_metric.returncode == 2
    lines = [ln for ln in bad_metric.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unknown metric 'nonsense'" in lines[0] and "clip" in lines[0]
    offline = _cli("score", str(many_images), "--out", str(tmp_path / "y"), "--model", "nobody/nothing-here",
                   env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert offline.returncode == 2
    assert [ln for ln in offline.stderr.splitlines() if ln.strip()][-1].startswith("gencritic: error: cannot load model")
    assert not (tmp_path / "y" / "results.csv").exists()


def test_a_crashing_metric_or_loader_fails_items_not_the_run(tiny_clip_dir: Path, many_images: Path,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gencritic import prepare
    from gencritic.metrics.alignment import ClipScoreHessel

    def boom(self, batch):  # type: ignore[no-untyped-def]
        raise RuntimeError("kaboom")

    monkeypatch.setattr(ClipScoreHessel, "compute", boom)
    run = gencritic.score(many_images, model=str(tiny_clip_dir), cache_dir=None, progress=False,
                          metrics="clip,clipscore_hessel")
    assert all(not r["success"] and "clipscore_hessel failed: RuntimeError: kaboom" in r["error"] for r in run.rows)
    assert all(isinstance(r["clip_score"], float) and r["clip_score"] == r["clip_score"] for r in run.rows)

    real = prepare.prepare_item

    def flaky(item, *a, **k):  # type: ignore[no-untyped-def]
        if item.item_id == "im03.png":
            raise OSError("disk on fire")
        return real(item, *a, **k)

    monkeypatch.setattr("gencritic.scoring.run.prepare_item", flaky)
    run = gencritic.score(many_images, model=str(tiny_clip_dir), cache_dir=None, progress=False)
    bad = [r for r in run.rows if not r["success"]]
    assert [r["item_id"] for r in bad] == ["im03.png"] and bad[0]["error"] == "OSError: disk on fire"
    assert run.summary["successes"] == N_IMAGES - 1


def test_workers_auto_never_run_beside_an_encoder_that_uses_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from gencritic.scoring.schedule import Prefetch, resolve_prefetch

    with pytest.raises(InputError, match="--workers"):
        resolve_prefetch(-1, "cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    for cores, auto, three in ((2, Prefetch(2, False), Prefetch(3, False)), (3, Prefetch(1, True), Prefetch(3, True)),
                               (16, Prefetch(2, True), Prefetch(3, True))):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert resolve_prefetch(None, "cpu") == auto
        assert resolve_prefetch(3, "cpu") == three
        assert resolve_prefetch(0, "cpu").workers == 0
    # beside a GPU: one preparing thread per mesh-loader process, at least two, all overlapping
    monkeypatch.setattr("gencritic.scoring.schedule.resolve_device", lambda name: torch.device("cuda"))
    for processes, threads in (("0", 2), ("4", 4)):
        monkeypatch.setenv("GENCRITIC_LOAD_PROCESSES", processes)
        assert resolve_prefetch(None, "cuda") == Prefetch(threads, True)
        assert resolve_prefetch(1, "cuda") == Prefetch(1, True)


@pytest.mark.parametrize("workers,overlap", [(0, False), (2, False), (3, True)], ids=["inline", "bursts", "overlap"])
def test_prefetch_keeps_item_order_and_bursts_never_run_while_the_scorer_works(workers: int, overlap: bool) -> None:
    import random
    import threading

    from gencritic.items import Item
    from gencritic.prepare import PreparedItem
    from gencritic.scoring.schedule import Prefetch, Prefetcher

    items = [Item(item_id=f"i{k}", kind="image", path=Path(f"i{k}.png")) for k in range(23)]
    scorer_busy = threading.Event()
    overlapped = []
    rng = random.Random(0)
    delays = [rng.uniform(0, 0.004) for _ in items]

    def prepare(item: Item) -> PreparedItem:
        busy_at_start = scorer_busy.is_set()
        time.sleep(delays[int(item.item_id[1:])])
        if busy_at_start or scorer_busy.is_set():
            overlapped.append(item.item_id)
        return PreparedItem(item)

    got = []
    for prepared in Prefetcher(items, prepare, Prefetch(workers, overlap), window=8):
        got.append(prepared.item.item_id)
        scorer_busy.set()  # the scorer "encodes" between pulls
        time.sleep(0.002)
        scorer_busy.clear()
    assert got == [i.item_id for i in items]
    if not overlap:
        assert overlapped == []  # inline and bursts: nothing is prepared while the scorer works
    else:
        assert overlapped  # the overlapping mode does prepare ahead (it is what it is for)
