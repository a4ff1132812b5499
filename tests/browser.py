"""A real headless Chromium (Debian's chromium and chromium-driver), driven with selenium, for the
tests that check a page as a person sees it. Screenshots go to `artifacts/screenshots/` (ignored
by git; CI keeps the folder as its artefact)."""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import PROJECT_ROOT

SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _found(names: tuple[str, ...]) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    binary, driver = _found(CHROMIUM_NAMES), _found(("chromedriver",))
    if binary is None or driver is None:
        pytest.fail("Chromium and chromedriver are needed (make test installs them with apt; see docs/development.md)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to read the page's own errors
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    chrome.implicitly_wait(0)
    try:
        yield chrome
    finally:
        chrome.quit()


class Page:
    """One browser session against the live server: go, read, click, and keep a screenshot of
    every page it looks at."""

    def __init__(self, browser: WebDriver, base_url: str, test_name: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.folder = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", test_name)
        shutil.rmtree(self.folder, ignore_errors=True)  # this run's pictures only
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shots = 0

    def open(self, path: str) -> None:
        self.browser.get(self.base_url + path)

    def find(self, css: str, timeout: float = 10) -> WebElement:
        return WebDriverWait(self.browser, timeout).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
        )

    def all(self, css: str) -> list[WebElement]:
        return self.browser.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str = "body") -> str:
        return self.find(css).text

    def scroll_to(self, css: str) -> WebElement:
        element = self.find(css)
        self.browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        return element

    def click(self, css: str) -> None:
        self.find(css).click()

    def screenshot(self, name: str) -> Path:
        self.shots += 1
        path = self.folder / f"{self.shots:02d}-{name}.png"
        self.browser.save_screenshot(str(path))
        return path

    def log_in(self, username: str, password: str) -> None:
        self.browser.delete_all_cookies()
        self.open("/admin/login/?next=/admin/")
        self.find("#id_username").send_keys(username)
        self.find("#id_password").send_keys(password)
        self.screenshot("login")
        self.click("input[type=submit], button[type=submit]")
        self.find("#user-tools")

    def severe_console_errors(self) -> list[str]:
        """Errors the page itself raised: a script that failed, a CSP refusal, a missing file."""
        entries = self.browser.get_log("browser")  # type: ignore[attr-defined]  # Chrome-only method
        # The browser asks for /favicon.ico on its own; its absence is no error of a page.
        return [e["message"] for e in entries if e["level"] == "SEVERE" and "/favicon.ico" not in e["message"]]
