"""What the runner needs from a generator, and nothing more.

A backend turns one *stage* of a job into a remote (or local) session and reports on it.
It knows its wire format; it does not know the tracker, the state machine or the disk
layout. That split is why a local script (the ``command`` backend) and a hosted API
(``csm``) are tracked, resumed and evaluated by the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from gencritic.generate.matrix import JobConfig

RemoteStatus = Literal["incomplete", "complete", "failed"]


@dataclass(frozen=True)
class RemoteOutput:
    """One result file of a session: a mesh, a kit part, or an intermediate image.

    ``urls`` maps a format (glb, obj, fbx, usdz, png) to where it can be fetched;
    ``local_path`` is set instead when a local backend already wrote the file.
    """

    kind: Literal["mesh", "part", "image"]
    index: int
    urls: dict[str, str] = field(default_factory=dict)
    local_path: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "index": self.index, "urls": dict(self.urls), "local_path": self.local_path}


@dataclass(frozen=True)
class RemoteState:
    """A session as last seen. ``next_input`` carries a chat stage's generated image."""

    status: RemoteStatus
    raw_status: str
    outputs: tuple[RemoteOutput, ...] = ()
    error: str | None = None
    next_input: str | None = None


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class StageRequest:
    """Everything needed to start one stage of one job.

    A backend that may be charged for a request calls ``before_send`` right before each
    request leaves (the runner commits the job's ``sent`` mark there, and raises to stop the
    send if the job is no longer this run's), and ``not_sent`` when the service answered that
    the request was not processed and no earlier try is in doubt. A local backend calls
    neither: a local run interrupted half way costs nothing and is simply run again.
    """

    config: JobConfig
    stage: str
    image_path: Path
    stage_input: str | None
    token: str
    output_dir: Path
    image_name: str = ""
    before_send: Callable[[], None] = _nothing
    not_sent: Callable[[], None] = _nothing


class Backend(Protocol):
    """A generator. Methods raise ``ApiError`` (definitive) or ``RetriesExhausted`` (transient)."""

    name: str

    def submit(self, request: StageRequest) -> str:
        """Start the stage and return its session id. ``request.token`` must travel with it."""
        ...

    def find_by_token(self, token: str) -> str | None:
        """The session id of an earlier submission carrying ``token``, or None if there is none."""
        ...

    def poll(self, session_id: str, stage: str) -> RemoteState:
        """Where the session stands now."""
        ...

    def close(self) -> None: ...
