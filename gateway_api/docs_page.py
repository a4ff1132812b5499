"""The API's docs page (Swagger UI from drf-spectacular-sidecar: our own static files, no CDN)
under a CSP of 'self' only: no inline script or style, and no data: images. Swagger UI's
stylesheet embeds its icons as data: URIs, so it is served rewritten, each icon at a URL of ours."""

import base64
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse
from django.templatetags.static import static
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.request import Request
from rest_framework.response import Response

SWAGGER_CSS = "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css"
# url("data:..."), url('data:...') (either with backslash escapes inside) or url(data:...)
DATA_URL = re.compile(r"""url\((?:"(data:(?:[^"\\]|\\.)*)"|'(data:(?:[^'\\]|\\.)*)'|(data:[^)"']*))\)""")
CSS_ESCAPE = re.compile(r"\\(.)")


@cache
def rewritten_css() -> tuple[str, tuple[tuple[str, bytes], ...]]:
    """Swagger UI's stylesheet with each data: URI replaced by a URL of ours, and those assets."""
    path = finders.find(SWAGGER_CSS)
    if not path:
        raise RuntimeError(f"{SWAGGER_CSS} not found: is drf_spectacular_sidecar installed?")
    text = Path(str(path)).read_text(encoding="utf-8")
    assets: list[tuple[str, bytes]] = []

    def replace(match: re.Match[str]) -> str:
        header, _, payload = next(group for group in match.groups() if group)[len("data:") :].partition(",")
        media_type = header.split(";")[0] or "text/plain"
        if header.endswith(";base64"):
            body = base64.b64decode(payload)
        else:
            body = unquote(CSS_ESCAPE.sub(r"\1", payload)).encode()
        assets.append((media_type, body))
        return f'url("{reverse("gateway-api-docs-asset", args=[len(assets) - 1])}")'

    return DATA_URL.sub(replace, text), tuple(assets)


def swagger_css(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(rewritten_css()[0], content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    return response


def swagger_css_asset(request: HttpRequest, number: int) -> HttpResponse:
    assets = rewritten_css()[1]
    if number >= len(assets):
        raise Http404("no such asset")
    media_type, body = assets[number]
    response = HttpResponse(body, content_type=media_type)
    response["Cache-Control"] = "public, max-age=86400"
    return response


class DocsPage(SpectacularSwaggerSplitView):
    template_name = "gateway_api/docs.html"
    title = "PGP payout backend API"

    @staticmethod
    def _swagger_ui_resource(filename: Any) -> Any:
        if filename == "swagger-ui.css":
            return reverse("gateway-api-docs-css")
        return SpectacularSwaggerSplitView._swagger_ui_resource(filename)

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response: Response = super().get(request, *args, **kwargs)
        if isinstance(response.data, dict) and "swagger_ui_css" in response.data:
            response.data["docs_css"] = static("gateway_api/docs.css")
        return response
