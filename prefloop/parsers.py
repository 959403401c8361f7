"""Request parsers that refuse hostile bodies with a 400 instead of failing later.

DRF's own parsers, plus three rules (``docs/security.md``, "Hostile input"):

- invalid UTF-8 in a JSON body is a 400 naming the byte (DRF already refuses it; the
  message here is clearer);
- JSON nested deeper than ``MAX_JSON_DEPTH`` is a 400 (Python's parser would raise
  ``RecursionError``, a 500, on a body of ten thousand ``[``);
- a NUL character (``\\u0000``) anywhere in a JSON body, form field or field name is
  a 400: PostgreSQL cannot store it in text or jsonb, so it would fail at the
  database (a 500) instead of at the door.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 64
NUL = "\x00"
NUL_REFUSED = "NUL characters (\\u0000) are not accepted in {where}."


class _TooDeep(Exception):
    pass


def json_depth_check(text: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ``ParseError`` when brackets outside strings nest deeper than ``max_depth``.

    A linear scan before ``json.loads``, so the parser never recurses that deep.
    """
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise ParseError(f"JSON nested deeper than {max_depth} levels is not accepted.")
        elif char in "]}":
            depth -= 1


def has_nul(value: Any) -> bool:
    """Whether a parsed JSON value holds a NUL character in any string, key included."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"The body is not valid {encoding}: bad byte at offset {exc.start}."
            ) from exc
        except LookupError as exc:
            raise ParseError(f"Unknown charset {encoding!r}.") from exc
        json_depth_check(text)
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error: {exc}") from exc
        if has_nul(data):
            raise ParseError(NUL_REFUSED.format(where="JSON bodies"))
        return data


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _form_check(items: Iterable[tuple[str, list]]) -> None:
    for key, values in items:
        if NUL in key or any(isinstance(v, str) and NUL in v for v in values):
            raise ParseError(NUL_REFUSED.format(where="form fields"))


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _form_check(data.lists())
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        _form_check(result.data.lists())
        return result
