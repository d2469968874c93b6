"""Warnings that travel with a row: what was accepted in a degraded form, named beside the numbers.

Why: a degraded render gives a plausible number. An asset drawn untextured in the default grey,
an emissive material drawn by its base colour alone, a procedural colour a ``.blend`` export
dropped: each still scores, and a log line about it is gone when the terminal closes. So every
degradation a run accepts is a *warning* on the item, carried like its error: in the journal
record (so a resumed run's rows say the same), in the ``warnings`` column of ``results.csv`` and
``views.csv``, and counted in ``summary.json``.

A warning is one short string ``"kind: text"``. The kind is a stable lowercase word (``untextured``,
``emissive``, ...) that summaries count by and that a reader can filter on; the text says what was
left out and why, starting with the file it is about (so a kit's warnings say which part). Producers
build them with :func:`warning`, which keeps the separator ``"; "`` out of a text, so a cell splits
back into the same list (:func:`split_cell`).

A new kind of degradation of a 3D asset is added in :func:`gencritic.mesh.fidelity.asset_warnings`
(from the files, so renders served from the cache carry it too); anything that prepares an item can
append to :attr:`gencritic.prepare.PreparedItem.warnings`, and the scoring run does the rest.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

SEPARATOR = "; "
_KIND = re.compile(r"^[a-z][a-z0-9-]*$")


def warning(kind: str, text: str) -> str:
    """``"kind: text"``, with the text on one line and free of the cell separator."""
    if not _KIND.match(kind):
        raise ValueError(f"warning kind {kind!r}: use a lowercase word (letters, digits, '-')")
    flat = " ".join(text.replace(";", ",").split())
    return f"{kind}: {flat}"


def kind_of(text: str) -> str:
    """The kind of a warning (the word before its first colon)."""
    head, sep, _ = text.partition(":")
    return head.strip() if sep and _KIND.match(head.strip()) else "other"


def join_cell(warnings: Iterable[str] | None) -> str:
    """The ``warnings`` cell of a row: the warnings in order, ``"; "``-separated (empty when none)."""
    return SEPARATOR.join(warnings or [])


def split_cell(cell: str | None) -> list[str]:
    """The list a ``warnings`` cell was made from."""
    return [w for w in (cell or "").split(SEPARATOR) if w]


def summarise(warning_lists: Iterable[Sequence[str] | None]) -> dict[str, Any]:
    """``{"count": N, "items": M, "by_kind": {kind: n}}`` over the items' warning lists (one per
    item, as records carry them): N warnings in all, on M items."""
    by_kind: Counter[str] = Counter()
    items = 0
    for found in warning_lists:
        found = list(found or [])
        items += bool(found)
        by_kind.update(kind_of(w) for w in found)
    return {"count": sum(by_kind.values()), "items": items, "by_kind": dict(sorted(by_kind.items()))}
