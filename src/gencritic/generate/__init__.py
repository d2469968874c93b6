"""Generation jobs: submit images to 3D generators, track them durably, download, evaluate.

The flow is ``plan -> submit -> poll -> download -> eval``. Every step reads and writes the
job tracker (:mod:`gencritic.generate.tracker`), so any command can be killed and re-run:
what finished stays finished, what was in flight is reconciled, nothing is submitted twice.
Backends (:mod:`gencritic.generate.backends`) know one generator each; the runner
(:mod:`gencritic.generate.runner`) knows the state machine and nothing about HTTP.
"""

from __future__ import annotations

from gencritic.generate.matrix import JobConfig, load_matrix
from gencritic.generate.runner import GenerateSettings, Runner
from gencritic.generate.tracker import JobRow, Tracker
from gencritic.remote.clock import Clock, SystemClock

__all__ = ["Clock", "GenerateSettings", "JobConfig", "JobRow", "Runner", "SystemClock", "Tracker", "load_matrix"]
