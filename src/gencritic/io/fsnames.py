"""File names that are not UTF-8: written so they come back unchanged, and never crash a write.

On Linux a file name is bytes. Python gives undecodable bytes to us as lone surrogates
(PEP 383: byte ``0xE9`` becomes ``'\\udce9'``), and ``os.fsencode`` turns them back into the
bytes on disk. Such a ``str`` cannot be encoded as UTF-8, so one oddly named file used to
raise ``UnicodeEncodeError`` at the journal write and lose every other item of the run.

One convention, lossless in every format gencritic writes (the same ``str`` comes back):

* **JSON** (journal, ``results.jsonl``, ``summary.json``, diagnose output) must be valid
  UTF-8, so each lone surrogate is written as its JSON escape ``\\udce9``; ``json.loads``
  returns the original ``str``.
* **CSV** (``results.csv``, ``views.csv``) is written with ``errors="surrogateescape"``: the
  name appears as its original bytes, as the file system holds it. Read it back with
  ``errors="surrogateescape"`` (pandas: ``encoding_errors="surrogateescape"``).
* **Parquet**, and the service's and MCP's responses (serialised by pydantic, which refuses
  lone surrogates), need valid Unicode and cannot carry the bytes: there the undecodable bytes
  appear as ``\\xe9`` text (:func:`printable`, :func:`printable_tree`), the one lossy form;
  CSV and JSON files hold the exact name.
"""

from __future__ import annotations

import re
from typing import Any

CSV_ERRORS = "surrogateescape"  # the errors= of every open() that writes or reads a results CSV

_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(json_text: str) -> str:
    """JSON text from ``json.dumps(..., ensure_ascii=False)`` with each lone surrogate replaced
    by its ``\\uXXXX`` escape: valid UTF-8 JSON that ``json.loads`` reads back to the same str.

    Surrogates can only stand inside JSON strings, where the escape means the same character.
    """
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)


def printable(value: Any) -> Any:
    """``value`` with undecodable file-name bytes as ``\\xNN`` text, for places that need valid
    UTF-8 and cannot carry bytes (Parquet, Arrow-backed pandas). Other values are unchanged."""
    if isinstance(value, str) and _SURROGATE.search(value):
        try:
            raw = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate that stands for no byte (e.g. from a JSON escape)
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")
    return value


def printable_tree(obj: Any) -> Any:
    """:func:`printable` applied to every string (keys too) in nested dicts, lists and tuples."""
    if isinstance(obj, dict):
        return {printable(k): printable_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [printable_tree(v) for v in obj]
    return printable(obj)
