"""gencritic: judge what generative AI makes.

The Python API mirrors the CLI::

    import gencritic
    run = gencritic.score("images/", out="results/", metrics="clip")
    run.summary["mean"], run.to_pandas()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gencritic.version import __version__

if TYPE_CHECKING:
    from gencritic.scoring import ScoreOptions, ScoreRun


def score(*args: Any, **kwargs: Any) -> ScoreRun:
    """Score images/meshes/manifests; see :func:`gencritic.scoring.run.score`."""
    from gencritic.scoring.run import score as _score

    return _score(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("ScoreOptions", "ScoreRun"):
        from gencritic import scoring

        return getattr(scoring, name)
    if name in ("load_clip", "ModelPool"):
        from gencritic import models

        return getattr(models, name)
    raise AttributeError(name)


__all__ = ["ScoreOptions", "ScoreRun", "__version__", "score"]
