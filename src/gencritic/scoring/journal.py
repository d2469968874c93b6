"""The scoring run's results on disk: typed records in the output folder's journal, resumable.

Layout of an output folder::

    results.csv      one row per item (wide): input columns, metric columns, success, error
    views.csv        long format: item_id, view, metric column, value, model, settings_id
    summary.json     run statistics, settings, versions, wall time
    .gencritic/journal.jsonl   append-only log of finished items (the resume authority)

The durable journal itself (fsync per batch, torn lines, the settings fingerprint) is
:class:`gencritic.io.journal.Journal`, shared with ``compare3d`` and ``meshcheck``; this module
keeps :class:`~gencritic.scoring.records.ItemRecord` in it. ``results.csv`` is appended live
and rewritten from the journal (in input order) when the run ends or resumes, so two runs of
the same job give byte-identical files (:mod:`gencritic.scoring.outputs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gencritic.io.journal import Journal, read_journal
from gencritic.scoring.records import ItemRecord

__all__ = ["ResultsStore", "read_records"]


def read_records(folder: Path) -> list[ItemRecord]:
    """The records of an output folder's journal, in the order they were written."""
    return [ItemRecord.from_journal(d) for d in read_journal(folder)]


class ResultsStore:
    """Finished :class:`ItemRecord` of one output folder, guarded by a settings fingerprint."""

    def __init__(self, out_dir: Path, fingerprint: str, overwrite: bool = False) -> None:
        self.journal = Journal(out_dir, fingerprint, overwrite)
        self._records = {k: ItemRecord.from_journal(d) for k, d in self.journal.records().items()}

    @property
    def done_ids(self) -> set[str]:
        return set(self._records)

    def records(self) -> dict[str, ItemRecord]:
        return dict(self._records)

    def append(self, records: Iterable[ItemRecord]) -> None:
        """Durably record finished items (one JSON line each), then fsync."""
        records = list(records)
        self.journal.append(r.to_journal() for r in records)
        self._records.update((r.item_id, r) for r in records)

    def append_csv(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
        """Live view of a long run; the final rewrite makes it canonical."""
        self.journal.append_csv(rows, columns)
