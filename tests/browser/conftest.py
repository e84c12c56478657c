"""Browser fixtures: the real service under gunicorn and the distribution's Chromium driven by Playwright.

No browser is downloaded: Playwright (the Python package) drives /usr/bin/chromium, and the tests
skip (or fail in CI, GATEWAY_REQUIRE_SYSTEM_TESTS=1) when it is missing.
"""
from __future__ import annotations

import pytest

from tests.conftest import CLIENT_KEY
from tests.support.gateway_process import GatewayProcess
from tests.support.system import require_program

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return require_program("chromium", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def playground_gateway(tmp_path_factory):
    """The service with only the local provider live; short keep-alives so streams really trickle."""
    env = {"GATEWAY_API_KEYS": CLIENT_KEY, "GATEWAY_STREAM_KEEPALIVE_SECONDS": "0.05"}
    process = GatewayProcess(env, tmp_path_factory.mktemp("gunicorn-playground") / "gunicorn.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def browser(chromium_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()


class PageWatch:
    """What a page did: every request it made, console messages and uncaught script errors."""

    def __init__(self, page):
        self.requests = []
        self.console = []
        self.errors = []
        # a lambda: Playwright tags handlers with an attribute, which builtins like list.append refuse
        page.on("request", lambda request: self.requests.append(request))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def api_calls(self):
        return [r for r in self.requests if "/v1/" in r.url]

    def csp_violations(self):
        return [m for m in self.console if "Content Security Policy" in m or "Content-Security-Policy" in m]


@pytest.fixture
def context(browser, playground_gateway):
    context = browser.new_context(base_url=playground_gateway.url, accept_downloads=True,
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    yield page
    page.close()


@pytest.fixture
def watch(page) -> PageWatch:
    return PageWatch(page)
