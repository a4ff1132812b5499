"""The committed OpenAPI schema is the code's, and the docs page runs under the strict CSP with
nothing but our own files."""

import re
from html.parser import HTMLParser

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client as HttpClient

from ..conftest import PROJECT_ROOT

SCHEMA = PROJECT_ROOT / "docs" / "openapi.yaml"
REGENERATE = "manage.py spectacular --file docs/openapi.yaml --validate --fail-on-warn"


def test_the_committed_schema_is_the_one_the_code_generates(tmp_path: object) -> None:
    generated = tmp_path / "openapi.yaml"  # type: ignore[operator]
    call_command("spectacular", "--file", str(generated), "--validate", "--fail-on-warn")
    assert generated.read_text() == SCHEMA.read_text(), f"docs/openapi.yaml drifted from the code: run {REGENERATE}"


def test_the_schema_is_served_without_a_key() -> None:
    answer = HttpClient().get("/api/v1/schema/")
    assert answer.status_code == 200
    assert b"/api/v1/clients/" in answer.content


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if "style" in values or any(name.startswith("on") for name in values):
            self.inline.append(f"<{tag}> with an inline style or handler")
        if tag in ("script", "style"):
            self._in = tag
        url = values.get("src") or (values.get("href") if tag == "link" else None)
        if url:
            self.urls.append(url)

    def handle_data(self, data: str) -> None:
        if self._in and data.strip():
            self.inline.append(f"inline <{self._in}>")

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def test_the_docs_page_loads_only_our_own_files_under_the_strict_csp() -> None:
    http = HttpClient()
    page = http.get("/api/v1/docs/")
    assert page.status_code == 200
    policy = page["Content-Security-Policy"]
    for directive in ("script-src 'self'", "style-src 'self'", "img-src 'self'"):
        assert directive in policy
    assert "unsafe" not in policy
    assert "data:" not in policy
    found = _Resources()
    found.feed(page.content.decode())
    assert found.inline == []
    assert found.urls
    assert all(url.startswith("/") and not url.startswith("//") for url in found.urls)
    for url in found.urls:
        if url.startswith(settings.STATIC_URL):  # served by whitenoise (or the web server), from these files
            assert finders.find(url.removeprefix(settings.STATIC_URL)), url
        else:
            assert http.get(url).status_code == 200, url
    # Swagger UI's stylesheet, served without its data: images (each at a URL of ours instead).
    css = http.get("/api/v1/docs/swagger-ui.css").content.decode()
    assert "data:" not in css
    assets = re.findall(r'url\("(/api/v1/docs/assets/\d+)"\)', css)
    assert assets
    assert all(http.get(asset).status_code == 200 for asset in set(assets))
    script = http.get("/api/v1/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
