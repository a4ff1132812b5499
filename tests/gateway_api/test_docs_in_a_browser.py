"""The API's docs page in a real headless Chromium against the live server: Swagger UI renders
every operation from the served schema, under the 'self'-only CSP, with no violation or error."""

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from ..browser import Page, browser  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_docs_page_renders_every_operation_without_a_csp_violation(
    browser: WebDriver,  # noqa: F811 - the fixture
    live_server: object,
    request: pytest.FixtureRequest,
) -> None:
    page = Page(browser, str(live_server), request.node.name)
    browser.get_log("browser")  # type: ignore[attr-defined]  # what earlier pages logged is not ours
    page.open("/api/v1/docs/")
    page.find(".opblock-summary-path", timeout=20)
    paths = {element.text.replace("\u200b", "") for element in page.all(".opblock-summary-path")}
    assert "/api/v1/clients/{client_id}/balance/" in paths
    assert len(page.all(".opblock")) >= 12
    page.screenshot("docs")
    assert page.severe_console_errors() == []
    violations = [
        entry["message"]
        for entry in browser.get_log("browser")  # type: ignore[attr-defined]
        if "Content Security Policy" in entry["message"]
    ]
    assert violations == []
