"""CSV manifests are read strictly: a file that does not parse cleanly is refused at run level
(exit 2, one line with the line number and what is wrong), never read as a different table;
an empty image cell is one failed row that says so."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from gencritic.io.manifest import collect_items
from tests.conftest import make_image

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gencritic.cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def _images(folder: Path) -> None:
    for name, color in (("a.png", (200, 30, 30)), ("b.png", (30, 30, 200)), ("c.png", (30, 200, 30)),
                        ("d.png", (200, 200, 30))):
        make_image(folder / name, color)


REFUSED = {
    # an unbalanced quote running to the end: the csv module's default read this as 2 rows, exit 0
    "quote_never_closed": (b'image,prompt\na.png,a red square\nb.png,"a blue square\nc.png,a green square\n'
                           b"d.png,a yellow square\n",
                           ["line 3", "never closed", '""']),
    # an unbalanced quote that meets a later quoted cell: 1 row with a 3-line prompt before
    "quote_closed_late": (b'image,prompt\na.png,"a red square\nb.png,blue\nc.png,"green, bright"\n',
                          ["line 2", "closes on line 4", '""']),
    # a comma in an unquoted prompt: the cell after it was silently cut
    "extra_cells": (b"image,prompt\na.png,a red square\nb.png,a blue, bright square\n",
                    ["line 3", "3 cells but the header names 2 (image, prompt)", "quote cells"]),
    "not_utf8": (b"image,prompt\na.png,a red square\nb.png,caf\xe9 au lait\n", ["line 3", "not UTF-8", "0xe9"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_malformed_csv_is_refused_with_the_line(case: str, tmp_path: Path) -> None:
    content, fragments = REFUSED[case]
    _images(tmp_path)
    (tmp_path / "m.csv").write_bytes(content)
    res = _cli("score", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"), "--metrics", "flicker", "-q")
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"gencritic: error: manifest {tmp_path / 'm.csv'}, "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "out" / "results.csv").exists()


def test_well_formed_csv_reads_as_written(tmp_path: Path) -> None:
    """What strictness must not refuse: quoted commas, doubled quotes, multi-line prompts whose
    quotes balance, extra columns the header names, trailing empty cells, a BOM, TSV."""
    _images(tmp_path)
    (tmp_path / "m.csv").write_bytes(
        '\ufeffimage,prompt,seed\n'
        'a.png,"red, bright",1\n'
        'b.png,"a ""blue"" square",2\n'
        'c.png,"two\nlines",3,\n'
        'd.png,short\n'.encode())
    items = collect_items(tmp_path / "m.csv")
    assert [(i.item_id, i.prompt, i.columns["seed"]) for i in items] == [
        ("a.png", "red, bright", "1"), ("b.png", 'a "blue" square', "2"), ("c.png", "two\nlines", "3"),
        ("d.png", "short", "")]
    (tmp_path / "m.tsv").write_text("image\tprompt\na.png\tred, bright\n")
    assert [i.prompt for i in collect_items(tmp_path / "m.tsv")] == ["red, bright"]


def test_empty_image_cell_is_a_failed_row(tiny_clip_dir: Path, tmp_path: Path) -> None:
    _images(tmp_path)
    (tmp_path / "m.csv").write_text("image,prompt\na.png,a red square\n,a lost prompt\nb.png,a blue square\n")
    res = _cli("score", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"), "--model", str(tiny_clip_dir),
               "--no-cache", "-q", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "out" / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["success"] for r in rows] == ["true", "false", "true"]
    assert rows[1]["prompt"] == "a lost prompt"
    assert rows[1]["error"] == "empty image cell (column 'image', line 3 of m.csv)"
    assert "folder" not in rows[1]["error"]


def test_empty_image_cell_in_jsonl_and_parquet(tmp_path: Path) -> None:
    import pandas as pd

    import gencritic

    _images(tmp_path)
    (tmp_path / "m.jsonl").write_text('{"image": "a.png", "prompt": "x"}\n\n{"image": "", "prompt": "y"}\n')
    pd.DataFrame({"image": ["a.png", None], "prompt": ["x", "y"]}).to_parquet(tmp_path / "m.parquet")
    for name, where in (("m.jsonl", "line 3"), ("m.parquet", "row 2")):
        run = gencritic.score(tmp_path / name, metrics=["flicker"], cache_dir=None, progress=False, device="cpu")
        assert run.rows[1]["error"] == f"empty image cell (column 'image', {where} of {name})"
        assert "frame sequence" in run.rows[0]["error"]  # a.png was read as an image (flicker needs frames)
