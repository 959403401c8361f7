from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness + database check for load balancers (503 when the database is down)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 any database failure means "not ready"
        return JsonResponse({"status": "database unavailable", "error": str(exc)}, status=503)
    return JsonResponse({"status": "ok"})
