"""`gencritic cache`: counts match what is on disk, prune and clear remove exactly what they say."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gencritic.cache import EmbeddingCache
from gencritic.cache_maintenance import STALE_TEMP_S, clear_cache, inspect_cache, prune_cache
from gencritic.cli.main import app
from gencritic.errors import InputError

pytest.importorskip("zstandard")
from gencritic.render.cache import RenderCache

DAY = 86400.0


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def _make_cache(root: Path) -> dict[str, Path]:
    """Two zstd render entries (one unused for 40 days), an old-format PNG folder, a stale and a
    fresh temporary file, and three embeddings."""
    renders = RenderCache(root / "renders")
    views = np.zeros((2, 8, 8, 4), np.uint8)
    renders.put("aa" + "0" * 62, views, {"k": 1})
    renders.put("bb" + "1" * 62, views + 7, {"k": 2})
    old = renders.path("bb" + "1" * 62)
    _age(old, 40 * DAY)
    legacy = root / "renders" / "cc" / ("cc" + "2" * 62)
    legacy.mkdir(parents=True)
    (legacy / "000.png").write_bytes(b"x" * 100)
    (legacy / "meta.json").write_text("{}")
    stale = root / "renders" / "aa" / ".tmp-dead.gcr"
    stale.write_bytes(b"y" * 50)
    _age(stale, STALE_TEMP_S + 60)
    fresh = root / "renders" / "aa" / ".tmp-writing.gcr"
    fresh.write_bytes(b"z" * 30)
    emb = EmbeddingCache.in_dir(root)
    emb.put_many([(f"img|{i}|ns", np.ones(4, np.float32)) for i in range(3)])
    emb.close()
    return {"old": old, "new": renders.path("aa" + "0" * 62), "legacy": legacy, "stale": stale, "fresh": fresh}


def test_info_counts_what_is_on_disk(tmp_path: Path) -> None:
    paths = _make_cache(tmp_path)
    report = inspect_cache(tmp_path)
    assert report.renders.count == 2
    assert report.renders.bytes == paths["old"].stat().st_size + paths["new"].stat().st_size
    assert (report.legacy_render_folders.count, report.legacy_render_folders.bytes) == (1, 102)
    assert (report.temporaries.count, report.temporaries.bytes) == (2, 80)
    assert report.embeddings.count == 3 and report.embeddings.bytes > 0


def test_prune_removes_leftovers_and_unused_renders_only(tmp_path: Path) -> None:
    paths = _make_cache(tmp_path)
    dry = prune_cache(tmp_path, unused_days=30, dry_run=True)
    assert (dry.legacy_render_folders.count, dry.temporaries.count, dry.renders.count) == (1, 1, 1)
    assert all(p.exists() for p in paths.values())  # a dry run changes nothing

    removed = prune_cache(tmp_path)  # no --unused-days: renders stay
    assert (removed.legacy_render_folders.count, removed.temporaries.count, removed.renders.count) == (1, 1, 0)
    assert not paths["legacy"].exists() and not paths["stale"].exists()
    assert paths["fresh"].exists(), "a temporary file being written right now must survive"
    assert paths["old"].exists() and paths["new"].exists()

    removed = prune_cache(tmp_path, unused_days=30)
    assert removed.renders.count == 1 and not paths["old"].exists() and paths["new"].exists()
    assert inspect_cache(tmp_path).embeddings.count == 3  # prune never touches embeddings


def test_a_cache_hit_marks_the_render_used(tmp_path: Path) -> None:
    paths = _make_cache(tmp_path)
    assert RenderCache(tmp_path / "renders").get("bb" + "1" * 62) is not None
    assert prune_cache(tmp_path, unused_days=30).renders.count == 0
    assert paths["old"].exists()


def test_clear_embeddings_while_another_connection_is_open(tmp_path: Path) -> None:
    _make_cache(tmp_path)
    running = EmbeddingCache.in_dir(tmp_path)  # a scoring job holding the file open
    removed = clear_cache(tmp_path, renders=False, embeddings=True)
    assert removed.embeddings.count == 3
    assert running.get_many(["img|0|ns"]) == {} and running.row_count() == 0
    running.put_many([("img|9|ns", np.zeros(4, np.float32))])  # the job goes on writing
    running.close()
    assert inspect_cache(tmp_path).embeddings.count == 1
    assert inspect_cache(tmp_path).renders.count == 2


def test_clear_renders_and_argument_errors(tmp_path: Path) -> None:
    paths = _make_cache(tmp_path)
    removed = clear_cache(tmp_path, renders=True, embeddings=False)
    assert (removed.renders.count, removed.legacy_render_folders.count) == (2, 1)
    assert paths["fresh"].exists() and not paths["stale"].exists()
    assert inspect_cache(tmp_path).renders.count == 0
    with pytest.raises(InputError, match="--renders, --embeddings"):
        clear_cache(tmp_path, renders=False, embeddings=False)
    with pytest.raises(InputError, match="--unused-days"):
        prune_cache(tmp_path, unused_days=-1)
    (tmp_path / "afile").write_text("")
    with pytest.raises(InputError, match="is a file"):
        inspect_cache(tmp_path / "afile")


def test_cli_info_prune_clear(tmp_path: Path) -> None:
    _make_cache(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["cache", "info", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "renders" in res.output and "gencritic cache prune" in res.output
    res = runner.invoke(app, ["cache", "prune", "--unused-days", "30", "--json", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["renders"]["count"] == 1
    res = runner.invoke(app, ["cache", "clear", "--embeddings", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0 and "removed from" in res.output
    assert inspect_cache(tmp_path).embeddings.count == 0
    res = runner.invoke(app, ["cache", "info", "--json", "--cache-dir", str(tmp_path / "absent")])
    assert res.exit_code == 0 and json.loads(res.output)["renders"]["count"] == 0


def test_vlm_answers_counted_and_cleared_beside_an_open_cache(tmp_path: Path) -> None:
    """The VLM judges' answer cache (vlm_answers.sqlite) is part of the cache folder: `cache info`
    counts it and `cache clear --vlm-answers` empties it through SQLite while a judge holds it open."""
    from gencritic.models.vlm_cache import AnswerCache

    running = AnswerCache.in_dir(tmp_path)
    running.put_many([("k1", {"answer": "Yes"}), ("k2", {"answer": "No"})])
    assert inspect_cache(tmp_path).vlm_answers.count == 2
    res = CliRunner().invoke(app, ["cache", "info", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0 and "VLM answers" in res.output
    assert clear_cache(tmp_path, renders=False, embeddings=False, vlm_answers=True, dry_run=True).vlm_answers.count == 2
    assert running.row_count() == 2  # a dry run removes nothing
    res = CliRunner().invoke(app, ["cache", "clear", "--vlm-answers", "--json", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0 and json.loads(res.output)["vlm_answers"]["count"] == 2
    assert running.get_many(["k1", "k2"]) == {} and running.row_count() == 0
    running.put_many([("k3", {"answer": "Yes"})])  # the judge goes on writing
    running.close()
    assert inspect_cache(tmp_path).vlm_answers.count == 1
