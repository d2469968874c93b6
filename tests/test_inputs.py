"""Inputs users really have: awkward image modes are converted by documented rules, and bad
input becomes one clear line (run level) or a failed row (item level), never a crash."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gencritic
from gencritic.errors import InputError, ItemError
from gencritic.io.images import decode_image, load_image, parse_background
from gencritic.io.manifest import collect_items
from tests.conftest import make_image


def _png_bytes(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_alpha_is_composited_on_background() -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
    data = _png_bytes(Image.fromarray(rgba, "RGBA"))
    rgb, alpha = decode_image(data, "x")
    arr = np.asarray(rgb)
    assert (arr[0, 0] == [255, 0, 0]).all() and (arr[7, 7] == [255, 255, 255]).all()
    assert alpha is not None and alpha[0, 0] == 1.0 and alpha[7, 7] == 0.0
    rgb_black, _ = decode_image(data, "x", parse_background("black"))
    assert (np.asarray(rgb_black)[7, 7] == [0, 0, 0]).all()
    assert parse_background("#102030") == (16, 32, 48) and parse_background("1,2,3") == (1, 2, 3)
    with pytest.raises(ValueError):
        parse_background("mauve-ish")


def test_exif_orientation_is_honoured() -> None:
    img = Image.new("RGB", (20, 10), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 5, 10))  # red strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    rgb, _ = decode_image(_png_bytes(img, "JPEG", exif=exif.tobytes(), quality=95), "x")
    assert rgb.size == (10, 20)
    top = np.asarray(rgb)[1, 5]
    assert top[0] > 200 and top[2] < 60  # the red strip is now on top


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "LA", "I;16", "1"])
def test_modes_convert_to_rgb(mode: str) -> None:
    base = Image.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1)), "L")
    if mode == "I;16":
        arr = (np.asarray(base).astype(np.uint16) * 257)
        img = Image.fromarray(arr)  # uint16 -> a 16-bit greyscale mode
        fmt = "PNG"
    else:
        img = base.convert(mode)
        fmt = "JPEG" if mode == "CMYK" else "PNG"
    rgb, _ = decode_image(_png_bytes(img, fmt), "x")
    assert rgb.mode == "RGB" and rgb.size == (16, 16)
    if mode in ("L", "I;16", "LA"):
        assert abs(int(np.asarray(rgb)[0, -1, 0]) - 240) <= 1  # 16-bit scaled to 8-bit, not clipped


def test_unreadable_files_are_item_errors(tmp_path: Path) -> None:
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, I am not a PNG")
    good = _png_bytes(Image.new("RGB", (64, 64), (9, 9, 9)))
    (tmp_path / "trunc.png").write_bytes(good[: len(good) // 2])
    cases = {"zero.png": "empty", "text.png": "not an image", "trunc.png": "cannot decode", "nope.png": "not found"}
    for name, fragment in cases.items():
        with pytest.raises(ItemError, match=fragment):
            load_image(tmp_path / name)


def test_bad_items_become_failed_rows_and_the_run_goes_on(tiny_clip_dir: Path, tmp_path: Path) -> None:
    make_image(tmp_path / "ok.png")
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    full = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    (tmp_path / "trunc.png").write_bytes(full[: len(full) // 2])
    (tmp_path / "m.csv").write_text(
        "image,prompt\nok.png,a square\nmissing.png,a square\nzero.png,a square\ntext.png,a square\n"
        "trunc.png,a square\nok.png,\n"
    )
    run = gencritic.score(tmp_path / "m.csv", out=tmp_path / "out", model=str(tiny_clip_dir), cache_dir=None,
                          progress=False)
    by_id = {r["item_id"]: r for r in run.rows}
    assert by_id["ok.png"]["success"] is True
    assert "not found" in by_id["missing.png"]["error"]
    assert "empty" in by_id["zero.png"]["error"]
    assert "not an image" in by_id["text.png"]["error"]
    assert "cannot decode" in by_id["trunc.png"]["error"]
    assert "empty prompt" in by_id["ok.png#1"]["error"] and by_id["ok.png#1"]["success"] is False
    assert run.summary["successes"] == 1 and run.summary["count"] == 6
    assert all("\n" not in r["error"] for r in run.rows)


def test_manifest_without_needed_columns_names_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("picture,caption\na.png,hi\n")
    with pytest.raises(InputError) as err:
        collect_items(tmp_path / "m.csv")
    assert "'image'" in str(err.value) and "picture, caption" in str(err.value)


def test_manifest_formats_carry_extra_columns(tmp_path: Path) -> None:
    import pandas as pd

    make_image(tmp_path / "a.png")
    frame = pd.DataFrame({"image": ["a.png"], "prompt": ["red"], "seed": [7], "model_name": ["sdxl"]})
    frame.to_parquet(tmp_path / "m.parquet")
    (tmp_path / "m.jsonl").write_text('{"image": "a.png", "prompt": "red", "seed": 7, "model_name": "sdxl"}\n')
    for name in ("m.parquet", "m.jsonl"):
        (item,) = collect_items(tmp_path / name)
        assert item.path == tmp_path / "a.png" and item.prompt == "red"
        assert item.columns["seed"] == 7 and item.columns["model_name"] == "sdxl"


def test_missing_input_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found"):
        collect_items(tmp_path / "nothing")
    (tmp_path / "x.docx").write_text("x")
    with pytest.raises(InputError, match="don't know how to read"):
        collect_items(tmp_path / "x.docx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images or meshes"):
        collect_items(tmp_path / "empty")


def test_folder_with_sidecar_prompts_and_view_subfolders(tmp_path: Path) -> None:
    make_image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("a red square\n")
    for i in range(3):
        make_image(tmp_path / "asset1" / f"{i:03d}.png")
    items = collect_items(tmp_path)
    kinds = {i.item_id: (i.kind, i.prompt) for i in items}
    assert kinds == {"a.png": ("image", "a red square"), "asset1": ("views", None)}
    assert collect_items(tmp_path, prompt="override")[0].prompt == "override"
