"""What a run keeps of each item: typed records, and their round trip through the journal.

Why typed: a finished item used to be a nested dict (``rec["item"]["item_id"]``) read and
written in a dozen places, where a misspelt key was a silent ``None``. :class:`ItemRecord` and
:class:`ViewRecord` name every field once; :meth:`ItemRecord.to_journal` and
:meth:`ItemRecord.from_journal` are the only places that know the journal's layout, which is
unchanged, so output folders written before still resume (records written before per-metric
models, warnings or renderers were kept read back with those absent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ViewRecord:
    """One view's values (column -> number; NaN where a metric failed on it) or why it has none."""

    view: str
    values: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_journal(self) -> dict[str, Any]:
        return {"view": self.view, "values": self.values, "error": self.error}

    @classmethod
    def from_journal(cls, d: Mapping[str, Any]) -> ViewRecord:
        return cls(view=str(d["view"]), values=dict(d.get("values") or {}), error=d.get("error"))


@dataclass
class ItemRecord:
    """One finished item: what it was, its values (mean over scored views), its views, and how
    they were made (settings id, models, renderer) or why it failed, and what was accepted in a
    degraded form (``warnings``, see :mod:`gencritic.row_warnings`)."""

    item_id: str
    kind: str
    path: str
    prompt: str | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    views: list[ViewRecord] = field(default_factory=list)
    num_views: int | None = None
    num_views_scored: int | None = None
    prompt_tokens_cut: int | None = None
    settings_id: str | None = None
    model: str | None = None  # the run's models, comma-separated (the ``model`` column)
    models: dict[str, str | None] | None = None  # column -> its metric's model; None: journaled before they were kept
    success: bool = False
    error: str | None = None
    renderer: str | None = None  # what drew a mesh's views
    warnings: list[str] = field(default_factory=list)

    def to_journal(self) -> dict[str, Any]:
        """The journal's JSON object for this record (the layout every version has written)."""
        rec: dict[str, Any] = {
            "item": {"item_id": self.item_id, "kind": self.kind, "path": self.path, "prompt": self.prompt,
                     "columns": self.columns},
            "values": self.values, "views": [v.to_journal() for v in self.views], "num_views": self.num_views,
            "prompt_tokens_cut": self.prompt_tokens_cut, "settings_id": self.settings_id, "model": self.model,
        }
        if self.models is not None:
            rec["models"] = self.models
        if self.renderer:
            rec["renderer"] = self.renderer
        if self.warnings:  # absent otherwise: journals of clean runs stay as they were
            rec["warnings"] = list(self.warnings)
        rec.update(num_views_scored=self.num_views_scored, success=self.success, error=self.error)
        return rec

    @classmethod
    def from_journal(cls, d: Mapping[str, Any]) -> ItemRecord:
        """A record from its journal object, including those of older versions."""
        item = d["item"]
        models = d.get("models")
        return cls(
            item_id=str(item["item_id"]), kind=str(item.get("kind") or ""), path=str(item.get("path") or ""),
            prompt=item.get("prompt"), columns=dict(item.get("columns") or {}), values=dict(d.get("values") or {}),
            views=[ViewRecord.from_journal(v) for v in d.get("views") or []], num_views=d.get("num_views"),
            num_views_scored=d.get("num_views_scored"), prompt_tokens_cut=d.get("prompt_tokens_cut"),
            settings_id=d.get("settings_id"), model=d.get("model"), models=None if models is None else dict(models),
            success=bool(d.get("success")), error=d.get("error"), renderer=d.get("renderer"),
            warnings=list(d.get("warnings") or []))
