"""One import record (a dict from any reader) → one validated ``ImportRow``.

Row kinds use TRL's names:

- ``prompt-only``: ``prompt`` (string or messages) or ``messages``; optional ``tags``, ``split``;
- ``prompt-responses``: the same plus ``responses`` (strings or ``{"text", "model"}`` objects);
- ``preference``: ``prompt``/``chosen``/``rejected``, or implicit-prompt conversations in
  ``chosen``/``rejected`` whose shared leading turns are the prompt;
- ``unpaired-preference``: ``prompt``/``completion``/``label`` (KTO).

A ``None`` value counts as missing (CSV readers turn empty cells into ``None``).
Every problem raises ``RowError`` with a message meant for the person who wrote the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROMPT_ONLY = "prompt-only"
PROMPT_RESPONSES = "prompt-responses"
PREFERENCE = "preference"
UNPAIRED = "unpaired-preference"
KINDS = (PROMPT_ONLY, PROMPT_RESPONSES, PREFERENCE, UNPAIRED)

ROLES = ("system", "user", "assistant")
MAX_RESPONSES_PER_ROW = 32  # default of PREFLOOP_IMPORT_MAX_RESPONSES_PER_ROW
COMMON_COLUMNS = {"tags", "split"}
KIND_COLUMNS = {
    PROMPT_ONLY: {"prompt", "messages"} | COMMON_COLUMNS,
    PROMPT_RESPONSES: {"prompt", "messages", "responses"} | COMMON_COLUMNS,
    PREFERENCE: {"prompt", "chosen", "rejected"} | COMMON_COLUMNS,
    UNPAIRED: {"prompt", "completion", "label"} | COMMON_COLUMNS,
}
SPLIT_ALIASES = {
    "train": "train", "eval": "eval", "test": "eval",
    "validation": "eval", "valid": "eval", "dev": "eval",
}
CSV_TRUE = {"true", "1", "yes"}
CSV_FALSE = {"false", "0", "no"}
MAX_TAG_CHARS = 100

Messages = list[dict[str, str]]


class RowError(ValueError):
    """The record cannot be imported; the message says why."""


@dataclass(frozen=True)
class ImportRow:
    line: int
    where: str
    kind: str
    messages: Messages
    tags: list[str] = field(default_factory=list)
    split: str | None = None
    responses: list[tuple[str, str]] = field(default_factory=list)  # (text, model name or "")
    chosen: str | None = None
    rejected: str | None = None
    completion: str | None = None
    label: bool | None = None


def kind_detect(columns: set[str]) -> str:
    """The row kind that a set of column names describes."""
    if columns & {"chosen", "rejected"}:
        return PREFERENCE
    if columns & {"completion", "label"}:
        return UNPAIRED
    if "responses" in columns:
        return PROMPT_RESPONSES
    if columns & {"prompt", "messages"}:
        return PROMPT_ONLY
    raise RowError(
        "no known columns: expected 'prompt' or 'messages' (prompts), 'responses', "
        "'chosen'/'rejected' (preference pairs) or 'completion'/'label' (KTO)"
    )


def text_check(value: Any, name: str, max_chars: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise RowError(f"'{name}' must be a string, got {_type_name(value)}")
    if not allow_empty and not value.strip():
        raise RowError(f"'{name}' is empty")
    if len(value) > max_chars:
        raise RowError(f"'{name}' is {len(value):,} characters; the limit is {max_chars:,}")
    if "\x00" in value:
        raise RowError(f"'{name}' contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RowError(f"'{name}' contains an invalid Unicode escape (lone surrogate)") from exc
    return value


def messages_check(value: Any, name: str, max_chars: int) -> Messages:
    """A non-empty list of ``{role, content}`` messages with known roles."""
    if not isinstance(value, list) or not value:
        raise RowError(f"'{name}' must be a non-empty list of messages, got {_type_name(value)}")
    out = []
    for i, message in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(message, Mapping):
            raise RowError(f"{where} must be an object with 'role' and 'content'")
        extra = set(message) - {"role", "content"}
        if extra:
            raise RowError(f"{where} has unknown keys {sorted(extra)}; expected role, content")
        role = message.get("role")
        if role not in ROLES:
            raise RowError(f"{where} has role {role!r}; expected one of {', '.join(ROLES)}")
        content = text_check(message.get("content"), f"{where}.content", max_chars)
        out.append({"role": role, "content": content})
    return out


def prompt_check(value: Any, name: str, max_chars: int) -> Messages:
    """A prompt string (one user turn) or a conversation that ends with a user turn."""
    if isinstance(value, str):
        return [{"role": "user", "content": text_check(value, name, max_chars)}]
    if not isinstance(value, list):
        raise RowError(f"'{name}' must be a string or a list of messages, got {_type_name(value)}")
    messages = messages_check(value, name, max_chars)
    if messages[-1]["role"] != "user":
        raise RowError(f"'{name}' must end with a user message (the response comes next)")
    return messages


def reply_check(value: Any, name: str, max_chars: int) -> str:
    """A completion: a string, or a conversation of exactly one assistant message."""
    if isinstance(value, str):
        return text_check(value, name, max_chars)
    if not isinstance(value, list):
        raise RowError(f"'{name}' must be a string or a list of messages, got {_type_name(value)}")
    messages = messages_check(value, name, max_chars)
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise RowError(f"'{name}' must be a string or a list of exactly one assistant message")
    return messages[0]["content"]


def row_parse(
    record: Mapping[str, Any],
    *,
    kind: str,
    line: int,
    where: str,
    max_chars: int,
    csv: bool,
    max_responses: int = MAX_RESPONSES_PER_ROW,
) -> ImportRow:
    """Validate ``record`` as a row of ``kind`` (see ``kind_detect``)."""
    parse = {
        PROMPT_ONLY: _prompt_only, PROMPT_RESPONSES: _prompt_responses,
        PREFERENCE: _preference, UNPAIRED: _unpaired,
    }[kind]
    fields = parse(record, max_chars, csv)
    if len(fields.get("responses") or ()) > max_responses:
        raise RowError(
            f"'responses' has {len(fields['responses']):,} items; the limit is {max_responses:,} "
            "per row (PREFLOOP_IMPORT_MAX_RESPONSES_PER_ROW): every two responses of a row "
            "become a task, so split the responses over several rows"
        )
    return ImportRow(
        line=line,
        where=where,
        kind=kind,
        tags=_tags(record.get("tags"), csv),
        split=_split(record.get("split")),
        **fields,
    )


def _prompt_only(record: Mapping, max_chars: int, csv: bool) -> dict:
    has_prompt, has_messages = record.get("prompt") is not None, record.get("messages") is not None
    if has_prompt and has_messages:
        raise RowError("give either 'prompt' or 'messages', not both")
    if has_messages:
        value = _json_cell(record["messages"], "messages") if csv else record["messages"]
        return {"messages": prompt_check(value, "messages", max_chars)}
    return {"messages": prompt_check(_required(record, "prompt"), "prompt", max_chars)}


def _prompt_responses(record: Mapping, max_chars: int, csv: bool) -> dict:
    fields = _prompt_only(record, max_chars, csv)
    value = _required(record, "responses")
    if csv:
        value = _json_cell(value, "responses")
    if not isinstance(value, list) or not value:
        raise RowError(f"'responses' must be a non-empty list, got {_type_name(value)}")
    responses = []
    for i, item in enumerate(value):
        name = f"responses[{i}]"
        if isinstance(item, Mapping):
            extra = set(item) - {"text", "model"}
            if extra:
                raise RowError(f"{name} has unknown keys {sorted(extra)}; expected text, model")
            model = item.get("model") or ""
            if not isinstance(model, str) or len(model) > 200:
                raise RowError(f"{name}.model must be a string of at most 200 characters")
            responses.append((text_check(item.get("text"), f"{name}.text", max_chars), model))
        else:
            responses.append((text_check(item, name, max_chars), ""))
    return {**fields, "responses": responses}


def _preference(record: Mapping, max_chars: int, csv: bool) -> dict:
    chosen, rejected = _required(record, "chosen"), _required(record, "rejected")
    prompt = record.get("prompt")
    if prompt is None:
        messages, chosen, rejected = _implicit_prompt(chosen, rejected, max_chars)
    else:
        messages = prompt_check(prompt, "prompt", max_chars)
        chosen = reply_check(chosen, "chosen", max_chars)
        rejected = reply_check(rejected, "rejected", max_chars)
    if chosen == rejected:
        raise RowError("'chosen' and 'rejected' are the same text")
    return {"messages": messages, "chosen": chosen, "rejected": rejected}


def _implicit_prompt(chosen: Any, rejected: Any, max_chars: int) -> tuple[Messages, str, str]:
    """TRL's implicit prompt: the turns chosen and rejected share, then one assistant reply each."""
    if isinstance(chosen, str) or isinstance(rejected, str):
        raise RowError(
            "'prompt' is missing: string pairs need a prompt column "
            "(an implicit prompt is read only from conversations)"
        )
    chosen = messages_check(chosen, "chosen", max_chars)
    rejected = messages_check(rejected, "rejected", max_chars)
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    for name, conversation in (("chosen", chosen), ("rejected", rejected)):
        rest = conversation[shared:]
        if len(rest) != 1 or rest[0]["role"] != "assistant":
            raise RowError(
                f"'{name}' must be the shared prompt turns followed by exactly one "
                "assistant message that differs from the other side"
            )
    prompt = chosen[:shared]
    if not prompt or prompt[-1]["role"] != "user":
        raise RowError("the turns shared by 'chosen' and 'rejected' must end with a user message")
    return prompt, chosen[shared]["content"], rejected[shared]["content"]


def _unpaired(record: Mapping, max_chars: int, csv: bool) -> dict:
    messages = prompt_check(_required(record, "prompt"), "prompt", max_chars)
    completion = reply_check(_required(record, "completion"), "completion", max_chars)
    label = _required(record, "label")
    if csv and isinstance(label, str):
        lowered = label.strip().lower()
        if lowered not in CSV_TRUE | CSV_FALSE:
            raise RowError(f"'label' must be true or false, got {label!r}")
        label = lowered in CSV_TRUE
    if not isinstance(label, bool):
        raise RowError(f"'label' must be a boolean (true/false), got {_type_name(label)}")
    return {"messages": messages, "completion": completion, "label": label}


def _tags(value: Any, csv: bool) -> list[str]:
    if value is None:
        return []
    if csv and isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            value = _json_cell(stripped, "tags")
        else:
            value = [tag.strip() for tag in stripped.split(",") if tag.strip()]
    if not isinstance(value, list):
        raise RowError(f"'tags' must be a list of strings, got {_type_name(value)}")
    return [text_check(tag, "tags", MAX_TAG_CHARS) for tag in value]


def _split(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in SPLIT_ALIASES:
        raise RowError(f"'split' must be 'train' or 'eval' (or test/validation), got {value!r}")
    return SPLIT_ALIASES[value.strip().lower()]


def _required(record: Mapping, name: str) -> Any:
    value = record.get(name)
    if value is None:
        raise RowError(f"'{name}' is missing")
    return value


def _json_cell(value: Any, name: str) -> Any:
    """CSV cells for list columns hold JSON text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise RowError(f"'{name}' must hold JSON in a CSV cell: {exc.msg}") from exc
    except RecursionError as exc:
        raise RowError(f"'{name}' holds JSON nested too deeply") from exc
    except ValueError as exc:  # an integer longer than sys.get_int_max_str_digits()
        raise RowError(f"'{name}' holds a number with too many digits") from exc


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)
