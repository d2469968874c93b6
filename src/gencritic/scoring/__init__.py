"""The scoring run: items in, records and result files out (``gencritic score`` and ``score()``).

One job per module, in the order a run uses them: :mod:`.options` (what was asked),
:mod:`.plan` (which items, checks that fail fast, .blend conversion), :mod:`.metric_set` (the
metrics together), :mod:`.schedule` (preparing items in threads, batches), :mod:`.aggregate`
(a batch's metric results -> :mod:`.records`), :mod:`.journal` (resumable records on disk),
:mod:`.outputs` (rows, columns, summary, files) and :mod:`.run` (``score()`` itself);
:mod:`.embed` gives other tools the embeddings metrics see. See docs/architecture.md.

Imported lazily: ``import gencritic.scoring`` costs nothing until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gencritic.scoring.options import ScoreOptions
    from gencritic.scoring.outputs import ScoreRun
    from gencritic.scoring.run import score

_EXPORTS = {"score": "gencritic.scoring.run", "ScoreOptions": "gencritic.scoring.options",
            "ScoreRun": "gencritic.scoring.outputs"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)


__all__ = ["ScoreOptions", "ScoreRun", "score"]
