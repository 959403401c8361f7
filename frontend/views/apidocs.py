"""The API documentation pages, served entirely from this site (drf-spectacular-sidecar):
Swagger UI at ``/api/docs/`` and ReDoc at ``/api/redoc/`` work without internet.

Both pages load their bundles from ``/static/`` and carry no inline script: Swagger UI's
start-up script is a separate response (``?script``, drf-spectacular's split view), and
ReDoc starts from its ``<redoc spec-url>`` element. The bundles style themselves with
inline styles, so these two pages alone allow ``style-src 'unsafe-inline'``
(``prefloop.middleware``).
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView


class SwaggerView(SpectacularSwaggerSplitView):
    template_name = "frontend/api/swagger_ui.html"
    title = "Prefloop API"


class RedocView(SpectacularRedocView):
    template_name = "frontend/api/redoc.html"
    title = "Prefloop API"
