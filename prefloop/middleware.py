"""Security headers for every response: a strict Content-Security-Policy and friends.

The pages render untrusted text (model responses, imported prompts). Markdown is
sanitised on the server (``frontend.markdown``); the policy is the second wall: no
inline script, no script from anywhere but this site, no plugins, no framing, forms
post only here. Pages therefore keep their JavaScript and CSS in static files and
pass data through ``data-`` attributes.

Exceptions, each as narrow as it can be:
- a view may set ``response.csp_remote_images = True`` (a project that allows remote
  images in responses): ``img-src`` then also allows ``https:``;
- the API documentation pages (``api-docs``: Swagger UI, ``api-redoc``: ReDoc) load
  their bundles from this site (drf-spectacular-sidecar) and run no inline script, but
  the bundles set inline styles, and ReDoc searches in a ``blob:`` worker;
- Django's own debug error pages (``DEBUG`` only) use inline CSS and JS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

CSP_HEADER = "Content-Security-Policy"
BASE_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
API_DOCS_POLICY = {
    **BASE_POLICY,
    "style-src": "'self' 'unsafe-inline'",
    "worker-src": "'self' blob:",
}
DEBUG_PAGE_POLICY = {
    **BASE_POLICY,
    "script-src": "'self' 'unsafe-inline'",
    "style-src": "'self' 'unsafe-inline'",
}
RELAXED_URL_NAMES = {"api-docs", "api-redoc"}
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def _serialise(policy: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}" for name, value in policy.items())


def content_security_policy(request: HttpRequest, response: HttpResponse) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name in RELAXED_URL_NAMES:
        return _serialise(API_DOCS_POLICY)
    if settings.DEBUG and response.status_code in (404, 500):
        return _serialise(DEBUG_PAGE_POLICY)
    policy = dict(BASE_POLICY)
    if getattr(response, "csp_remote_images", False):
        policy["img-src"] += " https:"
    return _serialise(policy)


class SecurityHeadersMiddleware:
    """Adds CSP, Permissions-Policy and CORP unless the response already set them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if CSP_HEADER not in response:
            response[CSP_HEADER] = content_security_policy(request, response)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        return response


# --- Hostile input (docs/security.md) -------------------------------------------------
UPLOAD_MULTIPART_SLACK = 1024 * 1024  # form fields and part headers around the file
TOO_LARGE = (
    "The request body is {length:,} bytes; the limit here is {limit:,} bytes ({setting})."
)
NUL_IN_URL = "NUL characters (%00) are not accepted in URLs."


def accepts_uploads(view: Any) -> Any:
    """Mark a view function or DRF view class as taking file uploads: its request body
    may be as large as ``PREFLOOP_MAX_IMPORT_BYTES`` instead of ``PREFLOOP_MAX_REQUEST_BYTES``.
    """
    view.accepts_uploads = True
    return view


def body_limit(view_func: Callable) -> tuple[int, str]:
    """The largest body (bytes) this view accepts, and the setting that sets it."""
    view = getattr(view_func, "cls", view_func)  # DRF's as_view() keeps the class here
    if getattr(view, "accepts_uploads", False):
        return settings.PREFLOOP_MAX_IMPORT_BYTES + UPLOAD_MULTIPART_SLACK, (
            "PREFLOOP_MAX_IMPORT_BYTES"
        )
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "PREFLOOP_MAX_REQUEST_BYTES"


def content_length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0  # Django reads such a body as empty


def refusal(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """JSON under /api/ (as the OpenAPI schema documents), a plain page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    page = f"<!doctype html><title>Error {status}</title><h1>Error {status}</h1><p>{message}</p>"
    return HttpResponse(page, status=status)


class RequestGuardMiddleware:
    """Refuses oversized bodies (413) before they are read, and NUL bytes in URLs (400).

    Django would read a large JSON body into memory (DRF's parsers ignore
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``) and stream a large upload to disk; the
    ``Content-Length`` header says how large it is, so the refusal costs nothing.
    Must come before ``CsrfViewMiddleware``, whose ``process_view`` reads POST bodies.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "%00" in query or "\x00" in query:
            return refusal(request, 400, NUL_IN_URL)
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable, *_: Any
    ) -> HttpResponse | None:
        limit, setting = body_limit(view_func)
        length = content_length(request)
        if length > limit:
            message = TOO_LARGE.format(length=length, limit=limit, setting=setting)
            return refusal(request, 413, message)
        return None
