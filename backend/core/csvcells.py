"""Spreadsheet-safe CSV cells (OWASP's rule against CSV formula injection).

A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return as a
formula, so a participant who sets `SESSION_ID` to `=HYPERLINK(…)` would run it on the
researcher's machine. Every CSV the platform writes passes its text cells through `safe_cell`,
which prefixes such a cell with `'` (shown as text, not run). Numbers are not text and are left
as they are (a negative reaction time stays a number). `unescape_cell` reverses it exactly, for
the platform's own files read back: a cell of any number of `'` before one of those characters
gets one more on writing and loses one on reading, so every text round-trips.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in values]


def safe_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: safe_cell(value) for key, value in row.items()}


def unescape_cell(text: str) -> str:
    if text.startswith("'") and _FORMULA.match(text):
        return text[1:]
    return text
