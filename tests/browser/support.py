"""What the browser tests share: logging in through the form, switching the language with the
masthead's button, full-page screenshots named ``<page>-<lang>.png``, and axe-core runs.

axe-core is put into the page with ``page.evaluate(source)``: Playwright evaluates through the
DevTools protocol, which the page's Content-Security-Policy does not govern, so the page keeps
its real CSP (``script-src 'self'``) while axe runs. ``page.add_script_tag`` would insert an
inline ``<script>``, which that CSP rightly blocks, and ``bypass_csp=True`` would switch the CSP
off for the whole context and hide the violations the tests look for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import ConsoleMessage, Page, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.settings import Settings
from callcenter.testing.webserver import LiveServer
from callcenter.web.i18n import current_language, gettext, ngettext
from tests.webapp import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
DESKTOP = {"width": 1366, "height": 768}
TABLET = {"width": 768, "height": 1024}
#: axe impacts that fail a test (minor and moderate ones are left to review)
BLOCKING = ("serious", "critical")


@dataclass
class Run:
    """What the session saw, for the terminal summary."""

    used_browser: bool = False
    skipped_pages: dict[str, str] = field(default_factory=dict)  # path -> why


RUN = Run()


@dataclass(frozen=True)
class Site:
    """The live app: its server, the database it uses, its settings."""

    server: LiveServer
    engine: AsyncEngine
    settings: Settings

    def url(self, path: str = "/") -> str:
        return self.server.url(path)


@dataclass
class Watch:
    """Console errors and uncaught exceptions of one page, kept with the URL they came from."""

    csp: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        if "Content Security Policy" in text:
            self.csp.append(f"{page.url}: {text}")


def translated(message: str, language: str) -> str:
    """``message`` as the page shows it in ``language`` (the catalogue, or the English id)."""
    token = current_language.set("en" if language == "en" else "ar")
    try:
        return gettext(message)
    finally:
        current_language.reset(token)


def translated_plural(singular: str, plural: str, n: int, language: str) -> str:
    token = current_language.set("en" if language == "en" else "ar")
    try:
        return ngettext(singular, plural, n)
    finally:
        current_language.reset(token)


def squash(text: str) -> str:
    """Whitespace folded, for comparing what a page shows with what the engine wrote."""
    return re.sub(r"\s+", " ", text).strip()


def path_of(page: Page) -> str:
    from urllib.parse import urlsplit

    return urlsplit(page.url).path


async def language_of(page: Page) -> str:
    return str(await page.get_attribute("html", "lang"))


async def log_in(page: Page, site: Site, email: str, password: str = PASSWORD) -> Response | None:
    """Fill the login form and submit it; returns the answer to the POST."""
    if path_of(page) != "/login":
        await page.goto(site.url("/login"))
    await page.fill("#f-email", email)
    await page.fill("#f-password", password)
    async with page.expect_response(_is_post("/login")) as answer:
        await page.click("main form[action='/login'] button[type=submit]")
    await page.wait_for_load_state()
    return await answer.value


async def log_out(page: Page) -> None:
    async with page.expect_navigation():
        await page.click("form[action='/logout'] button")


async def switch_language(page: Page, language: str) -> None:
    """Press the masthead's language button (a POST that comes back to the same path; for a
    logged-in user it is also saved on the account)."""
    assert await language_of(page) != language, f"the page is already in {language}"
    async with page.expect_navigation():
        await page.click(f".lang-switch button[name=language][value={language}]")
    assert await language_of(page) == language


def _is_post(path: str) -> Any:
    def match(response: Response) -> bool:
        return response.request.method == "POST" and response.url.split("?", 1)[0].endswith(path)

    return match


async def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG ``<name>-<lang>.png`` in the one screenshots folder."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    target = SHOTS / f"{name}-{await language_of(page)}.png"
    await page.screenshot(path=str(target), full_page=True)
    return target


@cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now, every impact."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(_axe_source())
    result: list[dict[str, Any]] = await page.evaluate(
        """async () => {
            const results = await axe.run(document, {resultTypes: ['violations']});
            return results.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary,
                                          html: n.html.slice(0, 200)})),
            }));
        }"""
    )
    return result


def describe(violations: list[dict[str, Any]], where: str) -> str:
    """The violations as a reviewer reads them: rule, impact, help, and each element."""
    lines = []
    for v in violations:
        lines.append(f"{where}: [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:5]:
            lines.append(f"    {node['target']}  {node['html']}")
            for detail in str(node["summary"] or "").splitlines():
                lines.append(f"        {detail}")
        if len(v["nodes"]) > 5:
            lines.append(f"    … and {len(v['nodes']) - 5} more elements")
    return "\n".join(lines)


async def blocking_violations(page: Page, name: str) -> str:
    """'' when axe finds nothing serious or critical; else the readable list."""
    found = [v for v in await axe_violations(page) if v["impact"] in BLOCKING]
    return describe(found, f"{name} ({await language_of(page)}, {path_of(page)})") if found else ""


async def assert_accessible(page: Page, name: str) -> None:
    problems = await blocking_violations(page, name)
    assert not problems, "axe-core found serious or critical violations:\n" + problems


async def in_both_languages(page: Page, name: str, *, axe: bool = False) -> None:
    """Screenshot (and check) the page, switch the language, do it again, switch back.

    Only for pages reached by GET: the switch comes back to the same path."""
    first = await language_of(page)
    other = "en" if first == "ar" else "ar"
    for language in (first, other):
        if language != first:
            await switch_language(page, language)
        await screenshot(page, name)
        if axe:
            await assert_accessible(page, name)
    await switch_language(page, first)
