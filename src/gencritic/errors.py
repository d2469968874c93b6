"""Two kinds of failure, kept apart on purpose.

*Run-level* errors (:class:`GencriticError` and subclasses) stop a run before any work and
carry one line that says what to do. *Item-level* failures (:class:`ItemError`) become a row
with ``success=False`` and the reason, and the run goes on. Nothing in gencritic turns either
into a made-up score.
"""

from __future__ import annotations


class GencriticError(Exception):
    """A run cannot start or go on; the message is a single actionable line."""


class InputError(GencriticError):
    """Bad input given to a run (missing manifest, wrong columns, unknown metric...)."""


class ModelUnavailableError(GencriticError):
    """Weights for a model cannot be had (offline, missing path, bad checkpoint)."""


class ItemError(Exception):
    """One item cannot be scored; its row is marked failed with this reason."""
