"""Human-rated dataset adapters: the real AGIQA-3K ratings file, an AIGCIQA2023 layout built
here, generic MOS tables and preference pairs, and the errors users see."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from gencritic.datasets.human import (
    detect_format,
    load_human_dataset,
    read_agiqa3k_rows,
)
from gencritic.errors import InputError
from tests.conftest import make_image, shared_data


def _write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.shared_data
def test_agiqa3k_real_ratings_file_parses_every_row() -> None:
    path = shared_data("agiqa-3k") / "data.csv"
    rows = read_agiqa3k_rows(path)
    assert len(rows) == 2982
    assert rows[0]["name"] == "AttnGAN_normal_000.jpg" and rows[0]["prompt"] == "statue of a man"
    quality = np.array([r["mos_quality"] for r in rows])
    align = np.array([r["mos_align"] for r in rows])
    assert np.isfinite(quality).all() and np.isfinite(align).all()
    assert 0 <= quality.min() < quality.max() <= 5 and 0 <= align.min() < align.max() <= 5
    # 300 prompts shared by many generators: the content groups splits rely on
    assert 250 <= len({r["prompt"] for r in rows}) < 2982


@pytest.mark.shared_data
def test_agiqa3k_without_images_says_so(tmp_path: Path) -> None:
    src = shared_data("agiqa-3k") / "data.csv"
    (tmp_path / "data.csv").symlink_to(src)
    with pytest.raises(InputError, match="none of the 2982 images"):
        load_human_dataset(tmp_path)


@pytest.mark.shared_data
def test_agiqa3k_keeps_only_present_images(tmp_path: Path) -> None:
    src = shared_data("agiqa-3k") / "data.csv"
    (tmp_path / "data.csv").symlink_to(src)
    names = [r["name"] for r in read_agiqa3k_rows(src)[:5]]
    for k, name in enumerate(names):
        make_image(tmp_path / "images" / name, (40 * k, 100, 200))
    ds = load_human_dataset(tmp_path)
    assert ds.format == "agiqa3k" and ds.total_rows == 2982
    assert [i.item_id for i in ds.items] == names
    assert len(ds.missing) == 2977
    assert ds.ratings == ["mos_quality", "mos_align"]
    assert isinstance(ds.items[0].columns["mos_quality"], float)
    assert len(ds.sha256) == 64


def test_agiqa3k_missing_columns_named(tmp_path: Path) -> None:
    _write_csv(tmp_path / "data.csv", [{"name": "a.jpg", "prompt": "x", "mos_quality": 1.0}])
    with pytest.raises(InputError, match=r"mos_align.*found columns: name, prompt, mos_quality"):
        load_human_dataset(tmp_path, "agiqa3k")


def _aigciqa_layout(root: Path, n_images: int = 2400, present: int = 12) -> Path:
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    (root / "DATA" / "MOS").mkdir(parents=True)
    (root / "DATA" / "STD").mkdir(parents=True)
    for k in (1, 2, 3):
        savemat(root / "DATA" / "MOS" / f"mosz{k}.mat", {"MOSz": rng.uniform(20, 80, (n_images, 1))})
        savemat(root / "DATA" / "STD" / f"SD{k}.mat", {"SD": rng.uniform(5, 15, (n_images, 1))})
    _write_csv(root / "DATA" / "AIGCIQA2023_Prompts.csv",
               [{"id": i, "prompt": f"prompt number {i}", "style": "s"} for i in range(100)])
    for i in range(present):
        make_image(root / "Image" / "allimg" / f"{i * 37}.png", (i * 20, 50, 90))
    return root


def test_aigciqa2023_layout(tmp_path: Path) -> None:
    root = _aigciqa_layout(tmp_path / "AIGCIQA2023")
    assert detect_format(root) == "aigciqa2023"
    ds = load_human_dataset(root)
    assert ds.total_rows == 2400 and len(ds.items) == 12 and len(ds.missing) == 2388
    assert ds.ratings == ["mos_quality", "mos_authenticity", "mos_correspondence"]
    item = next(i for i in ds.items if i.item_id == "407.png")  # generator 1, prompt (407 % 400) // 4 = 1
    assert item.prompt == "prompt number 1"
    assert item.columns["generator_index"] == 1 and item.columns["prompt_index"] == 1
    from scipy.io import loadmat

    mos = loadmat(root / "DATA" / "MOS" / "mosz2.mat")["MOSz"].ravel()
    assert item.columns["mos_authenticity"] == pytest.approx(mos[407])
    assert "std_quality" in item.columns
    # images of one prompt (0..3, 400..403, ...) share one content group
    assert ds.groups[[i.item_id for i in ds.items].index("407.png")] == "prompt001"


def test_aigciqa2023_prompts_from_xlsx(tmp_path: Path) -> None:
    """The dataset ships its prompt table as Excel; it is read as it comes, no conversion."""
    pytest.importorskip("openpyxl")
    import pandas as pd

    root = _aigciqa_layout(tmp_path / "A")
    (root / "DATA" / "AIGCIQA2023_Prompts.csv").unlink()
    pd.DataFrame({"id": range(100), "prompt": [f"excel prompt {i}" for i in range(100)]}).to_excel(
        root / "DATA" / "AIGCIQA2023_Prompts.xlsx", index=False)
    ds = load_human_dataset(root, "aigciqa2023")
    item = next(i for i in ds.items if i.item_id == "407.png")
    assert item.prompt == "excel prompt 1"


def test_aigciqa2023_missing_mat_file(tmp_path: Path) -> None:
    root = _aigciqa_layout(tmp_path / "A")
    (root / "DATA" / "MOS" / "mosz3.mat").unlink()
    with pytest.raises(InputError, match=r"mosz3\.mat"):
        load_human_dataset(root, "aigciqa2023")


def test_mos_csv_default_and_named_ratings(tmp_path: Path) -> None:
    rows = []
    for k in range(6):
        make_image(tmp_path / "img" / f"{k}.png", (k * 40, 20, 20))
        rows.append({"image": f"img/{k}.png", "prompt": f"p{k % 2}", "mos": k / 2, "MOS_align": 5 - k,
                     "appeal": k * 1.5, "note": "text"})
    rows.append({"image": "img/absent.png", "prompt": "p0", "mos": 1.0, "MOS_align": 2, "appeal": 1, "note": ""})
    path = _write_csv(tmp_path / "ratings.csv", rows)
    ds = load_human_dataset(path)
    assert ds.format == "mos-csv" and ds.ratings == ["mos", "MOS_align"]
    assert len(ds.items) == 6 and ds.missing == [str(tmp_path / "img" / "absent.png")]
    assert ds.items[2].columns["mos"] == 1.0 and ds.items[2].prompt == "p0"
    assert load_human_dataset(path, ratings=["appeal"]).ratings == ["appeal"]
    with pytest.raises(InputError, match="not numeric"):
        load_human_dataset(path, ratings=["note"])
    with pytest.raises(InputError, match="found columns: image, prompt"):
        load_human_dataset(path, ratings=["quality"])


def test_mos_csv_without_rating_columns_lists_columns(tmp_path: Path) -> None:
    make_image(tmp_path / "a.png")
    path = _write_csv(tmp_path / "r.csv", [{"image": "a.png", "score": 3}])
    with pytest.raises(InputError, match=r"found columns: image, score; name yours with --ratings"):
        load_human_dataset(path)


def test_pairs(tmp_path: Path) -> None:
    for k in range(4):
        make_image(tmp_path / f"{k}.png", (60 * k, 10, 10))
    path = _write_csv(tmp_path / "pairs.csv", [
        {"image_a": "0.png", "image_b": "1.png", "prompt": "a cat", "choice": "a"},
        {"image_a": "2.png", "image_b": "1.png", "prompt": "a cat", "choice": "B"},
        {"image_a": "2.png", "image_b": "3.png", "prompt": "a dog", "choice": "tie"},
        {"image_a": "0.png", "image_b": "9.png", "prompt": "a dog", "choice": "1"},
    ])
    ds = load_human_dataset(path)
    assert ds.format == "pairs"
    assert [p.preference for p in ds.pairs] == [1.0, 0.0, 0.5]  # the pair with an absent image is left out
    assert len(ds.missing) == 1 and ds.total_rows == 4
    assert ds.pairs[0].image_a == "0.png|a cat"
    bad = _write_csv(tmp_path / "bad.csv", [{"image_a": "0.png", "image_b": "1.png", "choice": "left"}])
    with pytest.raises(InputError, match="use a, b or tie"):
        load_human_dataset(bad)


def test_unknown_format_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown dataset format"):
        load_human_dataset(tmp_path, "koniq")
    with pytest.raises(InputError, match="dataset not found"):
        load_human_dataset(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="not a known dataset folder"):
        load_human_dataset(tmp_path)


def test_ratings_parse_blank_as_missing(tmp_path: Path) -> None:
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "b.png", (1, 2, 3))
    path = _write_csv(tmp_path / "r.csv", [{"image": "a.png", "mos": ""}, {"image": "b.png", "mos": "2.5"}])
    ds = load_human_dataset(path)
    assert math.isnan(ds.items[0].columns["mos"]) and ds.items[1].columns["mos"] == 2.5


def test_mos_csv_group_column_defines_content_groups(tmp_path: Path) -> None:
    rows = []
    for k in range(4):
        make_image(tmp_path / f"{k}.png", (50 * k, 9, 9))
        rows.append({"image": f"{k}.png", "prompt": f"variant {k}", "group": f"scene{k // 2}", "mos": k})
    ds = load_human_dataset(_write_csv(tmp_path / "r.csv", rows))
    assert ds.groups == ["scene0", "scene0", "scene1", "scene1"]
