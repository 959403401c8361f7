"""Security headers for every response: a strict Content-Security-Policy and friends.

The pages render untrusted text (model responses, imported prompts). Markdown is
sanitised on the server (``frontend.markdown``); the policy is the second wall: no
inline script, no script from anywhere but this site, no plugins, no framing, forms
post only here. Pages therefore keep their JavaScript and CSS in static files and
pass data through ``data-`` attributes.

Exceptions, each as narrow as it can be:
- a view may set ``response.csp_remote_images = True`` (a project that allows remote
  images in responses): ``img-src`` then also allows ``https:``;
- the Swagger UI page (``api-docs``) loads its bundle from jsDelivr and starts it
  with an inline script (drf-spectacular's ``SpectacularSwaggerView``);
- Django's own debug error pages (``DEBUG`` only) use inline CSS and JS.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

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
SWAGGER_CDN = "https://cdn.jsdelivr.net"
SWAGGER_POLICY = {
    **BASE_POLICY,
    "script-src": f"'self' 'unsafe-inline' {SWAGGER_CDN}",
    "style-src": f"'self' 'unsafe-inline' {SWAGGER_CDN}",
    "img-src": f"'self' data: {SWAGGER_CDN}",
}
DEBUG_PAGE_POLICY = {
    **BASE_POLICY,
    "script-src": "'self' 'unsafe-inline'",
    "style-src": "'self' 'unsafe-inline'",
}
RELAXED_URL_NAMES = {"api-docs"}
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def _serialise(policy: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}" for name, value in policy.items())


def content_security_policy(request: HttpRequest, response: HttpResponse) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name in RELAXED_URL_NAMES:
        return _serialise(SWAGGER_POLICY)
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
