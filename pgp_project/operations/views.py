from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from .health import run_health_checks


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when database, broker and Beat are all well; 503 with the failing part otherwise."""
    healthy, report = run_health_checks()
    return JsonResponse({"status": "ok" if healthy else "unhealthy", "checks": report}, status=200 if healthy else 503)
