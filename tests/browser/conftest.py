"""The staff web app in a real browser: Debian's Chromium driven by Playwright, against the app
served by uvicorn on a free port (``callcenter.testing.webserver``), on the session's
PostgreSQL database and the test's Redis database, both emptied before each test.

One browser for the session, a fresh context (cookies, storage) for each test. Screenshots go
to ``test-artifacts/screenshots/``; the terminal summary says where, and which pages were not
there to test yet.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.settings import Settings
from callcenter.testing.webserver import LiveServer
from callcenter.web.app import create_app
from tests.browser.support import DESKTOP, RUN, SHOTS, Site, Watch
from tests.conftest import make_settings, truncate, unavailable

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium (never a downloaded one), launched once for the whole session."""
    if not CHROMIUM.exists():
        unavailable(f"the browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    if SHOTS.exists():
        shutil.rmtree(SHOTS)  # this run's screenshots only
    SHOTS.mkdir(parents=True)
    RUN.used_browser = True
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
def live_settings(tmp_path_factory: pytest.TempPathFactory, pg_database: str, redis_db: int) -> Settings:
    tmp = tmp_path_factory.mktemp("browser")
    (tmp / "prompts").mkdir()
    # cookie_secure stays at its default (on outside development): Chromium keeps Secure
    # cookies from http://localhost, a secure context, so the tests see production's cookies
    return make_settings(tmp, pg_database, redis_db, prompts_dir=tmp / "prompts")


@pytest.fixture(scope="session")
async def live_server(live_settings: Settings, pg_engine: AsyncEngine) -> AsyncIterator[LiveServer]:
    """The app in uvicorn, in its own thread; ``pg_engine`` has migrated the database.

    Responses are held until the app has committed (``HoldResponses``): the app commits after
    answering, which ``test_a_change_is_saved_before_the_browser_follows_the_redirect`` shows
    on its own, and which would otherwise make every form-then-redirect step here flaky."""
    import asyncio

    server = LiveServer(create_app(live_settings), hold_responses=True)
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture
async def site(
    live_server: LiveServer, live_settings: Settings, pg_engine: AsyncEngine, redis: aioredis.Redis
) -> Site:
    """The live app on empty tables and an empty Redis database (the ``redis`` fixture)."""
    await truncate(pg_engine)
    return Site(live_server, pg_engine, live_settings)


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A new browser profile for the test, at a laptop's size."""
    ctx = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
async def page(context: BrowserContext, watch: Watch) -> Page:
    tab = await context.new_page()
    watch.attach(tab)
    return tab


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RUN.used_browser:
        return
    shots = sorted(SHOTS.glob("*.png")) if SHOTS.exists() else []
    terminalreporter.section("browser tests")
    terminalreporter.write_line(f"{len(shots)} screenshots in {SHOTS}")
    for path, why in sorted(RUN.skipped_pages.items()):
        terminalreporter.write_line(f"page not tested: {path} ({why})")
