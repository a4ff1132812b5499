from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from pgp_project.admin_site import operator_access_allowed

from .health import run_health_checks


def may_see_details(request: HttpRequest) -> bool:
    """Operators only: `Bearer PGP_HEALTH_TOKEN` or a session the admin would let in."""
    return operator_access_allowed(request, settings.PGP_HEALTH_TOKEN)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when database, broker and Beat are all well, else 503. The public learns only that;
    what failed, the job ages and the needs-attention counts are for operators (see
    may_see_details): they describe the inside of a money system."""
    details = may_see_details(request)
    healthy, report = run_health_checks(with_attention=details)
    body: dict[str, object] = {"status": "ok" if healthy else "unhealthy"}
    if details:
        body["checks"] = report
    return JsonResponse(body, status=200 if healthy else 503)
