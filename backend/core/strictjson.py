"""Strict JSON for every API body: what Python's `json` reads but the rest of the stack cannot
store or handle is refused at the door, as a 400, before anything is written.

Refused, beyond malformed JSON: `NaN`/`Infinity`; numbers too large for a float (`1e400` reads
as an infinite float, which no integer field can take and jsonb cannot store; an integer too
long for a float stays an integer, which the fields check); strings or keys with a lone
surrogate escape (`"\\ud800"`: Postgres jsonb refuses them); nesting deeper than MAX_DEPTH
(deep enough for any body the page or a script sends; a body nested a thousand levels made the
decoder raise RecursionError).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class BadJson(ValueError):
    """A body that is not JSON the platform can store; the message says why."""


def _constant(name: str) -> Any:
    raise BadJson(f"{name} is not JSON")


def loads(text: str | bytes) -> Any:
    """The parsed body, or BadJson."""
    try:
        data = json.loads(text, parse_constant=_constant)
    except RecursionError:
        raise BadJson(f"nested deeper than {MAX_DEPTH} levels") from None
    except BadJson:
        raise
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise BadJson(f"not valid JSON ({error})") from None
    check(data)
    return data


def check(data: Any) -> None:
    """Walks the parsed value without recursion; raises BadJson for what cannot be stored."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise BadJson(f"nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_text(key)
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            _check_text(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise BadJson("a number is out of range")


def _check_text(text: str) -> None:
    if _LONE_SURROGATE.search(text):
        raise BadJson("a string holds a lone surrogate escape (\\ud800–\\udfff), not text")


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with `loads` above: a refused body is a 400 `parse_error`."""

    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        if stream is None:
            return {}
        try:
            return loads(stream.read())
        except BadJson as error:
            raise ParseError(f"JSON parse error: {error}") from None
