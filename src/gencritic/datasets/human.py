"""Human-rated datasets turned into items that carry their ratings.

Four layouts, one result type (:class:`HumanDataset`):

* ``agiqa3k`` — AGIQA-3K: ``data.csv`` with ``name, prompt, ..., mos_quality, std_quality,
  mos_align, std_align``; images by ``name`` beside it or in ``images/`` (or ``image/``).
* ``aigciqa2023`` — AIGCIQA2023: ``Image/allimg/<i>.png`` for i in 0..2399 (6 generators ×
  100 prompts × 4 images, prompt index ``(i % 400) // 4``), MOS in ``DATA/MOS/mosz1.mat``
  (quality), ``mosz2.mat`` (authenticity), ``mosz3.mat`` (correspondence), key ``MOSz``;
  rater std in ``DATA/STD/SD{1,2,3}.mat`` (key ``SD``); prompts in a CSV/XLSX whose name
  contains "prompt" (a ``prompt`` column, one row per prompt index).
* ``mos-csv`` — any CSV/TSV/JSONL/Parquet with an ``image`` column, optional ``prompt``, and
  rating columns: every numeric column whose name starts with ``mos`` unless named. An
  optional ``group`` (or ``content_group``, ``prompt_id``) column overrides the prompt as the
  content group used by splits.
* ``pairs`` — pairwise preferences: ``image_a, image_b``, optional ``prompt``, and ``choice``
  (``a``/``b``/``tie``, or 0/1 as the index of the preferred image) or ``label_a`` (1 = A
  preferred, 0 = B, 0.5 = tie).

Rows whose image is absent are not faked and not silently dropped: they are listed in
``missing`` and the count is reported. Each dataset has a content ``group`` per item (its
prompt) so splits can keep prompts on one side, and a sha256 of its rating files so reports
can say exactly which data they came from.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gencritic.errors import InputError
from gencritic.io.manifest import MEDIA_COLUMNS, PROMPT_COLUMNS, read_table
from gencritic.items import Item

log = logging.getLogger("gencritic")

FORMATS = ("agiqa3k", "aigciqa2023", "mos-csv", "pairs")
AGIQA3K_COLUMNS = ("name", "prompt", "mos_quality", "mos_align")
AIGCIQA2023_DIMENSIONS = (("mos_quality", "mosz1.mat", "SD1.mat"), ("mos_authenticity", "mosz2.mat", "SD2.mat"),
                          ("mos_correspondence", "mosz3.mat", "SD3.mat"))
PAIR_A = ("image_a", "image_0", "image1", "left")
PAIR_B = ("image_b", "image_1", "image2", "right")
CHOICE_COLUMNS = ("choice", "human_choice", "preferred", "winner")
GROUP_COLUMNS = ("group", "content_group", "prompt_id")


@dataclass(frozen=True)
class PreferencePair:
    """One human judgement between two images for one prompt; ``preference`` = P(A preferred)."""

    pair_id: str
    image_a: str  # item id of A
    image_b: str  # item id of B
    preference: float  # 1.0 A preferred, 0.0 B preferred, 0.5 tie
    prompt: str | None = None


@dataclass
class HumanDataset:
    """Items with ratings in ``Item.columns``, plus what a report must say about the data."""

    format: str
    source: Path
    items: list[Item]
    ratings: list[str]
    total_rows: int
    sha256: str
    missing: list[str] = field(default_factory=list)
    pairs: list[PreferencePair] = field(default_factory=list)

    @property
    def groups(self) -> list[str]:
        """Content group of each item: images sharing a group (prompt) never straddle splits."""
        return [str(i.columns.get("_group", i.prompt or i.item_id)) for i in self.items]

    def describe(self) -> dict[str, Any]:
        return {"format": self.format, "source": str(self.source), "sha256": self.sha256,
                "rows": self.total_rows, "items_present": len(self.items), "items_missing": len(self.missing),
                "ratings": list(self.ratings), "pairs": len(self.pairs) or None}


def files_sha256(paths: Sequence[Path]) -> str:
    """One hash over the rating files (names and bytes), stable across machines."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda q: q.name):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _float(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if not text or text.lower() in ("nan", "na", "n/a", "none"):
        return math.nan
    return float(text)


def _is_numeric_column(rows: Sequence[dict[str, Any]], col: str) -> bool:
    try:
        values = [_float(r.get(col)) for r in rows]
    except ValueError:
        return False
    return any(not math.isnan(v) for v in values)


def _require(columns: Sequence[str], needed: Sequence[str], source: Path, what: str) -> None:
    absent = [c for c in needed if c not in columns]
    if absent:
        raise InputError(f"{source}: {what} needs column(s) {', '.join(absent)}; found columns: {', '.join(columns)}")


def _finish(fmt: str, source: Path, candidates: list[Item], total: int, sha: str, ratings: list[str],
            pairs: list[PreferencePair] | None = None) -> HumanDataset:
    found = [isinstance(i.path, Path) and i.path.exists() for i in candidates]  # rating sets are local
    present = [i for i, ok in zip(candidates, found, strict=True) if ok]
    missing = [str(i.path) for i, ok in zip(candidates, found, strict=True) if not ok]
    if not present:
        example = missing[0] if missing else "?"
        raise InputError(f"none of the {len(candidates)} images listed in {source} were found (e.g. {example}); "
                         f"put the images where the ratings file says, or fix the image paths")
    if missing:
        log.warning("%s: %d of %d images are missing (e.g. %s); validating on the %d present",
                    source, len(missing), len(candidates), missing[0], len(present))
    ids = {i.item_id for i in present}
    kept_pairs = [p for p in pairs or [] if p.image_a in ids and p.image_b in ids]
    return HumanDataset(format=fmt, source=source, items=present, ratings=ratings, total_rows=total,
                        sha256=sha, missing=missing, pairs=kept_pairs)


# ---------------------------------------------------------------------------------------------
# AGIQA-3K


def read_agiqa3k_rows(csv_path: Path) -> list[dict[str, Any]]:
    """All rows of AGIQA-3K's ``data.csv`` with ratings as floats (checked columns)."""
    rows = read_table(csv_path)
    if not rows:
        raise InputError(f"{csv_path} has no rows")
    _require(list(rows[0]), AGIQA3K_COLUMNS, csv_path, "AGIQA-3K data.csv")
    out = []
    for k, row in enumerate(rows):
        rec: dict[str, Any] = dict(row)
        for col in ("mos_quality", "std_quality", "mos_align", "std_align"):
            if col in rec:
                try:
                    rec[col] = _float(rec[col])
                except ValueError:
                    raise InputError(f"{csv_path} row {k + 2}: {col}={row[col]!r} is not a number") from None
        out.append(rec)
    return out


def load_agiqa3k(source: Path, image_dir: Path | None = None) -> HumanDataset:
    """AGIQA-3K from its folder (or its ``data.csv``); images looked up by ``name``."""
    csv_path = source / "data.csv" if source.is_dir() else source
    if not csv_path.exists():
        raise InputError(f"AGIQA-3K ratings not found: {csv_path} (expected data.csv in the dataset folder)")
    root = csv_path.parent
    rows = read_agiqa3k_rows(csv_path)
    folders = [image_dir] if image_dir else [root, root / "images", root / "image", root / "AGIQA-3K", root / "file"]
    folder = next((f for f in folders if f is not None and f.is_dir()
                   and any((f / str(r["name"])).exists() for r in rows[:50] + rows[-50:])), folders[0] or root)
    items = [Item(item_id=str(r["name"]), kind="image", path=folder / str(r["name"]), prompt=str(r["prompt"]),
                  columns={"image": str(r["name"]), **{k: v for k, v in r.items() if k not in ("name",)}})
             for r in rows]
    return _finish("agiqa3k", source, items, len(rows), files_sha256([csv_path]), ["mos_quality", "mos_align"])


# ---------------------------------------------------------------------------------------------
# AIGCIQA2023


def _read_mat_vector(path: Path, key: str) -> list[float]:
    from scipy.io import loadmat

    if not path.exists():
        raise InputError(f"AIGCIQA2023 file missing: {path} (expected DATA/MOS/mosz{{1,2,3}}.mat and DATA/STD/SD{{1,2,3}}.mat)")
    data = loadmat(str(path))
    if key not in data:
        found = ", ".join(k for k in data if not k.startswith("__"))
        raise InputError(f"{path} has no variable {key!r}; found: {found}")
    return [float(v) for v in data[key].ravel()]


def _aigciqa_prompts(root: Path) -> tuple[list[str] | None, list[Path]]:
    candidates = sorted(p for d in (root, root / "DATA", root / "DATA" / "MOS") if d.is_dir()
                        for p in d.iterdir() if "prompt" in p.name.lower() and p.suffix.lower() in (".csv", ".xlsx", ".tsv"))
    if not candidates:
        return None, []
    path = candidates[0]
    if path.suffix.lower() == ".xlsx":
        try:
            import pandas as pd

            rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()}
                                          for r in pd.read_excel(path).to_dict(orient="records")]
        except ImportError:
            raise InputError(f"{path} is an Excel file: `pip install 'gencritic[validate]'` (openpyxl) "
                             f"or save it as CSV beside it") from None
    else:
        rows = read_table(path)
    if not rows:
        raise InputError(f"{path} has no rows")
    cols = list(rows[0])
    col = next((c for c in cols if str(c).strip().lower() in ("prompt", "prompts", "text")), None)
    if col is None:
        raise InputError(f"{path}: needs a 'prompt' column; found columns: {', '.join(map(str, cols))}")
    return [str(r[col]) for r in rows], [path]


def load_aigciqa2023(root: Path) -> HumanDataset:
    """AIGCIQA2023 from its folder (layout in the module docstring)."""
    if not root.is_dir():
        raise InputError(f"AIGCIQA2023 expects its dataset folder (with Image/ and DATA/), got {root}")
    mos = {name: _read_mat_vector(root / "DATA" / "MOS" / mat, "MOSz") for name, mat, _ in AIGCIQA2023_DIMENSIONS}
    std: dict[str, list[float]] = {}
    for name, _, sd in AIGCIQA2023_DIMENSIONS:
        path = root / "DATA" / "STD" / sd
        if path.exists():
            std[name.replace("mos_", "std_")] = _read_mat_vector(path, "SD")
    n = len(mos["mos_quality"])
    if any(len(v) != n for v in [*mos.values(), *std.values()]):
        raise InputError(f"{root}: the MOS/STD .mat files hold different numbers of images")
    prompts, prompt_files = _aigciqa_prompts(root)
    if prompts is None:
        log.warning("%s: no prompt file (a CSV/XLSX with 'prompt' in its name): text-image metrics will fail", root)
    image_dir = root / "Image" / "allimg"
    items = []
    for i in range(n):
        group = (i % 400) // 4
        prompt = prompts[group] if prompts is not None and group < len(prompts) else None
        cols: dict[str, Any] = {"image": f"{i}.png", "generator_index": i // 400, "prompt_index": group,
                                "_group": f"prompt{group:03d}"}
        cols.update({k: v[i] for k, v in mos.items()})
        cols.update({k: v[i] for k, v in std.items()})
        items.append(Item(item_id=f"{i}.png", kind="image", path=image_dir / f"{i}.png", prompt=prompt, columns=cols))
    mats = [root / "DATA" / "MOS" / m for _, m, _ in AIGCIQA2023_DIMENSIONS]
    mats += [root / "DATA" / "STD" / s for _, _, s in AIGCIQA2023_DIMENSIONS if (root / "DATA" / "STD" / s).exists()]
    return _finish("aigciqa2023", root, items, n, files_sha256(mats + prompt_files), [d for d, _, _ in AIGCIQA2023_DIMENSIONS])


# ---------------------------------------------------------------------------------------------
# Generic MOS table


def _pick(columns: Sequence[str], names: Sequence[str]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def rating_columns(rows: Sequence[dict[str, Any]], asked: Sequence[str] | None, source: Path) -> list[str]:
    """``asked`` (checked to exist and be numeric) or every numeric column starting with ``mos``."""
    columns = list(rows[0])
    if asked:
        _require(columns, asked, source, "--ratings")
        bad = [c for c in asked if not _is_numeric_column(rows, c)]
        if bad:
            raise InputError(f"{source}: rating column(s) {', '.join(bad)} are not numeric")
        return list(asked)
    found = [c for c in columns if c.lower().startswith("mos") and _is_numeric_column(rows, c)]
    if not found:
        raise InputError(f"{source}: no rating columns (numeric, name starting with 'mos'); found columns: "
                         f"{', '.join(columns)}; name yours with --ratings col1,col2")
    return found


def load_mos_csv(path: Path, ratings: Sequence[str] | None = None) -> HumanDataset:
    """A table of images with one or more rating columns (see module docstring)."""
    rows = read_table(path)
    if not rows:
        raise InputError(f"{path} has no rows")
    columns = list(rows[0])
    media = _pick(columns, MEDIA_COLUMNS)
    if media is None:
        raise InputError(f"{path} needs an 'image' column; found columns: {', '.join(columns)}")
    prompt_col = _pick(columns, PROMPT_COLUMNS)
    group_col = _pick(columns, GROUP_COLUMNS)
    rating_cols = rating_columns(rows, ratings, path)
    items = []
    seen: dict[str, int] = {}
    for row in rows:
        raw = str(row[media])
        k = seen.get(raw, 0)
        seen[raw] = k + 1
        img = Path(raw)
        img = img if img.is_absolute() else path.parent / img
        cols: dict[str, Any] = dict(row)
        for c in rating_cols:
            cols[c] = _float(row.get(c))
        if group_col is not None and str(row[group_col]).strip():
            cols["_group"] = str(row[group_col])
        items.append(Item(item_id=raw if k == 0 else f"{raw}#{k}", kind="image", path=img,
                          prompt=None if prompt_col is None else str(row[prompt_col]), columns=cols))
    return _finish("mos-csv", path, items, len(rows), files_sha256([path]), rating_cols)


# ---------------------------------------------------------------------------------------------
# Pairwise preferences


def _preference(row: dict[str, Any], choice_col: str | None, label_col: str | None, where: str) -> float:
    if label_col is not None:
        try:
            value = _float(row[label_col])
        except ValueError:
            value = math.nan
        if value not in (0.0, 0.5, 1.0):
            raise InputError(f"{where}: {label_col}={row[label_col]!r}; use 1 (A preferred), 0 (B) or 0.5 (tie)")
        return value
    assert choice_col is not None
    text = str(row[choice_col]).strip().lower()
    mapping = {"a": 1.0, "0": 1.0, "image_a": 1.0, "b": 0.0, "1": 0.0, "image_b": 0.0, "tie": 0.5, "0.5": 0.5}
    if text not in mapping:
        raise InputError(f"{where}: {choice_col}={row[choice_col]!r}; use a, b or tie (or 0/1, the index of the preferred image)")
    return mapping[text]


def load_pairs(path: Path) -> HumanDataset:
    """Pairwise human preferences (see module docstring); images become items once each."""
    rows = read_table(path)
    if not rows:
        raise InputError(f"{path} has no rows")
    columns = list(rows[0])
    col_a, col_b = _pick(columns, PAIR_A), _pick(columns, PAIR_B)
    choice_col = _pick(columns, CHOICE_COLUMNS)
    label_col = _pick(columns, ("label_a", "label_0"))
    if col_a is None or col_b is None or (choice_col is None and label_col is None):
        raise InputError(f"{path}: pairs need image_a, image_b and choice (or label_a) columns; "
                         f"found columns: {', '.join(columns)}")
    prompt_col = _pick(columns, PROMPT_COLUMNS)
    items: dict[str, Item] = {}
    pairs = []
    for k, row in enumerate(rows):
        prompt = None if prompt_col is None else str(row[prompt_col])
        ids = []
        for col in (col_a, col_b):
            raw = str(row[col])
            img = Path(raw) if Path(raw).is_absolute() else path.parent / raw
            item_id = raw if prompt is None else f"{raw}|{prompt}"
            ids.append(item_id)
            if item_id not in items:
                items[item_id] = Item(item_id=item_id, kind="image", path=img, prompt=prompt,
                                      columns={"image": raw, "prompt": prompt or ""})
        pairs.append(PreferencePair(pair_id=str(k), image_a=ids[0], image_b=ids[1],
                                    preference=_preference(row, choice_col, label_col, f"{path} row {k + 2}"),
                                    prompt=prompt))
    return _finish("pairs", path, list(items.values()), len(rows), files_sha256([path]), ["preference"], pairs)


# ---------------------------------------------------------------------------------------------


def detect_format(source: Path) -> str:
    """Guess the layout: AGIQA-3K folder, AIGCIQA2023 folder, pairs table or MOS table."""
    if not source.exists():
        raise InputError(f"dataset not found: {source} (give a dataset folder or a MOS CSV)")
    if source.is_dir():
        if (source / "DATA" / "MOS" / "mosz1.mat").exists():
            return "aigciqa2023"
        if (source / "data.csv").exists():
            return "agiqa3k"
        raise InputError(f"{source}: not a known dataset folder (AGIQA-3K has data.csv, AIGCIQA2023 has "
                         f"DATA/MOS/mosz1.mat); for other data give a CSV and --format mos-csv")
    if source.name == "data.csv":
        head = read_table(source)[:1]
        if head and all(c in head[0] for c in AGIQA3K_COLUMNS):
            return "agiqa3k"
    head = read_table(source)[:1]
    if head and _pick(list(head[0]), PAIR_A) and _pick(list(head[0]), PAIR_B):
        return "pairs"
    return "mos-csv"


def load_human_dataset(source: str | Path, fmt: str | None = None, ratings: Sequence[str] | None = None) -> HumanDataset:
    """Load any supported human-rated dataset; ``fmt`` None detects it. ``ratings`` restricts
    (or, for a MOS CSV, names) the rating columns."""
    path = Path(source).expanduser()
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown dataset format {fmt!r}: use {', '.join(FORMATS)}")
    if not path.exists():
        raise InputError(f"dataset not found: {path}")
    if fmt == "agiqa3k":
        ds = load_agiqa3k(path)
    elif fmt == "aigciqa2023":
        ds = load_aigciqa2023(path)
    elif fmt == "pairs":
        return load_pairs(path)
    else:
        return load_mos_csv(path, ratings)
    if ratings:
        unknown = [r for r in ratings if not ds.items or r not in ds.items[0].columns]
        if unknown:
            raise InputError(f"{path}: no rating column(s) {', '.join(unknown)} in {fmt}; "
                             f"it has: {', '.join(ds.ratings)}")
        ds.ratings = list(ratings)
    return ds
