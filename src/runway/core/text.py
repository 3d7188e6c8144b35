"""Plain-text helpers shared by reports, listings, storage names and error messages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path


def format_table(rows: Sequence[Sequence[object]]) -> list[str]:
    """Left-aligned columns, two spaces apart; the first row is the header."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def slug(name: str, sep: str = "-", default: str = "x") -> str:
    """``name`` reduced to lower-case letters, digits and ``sep``: safe as a folder or table name.

    The one rule for every name runway derives from a user's (experiment
    folders use ``-``, database tables ``_``).
    """
    return re.sub(r"[^a-z0-9]+", sep, name.lower()).strip(sep) or default


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, for an error message ("(no log)" if it cannot be read)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])
