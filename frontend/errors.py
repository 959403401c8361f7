"""Ordinary refusals are not incidents: a 403 or 404 is logged as one line, without the
traceback Django attaches to it (``django.request`` logs the exception it turned into
the response). Server errors (5xx) keep theirs."""

from __future__ import annotations

import logging

QUIET_STATUSES = (400, 403, 404, 405)


class QuietRefusals(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) in QUIET_STATUSES:
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    logger = logging.getLogger("django.request")
    if not any(isinstance(f, QuietRefusals) for f in logger.filters):
        logger.addFilter(QuietRefusals())
