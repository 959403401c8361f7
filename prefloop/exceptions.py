"""Domain errors, the one DRF exception handler that turns them into responses, and
the middleware that turns a lost database into a 503 page."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)
DATABASE_DOWN = "The database is unavailable; retry in a moment."
QUEUE_DOWN = "The task queue is unavailable ({error}); the job was not started: retry later."
DATABASE_DOWN_PAGE = (
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<title>Prefloop: temporarily unavailable</title></head><body>"
    "<h1>Temporarily unavailable</h1><p>The database cannot be reached right now; "
    "reload this page in a moment.</p></body></html>"
)


class ApplicationError(Exception):
    """A business-rule violation a client can fix; maps to HTTP 400."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class InvalidInputError(ApplicationError):
    """Invalid input, by field (``{"sampling": "n must be at least 1"}``): HTTP 400 whose body
    names the fields as DRF's own validation errors do (``{"sampling": ["..."]}``)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(fields.values()))
        self.fields = dict(fields)


class NotFoundError(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND


class ConflictError(ApplicationError):
    status_code = status.HTTP_409_CONFLICT


class PermissionError_(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN


class ServiceUnavailableError(ApplicationError):
    """A service the request needs (the task queue) is down; retry later. HTTP 503."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


class QueueUnavailableError(ServiceUnavailableError):
    """The broker refused a message (down, unreachable): the job was not started."""


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail)
    if isinstance(exc, InvalidInputError):
        return Response({field: [text] for field, text in exc.fields.items()},
                        status=exc.status_code)
    if isinstance(exc, ApplicationError):
        headers = {"Retry-After": "5"} if isinstance(exc, ServiceUnavailableError) else None
        return Response({"detail": exc.message, **exc.extra}, status=exc.status_code,
                        headers=headers)
    if isinstance(exc, (OperationalError, InterfaceError)):
        request = context.get("request")
        logger.warning("database unavailable on %s %s: %s", getattr(request, "method", "?"),
                       getattr(request, "path", "?"), exc)
        return Response(
            {"detail": DATABASE_DOWN}, status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "2"},
        )
    return exception_handler(exc, context)


class DatabaseUnavailableMiddleware:
    """Pages (and API views outside DRF) answer a plain 503 while the database is down,
    never a 500 or a traceback; DRF views get the same through ``api_exception_handler``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, (OperationalError, InterfaceError)):
            return None
        logger.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse({"detail": DATABASE_DOWN}, status=503)
        else:
            response = HttpResponse(DATABASE_DOWN_PAGE, status=503)
        response["Retry-After"] = "2"
        return response
