"""Browser-test plumbing, loaded as a pytest plugin by `tests/conftest.py`.

Fixtures
--------
`browser` (session scope, session event loop)
    Debian's Chromium (/usr/bin/chromium, or $BESAFE_CHROMIUM) driven by
    `playwright.async_api`; never a downloaded browser. Launched once per test
    session. When Chromium (or Playwright) is missing the test is skipped, unless
    BESAFE_REQUIRE_BROWSER=1, when it fails loudly instead.

`browser_context` (function scope, session event loop)
    A fresh context (375x740, nothing shared between tests) in which every
    request to anything but the local test server is answered with a tiny
    neutral page, so no test ever reaches the internet (Quick Exit lands there).

`live_app_factory` / `live_app` (function scope, plain fixtures: no event loop)
    The REAL application from `web.app.create_app`, with a fresh data directory
    under `tmp_path` (SQLite), served on a free 127.0.0.1 port by its own thread
    and event loop, as `main.py run` would serve it (so it works from a test in
    any loop scope). `live_app` is the base URL ("http://127.0.0.1:PORT");
    `live_app_factory(**settings)` starts one with other settings and returns a
    `LiveApp(url, settings)`. Stopped (cleanup context and all) after the test.

`serve_app` (function scope)
    `serve_app(make_app) -> url`: the same, for any app (e.g. a fake dispatcher).

Loop scope: Playwright objects belong to the event loop that made them, so
every async test that uses `browser` (or `browser_context`) must run in the
session loop. This plugin marks such tests `asyncio(loop_scope="session")` and
`browser` at collection, so test modules need not remember to.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from aiohttp import web

from config.settings import Settings

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Route

CHROMIUM = Path(os.environ.get("BESAFE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REQUIRE_ENV = "BESAFE_REQUIRE_BROWSER"
MOBILE_VIEWPORT = {"width": 375, "height": 740}
TEST_QUICK_EXIT_URL = "https://example.org/weather"
NEUTRAL_PAGE = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Weather</title></head>"
    "<body><h1>Weather forecast</h1><p>Sunny spells, light winds.</p></body></html>"
)
BROWSER_FIXTURES = frozenset({"browser", "browser_context"})
SERVER_START_SECONDS = 60.0


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_ENV}=1, so browser tests must run)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if not names & BROWSER_FIXTURES:
            continue
        item.add_marker(pytest.mark.browser)
        function = getattr(item, "obj", None)
        marker = item.get_closest_marker("asyncio")
        has_scope = marker is not None and ("loop_scope" in marker.kwargs)
        if inspect.iscoroutinefunction(function) and not has_scope:
            # First in the list, so that it wins over the plain marker of auto mode.
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


# ---------------------------------------------------------------- the browser


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        _unavailable("the playwright package is not installed")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser_context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(
        viewport=MOBILE_VIEWPORT, locale="en-GB", service_workers="block"
    )

    async def offline(route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost", "::1") or route.request.url.startswith(
            ("data:", "about:", "blob:")
        ):
            await route.continue_()
        else:  # never the internet: a tiny neutral page stands in for any other site
            await route.fulfill(status=200, content_type="text/html", body=NEUTRAL_PAGE)

    await context.route("**/*", offline)
    try:
        yield context
    finally:
        await context.close()


# ---------------------------------------------------------------- serving an app


@dataclass(frozen=True)
class LiveApp:
    url: str  # "http://127.0.0.1:PORT", no trailing slash
    settings: Settings


class ServerThread:
    """An aiohttp app on an AppRunner, in a thread with its own event loop.

    `make_app` is called in that thread, so the app and everything its cleanup
    context opens belong to the server's loop, never to a test's.
    """

    def __init__(self, make_app: Callable[[], web.Application]) -> None:
        self._make_app = make_app
        self._ready = threading.Event()
        self._port: int | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="besafe-test-server", daemon=True)

    def start(self) -> str:
        """Start serving; the base URL."""
        self._thread.start()
        if not self._ready.wait(SERVER_START_SECONDS):
            raise RuntimeError("the test server did not start in time")
        if self._error is not None:
            self._thread.join(SERVER_START_SECONDS)
            raise RuntimeError("the test server failed to start") from self._error
        return f"http://127.0.0.1:{self._port}"

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(SERVER_START_SECONDS)
        if self._thread.is_alive():  # pragma: no cover - a hang in cleanup
            raise RuntimeError("the test server did not stop")
        if self._error is not None:
            raise RuntimeError("the test server failed while stopping") from self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # reported to the test thread
            self._error = error
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self._make_app(), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._port = runner.addresses[0][1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()


@pytest.fixture
def serve_app() -> Iterator[Callable[[Callable[[], web.Application]], str]]:
    """`serve_app(make_app)` serves any app (e.g. one with a fake dispatcher); its URL."""
    servers: list[ServerThread] = []

    def serve(make_app: Callable[[], web.Application]) -> str:
        server = ServerThread(make_app)
        url = server.start()
        servers.append(server)
        return url

    yield serve
    for server in reversed(servers):
        server.stop()


# ---------------------------------------------------------------- the real app


def live_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": "",  # SQLite under data_dir, whatever the environment says
        "log_format": "text",
        "environment": "development",
        "telegram_token": None,
        "quick_exit_url": TEST_QUICK_EXIT_URL,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def live_app_factory(
    tmp_path: Path, serve_app: Callable[[Callable[[], web.Application]], str]
) -> Callable[..., LiveApp]:
    count = 0

    def start(**overrides: Any) -> LiveApp:
        nonlocal count
        count += 1
        data_dir = overrides.pop("data_dir", tmp_path / f"live-app-{count}")
        settings = live_settings(data_dir, **overrides)

        def make_app() -> web.Application:
            from web.app import create_app

            return create_app(settings)

        return LiveApp(serve_app(make_app), settings)

    return start


@pytest.fixture
def live_app(live_app_factory: Callable[..., LiveApp]) -> str:
    """The base URL of the real app (create_app) with fresh data, e.g. http://127.0.0.1:PORT."""
    return live_app_factory().url
