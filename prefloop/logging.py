"""Secrets never reach the logs or error reports.

``RedactSecrets`` is a filter on the console handler (``settings.LOGGING``): it rewrites
each record's message and traceback with :func:`redact`, which hides the values of
``Authorization`` headers, ``password=`` / ``token=`` / ``secret=`` pairs (also as JSON
or dict items), the password in any ``scheme://user:password@host`` URL (DATABASE_URL,
CELERY_BROKER_URL, PREFLOOP_CACHE_URL), and the literal values of ``SECRET_KEY`` and
of every password in the configured databases, broker and cache.

``SafeReporter`` does the same for Django's error reports (the debug page, mails to
admins), on top of Django's own cleansing of settings named like KEY, TOKEN, PASS.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.views.debug import SafeExceptionReporterFilter

REDACTED = "[redacted]"
SECRET_NAMES = r"password|passwd|pwd|secret|token|api[_-]?key|csrfmiddlewaretoken|sessionid"
PATTERNS = (
    # Authorization: Token abc / "HTTP_AUTHORIZATION": "Bearer abc"
    (re.compile(r"(?i)(authorization\W{0,4})(token|bearer|basic)\s+[^\s\"',}]+"),
     rf"\1\2 {REDACTED}"),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), rf"\1{REDACTED}@"),
    # password=abc, "token": "abc", 'secret': 'abc'
    (re.compile(rf"(?i)\b((?:{SECRET_NAMES})[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}})]+"),
     rf"\1{REDACTED}"),
)
MIN_LITERAL = 6  # shorter configured "secrets" would redact ordinary words


def _url_password(url: Any) -> str:
    if not isinstance(url, str):
        return ""
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


@lru_cache(maxsize=1)
def configured_secrets() -> tuple[str, ...]:
    """SECRET_KEY and the passwords of the databases, broker, result backend and caches."""
    from django.conf import settings

    if not settings.configured:
        return ()
    found = [settings.SECRET_KEY]
    found += [db.get("PASSWORD") or "" for db in settings.DATABASES.values()]
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        found.append(_url_password(getattr(settings, name, "")))
    for cache in settings.CACHES.values():
        locations = cache.get("LOCATION") or []
        for location in [locations] if isinstance(locations, str) else locations:
            found.append(_url_password(location))
    return tuple(sorted({s for s in found if len(s) >= MIN_LITERAL}, key=len, reverse=True))


def redact(text: str) -> str:
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in configured_secrets():
        text = text.replace(secret, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 a malformed record is logging's to report
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class SafeReporter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key: Any, value: Any) -> Any:
        value = super().cleanse_setting(key, value)
        return redact(value) if isinstance(value, str) else value
