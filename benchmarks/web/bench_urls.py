"""The project's URLs plus the bare endpoint: one INSERT through the same Django stack
(middleware, settings, gunicorn), for the benchmark only."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from pgp_project.urls import urlpatterns as project_urlpatterns


@csrf_exempt
@require_POST
def bare_insert(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_bare (body) VALUES (%s) RETURNING id", [request.body.decode()])
        row = cursor.fetchone()
    return JsonResponse({"id": row[0]})


urlpatterns = [path("bench/bare/", bare_insert), *project_urlpatterns]
