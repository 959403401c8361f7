"""OpenAPI schema post-processing: document the error responses every operation can give.

drf-spectacular documents the success responses the views declare. The errors come
from shared machinery instead (authentication, permissions, serializer validation,
``prefloop.exceptions``, the request-size middleware), so they are added here, once,
to every operation that does not document that status itself.

An error body is a JSON object: ``{"detail": "..."}`` for most errors, or a field →
messages mapping for validation errors (DRF's shape).
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": (
        'An error: {"detail": "..."} (plus context fields), or for invalid input a '
        "mapping of field name to a list of messages."
    ),
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
ERRORS = {
    "400": "Invalid input (the body names what is wrong).",
    "401": "Not authenticated.",
    "403": "Authenticated, but the role does not allow this.",
    "404": "No such object, or not visible to this user.",
    "409": "Conflicts with the current state (e.g. a name already taken).",
    "413": "The request body is over the size limit (PREFLOOP_MAX_REQUEST_BYTES).",
    "415": "Unsupported request content type.",
    "429": "Too many requests; retry later.",
    "503": "The database is unavailable; retry in a moment.",
}
METHODS = ("get", "put", "post", "patch", "delete")


def error_responses_add(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular post-processing hook (``SPECTACULAR_SETTINGS``)."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(ERROR_COMPONENT, ERROR_SCHEMA)
    reference = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERRORS.items():
                if code in responses:
                    _widen(responses[code], reference)
                    continue
                content = {"application/json": {"schema": reference}}
                responses[code] = {"description": description, "content": content}
    return result


def _widen(response: dict[str, Any], reference: dict[str, str]) -> None:
    """A view's own error body (e.g. an import report) may also be a generic error
    (invalid input is refused before the view runs)."""
    media = response.setdefault("content", {}).setdefault("application/json", {})
    schema = media.get("schema")
    if schema is None:
        media["schema"] = reference
    elif schema != reference:
        media["schema"] = {"anyOf": [schema, reference]}
