"""Read a CSV/TSV manifest strictly: it parses cleanly, or it is refused with the line and why.

Why not the csv module's defaults: they never fail. An unbalanced quote swallowed the rows
after it into one multi-line cell (4 rows read as 1, exit 0, the row "succeeded" with a
four-line prompt), and cells beyond the header's columns were silently cut. A manifest is
what a run's numbers are about, so a file that does not say clearly what it holds is refused
(:class:`~gencritic.errors.InputError`, exit 2) with the line number and the fix:

* a quote that is opened and never closed, or closed with text after it (``strict=True``);
* a row with more cells than the header names, unless the extra cells are empty (nothing is
  lost then; spreadsheets pad rows with trailing delimiters). Fewer cells are allowed: the
  missing ones are empty, as in pandas;
* bytes that are not UTF-8 (a BOM is fine), a NUL byte, repeated column names.

Quoted cells may span lines (a prompt with a line break) when their quotes balance.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from gencritic.errors import InputError

_QUOTE_HINT = 'close the quote, or write a quote inside a quoted cell as two ("")'


def _describe_csv_error(exc: csv.Error, start: int, end: int) -> str:
    """The csv module's message in words that say what to change, and where."""
    message = str(exc)
    if "unexpected end of data" in message:
        return f'a quoted cell opened on line {start} is never closed (unbalanced "); {_QUOTE_HINT}'
    if "expected after" in message:
        where = f"on line {end}" if end != start else "on the same line"
        return (f'a quoted cell opened on line {start} closes {where} with more text after the closing quote '
                f'(an unbalanced " on line {start}?); {_QUOTE_HINT}')
    if "NUL" in message:
        return "contains a NUL byte (a binary file, or not saved as text)"
    return message


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"manifest {path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                         f"save it as UTF-8") from None


def read_csv_rows(path: Path, delimiter: str = ",") -> tuple[list[dict[str, str]], list[int]]:
    """Rows of a CSV/TSV as dicts of strings, and the line each row starts on (1-based).

    Raises :class:`InputError` naming the line for anything listed in the module docstring."""
    reader = csv.reader(io.StringIO(_decode(path), newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(f"manifest {path}, line {start}: "
                             f"{_describe_csv_error(exc, start, reader.line_num)}") from None
        if not record:  # a blank line
            continue
        if header is None:
            header = record
            if len(set(header)) != len(header):
                raise InputError(f"manifest {path} has repeated column names: {', '.join(header)}")
            continue
        extra = record[len(header):]
        if any(cell.strip() for cell in extra):
            sep = "a tab" if delimiter == "\t" else f"'{delimiter}'"
            raise InputError(
                f"manifest {path}, line {start}: {len(record)} cells but the header names {len(header)} "
                f"({', '.join(header)}); quote cells that contain {sep}, or name the extra columns in the header")
        rows.append({name: record[i] if i < len(record) else "" for i, name in enumerate(header)})
        lines.append(start)
    return rows, lines
