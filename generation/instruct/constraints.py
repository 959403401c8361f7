"""Format constraints a program can verify, each with the sentence that asks for it.

A constraint is a plain dict (it lives in a prompt's JSON metadata):
``{"kind": "max_words", "n": 40}``. :data:`KINDS` maps each kind to its instruction
text and its check; :func:`check` answers whether a response satisfies one.
Checks follow IFEval's strict reading: the text is taken as written, apart from
stripping surrounding white space.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Constraint = Mapping[str, Any]

_WORD = re.compile(r"[A-Za-z0-9']+")
_BULLET = re.compile(r"^\s*[*-]\s+\S")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def _lowercase(text: str, _c: Constraint) -> bool:
    return any(ch.isalpha() for ch in text) and text == text.lower()


def _uppercase(text: str, _c: Constraint) -> bool:
    return any(ch.isalpha() for ch in text) and text == text.upper()


def _max_words(text: str, c: Constraint) -> bool:
    return 0 < len(words(text)) <= int(c["n"])


def _min_words(text: str, c: Constraint) -> bool:
    return len(words(text)) >= int(c["n"])


def _bullets(text: str, c: Constraint) -> bool:
    return sum(1 for line in text.splitlines() if _BULLET.match(line)) == int(c["n"])


def _keyword(text: str, c: Constraint) -> bool:
    return re.search(rf"\b{re.escape(str(c['word']))}\b", text, re.IGNORECASE) is not None


def _forbidden(text: str, c: Constraint) -> bool:
    return not _keyword(text, c)


def _no_commas(text: str, _c: Constraint) -> bool:
    return bool(text.strip()) and "," not in text


def _json_keys(text: str, c: Constraint) -> bool:
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and sorted(value) == sorted(c["keys"])


def _ends_with(text: str, c: Constraint) -> bool:
    return text.strip().endswith(str(c["phrase"]))


def _starts_with(text: str, c: Constraint) -> bool:
    first = words(text.strip())[:1]
    return bool(first) and first[0].lower() == str(c["word"]).lower()


def _quoted(text: str, _c: Constraint) -> bool:
    body = text.strip()
    return len(body) > 2 and body[0] == '"' and body[-1] == '"'


def _title(text: str, _c: Constraint) -> bool:
    return re.search(r"<<[^<>\n]+>>", text) is not None


def _sentences_max(text: str, c: Constraint) -> bool:
    parts = [p for p in re.split(r"[.!?]+", text) if words(p)]
    return 0 < len(parts) <= int(c["n"])


@dataclass(frozen=True)
class Kind:
    instruction: str  # str.format-ed with the constraint's fields
    check: Callable[[str, Constraint], bool]
    group: str  # kinds of one group contradict or repeat each other: one per prompt


KINDS: dict[str, Kind] = {
    "lowercase": Kind("Write your entire answer in lowercase letters, with no capitals.",
                      _lowercase, "case"),
    "uppercase": Kind("Write your entire answer in capital letters.", _uppercase, "case"),
    "max_words": Kind("Use at most {n} words.", _max_words, "length"),
    "min_words": Kind("Use at least {n} words.", _min_words, "length"),
    "sentences_max": Kind("Answer in at most {n} sentences.", _sentences_max, "length"),
    "bullets": Kind("Answer with exactly {n} bullet points, each on its own line starting "
                    "with '* '.", _bullets, "shape"),
    "json_keys": Kind("Answer only with a JSON object that has exactly these keys: {keys_text}.",
                      _json_keys, "shape"),
    "quoted": Kind("Wrap your entire answer in double quotation marks.", _quoted, "shape"),
    "keyword": Kind("Include the word \"{word}\".", _keyword, "keyword"),
    "forbidden": Kind("Do not use the word \"{word}\".", _forbidden, "forbidden"),
    "no_commas": Kind("Do not use any commas.", _no_commas, "punctuation"),
    "ends_with": Kind("End your answer with the exact phrase \"{phrase}\".", _ends_with, "end"),
    "starts_with": Kind("Begin your answer with the word \"{word}\".", _starts_with, "start"),
    "title": Kind("Give your answer a title wrapped in double angular brackets, such as "
                  "<<my title>>.", _title, "title"),
}

# Pairs that cannot hold together (JSON has commas and quotes; a quoted answer is one shape).
INCOMPATIBLE: frozenset[frozenset[str]] = frozenset({
    frozenset({"json_keys", "no_commas"}), frozenset({"json_keys", "lowercase"}),
    frozenset({"json_keys", "uppercase"}), frozenset({"json_keys", "ends_with"}),
    frozenset({"json_keys", "starts_with"}), frozenset({"json_keys", "title"}),
    frozenset({"json_keys", "sentences_max"}), frozenset({"json_keys", "min_words"}),
    frozenset({"uppercase", "keyword"}), frozenset({"lowercase", "title"}),
    frozenset({"quoted", "starts_with"}), frozenset({"quoted", "ends_with"}),
    frozenset({"bullets", "sentences_max"}), frozenset({"bullets", "quoted"}),
    frozenset({"uppercase", "ends_with"}), frozenset({"lowercase", "ends_with"}),
    frozenset({"uppercase", "starts_with"}),
})


def instruction(constraint: Constraint) -> str:
    kind = KINDS[constraint["kind"]]
    fields = dict(constraint)
    if "keys" in fields:
        fields["keys_text"] = ", ".join(f'"{k}"' for k in fields["keys"])
    return kind.instruction.format(**fields)


def check(constraint: Constraint, text: str) -> bool:
    """Whether ``text`` satisfies ``constraint``; an unknown kind raises KeyError."""
    return KINDS[constraint["kind"]].check(text, constraint)


def compatible(kinds: list[str]) -> bool:
    groups = [KINDS[k].group for k in kinds]
    if len(set(groups)) != len(groups):
        return False
    return not any(frozenset({a, b}) in INCOMPATIBLE for a in kinds for b in kinds if a < b)
