"""Registry-wide acceptance: complete, honest metadata for every metric (including ones added
later), one encode per image when metrics share a backbone, and one clear line for a bad name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

try:  # tests/ may or may not be a package in this tree
    from tests.conftest import make_image
except ImportError:  # pragma: no cover
    from conftest import make_image  # type: ignore[no-redef]
from gencritic.cache import EmbeddingCache
from gencritic.errors import ModelUnavailableError
from gencritic.items import Item
from gencritic.metrics.base import INPUT_KINDS
from gencritic.metrics.registry import all_metrics, create_metric
from gencritic.models.loader import ModelPool
from gencritic.models.preference import PICKSCORE_MODEL, PICKSCORE_PROCESSOR
from gencritic.scoring import score
from gencritic.views import RunContext

ROOT = Path(__file__).resolve().parents[1]

# Direction and range the suite asserts for the metrics whose maths it checks (other families
# assert their own; every metric gets the generic checks below).
EXPECTED = {
    "clip": ((-1.0, 1.0), True),
    "clip_torchmetrics": ((0.0, 100.0), True),
    "clipscore_hessel": ((0.0, 2.5), True),
    "ladder": ((0.0, 1.0), True),
    "longclip": ((-1.0, 1.0), True),
    "specs": ((0.0, 1.0), True),
    "clip_chunked": ((-1.0, 1.0), True),
    "pickscore": ((-100.0, 100.0), True),
    "hpsv2": ((-1.0, 1.0), True),
    "imagereward": ((-5.0, 5.0), True),
}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gencritic.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=120)


@pytest.fixture(scope="module")
def listed() -> list[dict[str, Any]]:
    """What `gencritic metrics --json` prints (in-process: the subprocess path is tested below)."""
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    result = CliRunner().invoke(app, ["metrics", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_json_lists_every_registered_metric(listed: list[dict[str, Any]]) -> None:
    names = [m["name"] for m in listed]
    assert len(names) == len(set(names))
    assert set(names) == set(all_metrics())
    assert set(EXPECTED) - {"pickscore", "hpsv2", "imagereward"} <= set(names)


def test_every_entry_has_complete_metadata(listed: list[dict[str, Any]]) -> None:
    seen_columns: dict[str, str] = {}
    for m in listed:
        where = f"metric {m['name']!r}"
        assert m["name"] == m["name"].strip().lower() and "," not in m["name"] and ":" not in m["name"], where
        assert isinstance(m["family"], str) and m["family"], where
        assert m["inputs"] and set(m["inputs"]) <= set(INPUT_KINDS), f"{where}: inputs {m['inputs']}"
        assert m["columns"] and all(isinstance(c, str) and c for c in m["columns"]), where
        for col in m["columns"]:  # two metrics writing one column would overwrite each other's numbers
            assert col not in seen_columns, f"{where}: column {col!r} also written by {seen_columns[col]!r}"
            seen_columns[col] = m["name"]
        low, high = m["range"]  # null: unbounded on that side (strict JSON has no infinity)
        assert all(v is None or isinstance(v, (int, float)) for v in (low, high)), f"{where}: range"
        assert low is None or high is None or low < high, f"{where}: range"
        assert isinstance(m["higher_is_better"], bool), where
        assert isinstance(m["description"], str) and len(m["description"].split()) >= 8, f"{where}: description"
        assert isinstance(m["reference"], str) and len(m["reference"]) >= 10, f"{where}: reference"
        assert m["default_model"] is None or isinstance(m["default_model"], str), where
        assert isinstance(m["needs_pixels"], bool) and isinstance(m["optional_weights"], bool), where


def test_direction_and_range_are_what_the_suite_asserts(listed: list[dict[str, Any]]) -> None:
    by_name = {m["name"]: m for m in listed}
    for name, ((low, high), better) in EXPECTED.items():
        if name not in by_name:
            continue
        assert tuple(by_name[name]["range"]) == (low, high), name
        assert by_name[name]["higher_is_better"] is better, name


def test_table_names_every_metric() -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    result = CliRunner().invoke(app, ["metrics"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    for name in all_metrics():
        assert name in result.stdout, name


def test_shared_backbone_encodes_each_image_once(tiny_clip_dir: Path, tmp_path: Path) -> None:
    colors = [(220, 20, 20), (20, 200, 40), (20, 40, 220)]
    items = [Item(f"i{k}", "image", make_image(tmp_path / f"{k}.png", c), prompt=f"a square number {k}")
             for k, c in enumerate(colors)]
    pool = ModelPool("cpu")
    rungs = "a faint square|a clear square|a bold square"
    run = score(items, metrics=f"clip,clip_torchmetrics,ladder:prompts={rungs},clip_chunked", model=str(tiny_clip_dir),
                cache_dir=None, pool=pool, batch_size=2, progress=False, device="cpu")
    assert all(r["success"] for r in run.rows), [r["error"] for r in run.rows]
    backbone = pool.clip(str(tiny_clip_dir))
    assert len(pool.loaded()) == 1, pool.loaded()
    assert backbone.image_encode_count == len(items)
    assert backbone.text_encode_count == len(items) + 3  # each prompt and each rung once
    for row in run.rows:
        assert row["model"] == str(tiny_clip_dir) and row["settings_id"]
        assert row["clip_torchmetrics"] == pytest.approx(100 * max(row["clip_score"], 0.0), abs=1e-9)
        assert row["clip_chunked"] == pytest.approx(row["clip_score"], abs=1e-6)
        assert 0.0 <= row["ladder_rung"] <= 1.0


def test_unknown_metric_is_one_clear_line(tmp_path: Path) -> None:
    image = make_image(tmp_path / "a.png")
    proc = _cli("score", str(image), "--out", str(tmp_path / "out"), "--metrics", "nope", "--quiet")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "unknown metric 'nope'" in lines[0]
    for name in ("clip", "ladder", "clip_chunked"):
        assert name in lines[0]
    assert not (tmp_path / "out" / "results.csv").exists()


# --- real weights, when this machine has them ----------------------------------------------------

REAL_WEIGHT_METRICS = ("longclip", "specs", "pickscore", "hpsv2", "imagereward", "vqascore")


def _hub_cached(repo: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename), str)


@pytest.mark.parametrize("name", REAL_WEIGHT_METRICS)
def test_real_weights_rank_an_obvious_case(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With real weights present (env var or Hugging Face cache), a red square must match 'a red square'
    better than 'a blue circle'. Skipped, with the reason, where the weights are absent."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if name == "pickscore" and not os.environ.get("GENCRITIC_PICKSCORE_MODEL") and not (
            _hub_cached(PICKSCORE_MODEL, "config.json") and _hub_cached(PICKSCORE_PROCESSOR, "tokenizer_config.json")):
        pytest.skip("PickScore weights not in the Hugging Face cache and GENCRITIC_PICKSCORE_MODEL unset")
    if name == "imagereward" and not os.environ.get("GENCRITIC_IMAGEREWARD_TOKENIZER") and not _hub_cached(
            "bert-base-uncased", "vocab.txt"):
        pytest.skip("bert-base-uncased tokenizer not cached (set GENCRITIC_IMAGEREWARD_TOKENIZER)")
    metric = create_metric(name)
    pool = ModelPool("cpu")
    try:
        metric.setup(RunContext(pool=pool, cache=EmbeddingCache.in_dir(None), default_model=""))
    except ModelUnavailableError as exc:
        pytest.skip(f"{name}: {exc}")
    arr = np.full((224, 224, 3), 255, dtype=np.uint8)
    arr[56:168, 56:168] = (220, 20, 20)
    Image.fromarray(arr).save(tmp_path / "red.png")
    items = [Item(p, "image", tmp_path / "red.png", prompt=p) for p in ("a red square", "a blue circle")]
    run = score(items, metrics=name, cache_dir=None, pool=pool, progress=False, device="cpu")
    col = metric.info.columns[0]
    assert run.rows[0][col] > run.rows[1][col], [r[col] for r in run.rows]
