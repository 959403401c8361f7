"""Request parsers that refuse hostile bodies with a 400 instead of failing later.

DRF's own parsers, plus four rules (``docs/security.md``, "Hostile input"):

- invalid UTF-8 in a JSON body is a 400 naming the byte (DRF already refuses it; the
  message here is clearer);
- JSON nested deeper than ``MAX_JSON_DEPTH`` is a 400 (Python's parser would raise
  ``RecursionError``, a 500, on a body of ten thousand ``[``);
- a NUL character (``\\u0000``) anywhere in a JSON body, form field or field name is
  a 400: PostgreSQL cannot store it in text or jsonb, so it would fail at the
  database (a 500) instead of at the door;
- a lone surrogate escape (``\\ud800`` without its pair) anywhere in a JSON body, keys
  and nested values included, is a 400: such a string cannot be encoded as UTF-8, and
  DRF's own surrogate check runs only on ``CharField`` (a ``DictField`` or ``JSONField``
  would carry it to the database or a template).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 64
NUL = "\x00"
NUL_REFUSED = "NUL characters (\\u0000) are not accepted in {where}."
DEEP = "JSON nested deeper than {depth} levels is not accepted."
SURROGATE_REFUSED = (
    "Lone surrogate escapes (\\ud800-\\udfff without their pair) are not accepted in JSON "
    "bodies: they are not Unicode text."
)
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def json_depth_check(data: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ``ParseError`` when a parsed JSON value nests deeper than ``max_depth``.

    Iterative, over containers only. (Python's parser itself stops near its recursion
    limit with ``RecursionError``; values just under it would overflow later code.)
    """
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > max_depth:
            raise ParseError(DEEP.format(depth=max_depth))
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def has_nul(value: Any) -> bool:
    """Whether a parsed JSON value holds a NUL character in any string, key included."""
    return _any_string(value, lambda text: NUL in text)


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string of a parsed JSON value (key included) cannot be UTF-8 encoded."""
    return _any_string(value, _unencodable)


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _any_string(value: Any, test) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if test(item):
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
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except RecursionError as exc:
            raise ParseError(DEEP.format(depth=MAX_JSON_DEPTH)) from exc
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}") from exc
        # Both walks cost time only on bodies that could fail them (counted in C).
        if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
            json_depth_check(data)
        if "\\u0000" in text and has_nul(data):  # JSON can only carry NUL escaped
            raise ParseError(NUL_REFUSED.format(where="JSON bodies"))
        if SURROGATE_ESCAPE.search(text) and has_lone_surrogate(data):  # only escaped, too
            raise ParseError(SURROGATE_REFUSED)
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
