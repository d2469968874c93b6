"""Generator backends: ``csm`` (CSM.ai v3 sessions API) and ``command`` (a local program)."""

from __future__ import annotations

from gencritic.generate.backends.base import Backend, RemoteOutput, RemoteState, StageRequest

__all__ = ["Backend", "RemoteOutput", "RemoteState", "StageRequest"]
