"""Every page an admin or an operator can open, in Arabic and English: a screenshot, an axe-core
run (serious and critical violations fail), and no Content-Security-Policy violation or
script error in the console. A tablet-sized window keeps the menu and the tables usable."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest
from playwright.async_api import Browser, Page
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.accounts.roles import Role
from callcenter.campaigns.service import Audience, create_campaign
from callcenter.web.policy import POLICIES
from tests.browser.support import (
    RUN,
    TABLET,
    Site,
    Watch,
    blocking_violations,
    language_of,
    log_in,
    path_of,
    screenshot,
    switch_language,
)
from tests.factories import make_citizens, make_inquiry
from tests.webapp import make_user

#: The pages of this issue (the route, as web/policy.py names it, and the screenshot's name),
#: in the menu's order after the login and the account; then the pages of one row each.
PAGES = (
    ("/login", "login"),
    ("/account", "account"),
    ("/account/totp", "account-totp"),
    ("/admin/users", "admin-users"),
    ("/admin/municipalities", "admin-municipalities"),
    ("/admin/audit", "admin-audit"),
    ("/inquiries", "inquiries"),
    ("/inquiries/new", "inquiries-new"),
    ("/campaigns", "campaigns"),
    ("/prompts", "prompts"),
    ("/campaigns/new", "campaigns-new"),
    ("/campaigns/{campaign_id}", "campaign"),
    ("/inquiries/{slug}", "inquiry"),
    ("/admin/users/{user_id}", "admin-user"),
    ("/admin/municipalities/{municipality_id}", "admin-municipality"),
    ("/results", "results-list"),
    ("/results/{slug}", "results-inquiry"),
    ("/results/{slug}/rates", "results-inquiry-rates"),
    ("/admin/margins", "margins"),
)
M = models.Municipality.__table__  # type: ignore[attr-defined]
#: Answers of a page not built yet (no route: 404; only its POST exists: 405).
NOT_BUILT = (404, 405)


def shot_name(name: str, role: str) -> str:
    return name if role == "admin" else f"{role}-{name}"


async def some_data(site: Site) -> dict[str, Any]:
    """Rows for the lists to show: an inquiry, citizens in a municipality, a draft campaign;
    returns the ids the pages of one row need."""
    await make_inquiry(site.engine)
    await make_citizens(site.engine, 3, municipality="TRP")
    async with AsyncSession(site.engine, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(
            session, inquiry="return-of-life-roads", audience=Audience(), actor="test"
        )
        municipality = await session.scalar(select(M.c.id).where(M.c.code == "TRP"))
    return {"campaign_id": campaign.id, "slug": "return-of-life-roads", "municipality_id": municipality}


async def log_in_as(page: Page, site: Site, role: str) -> models.User:
    """A full session for ``role`` (an admin's second factor given)."""
    secret = pyotp.random_base32() if Role(role) is Role.admin else None
    user = await make_user(site.engine, role, totp_secret=secret)
    answer = await log_in(page, site, user.email)
    status = answer.status if answer is not None else 0
    assert status == 303, f"the login failed: HTTP {status}: {await page.inner_text('main')}"
    if secret is not None:
        assert path_of(page) == "/login/totp", page.url + " " + await page.inner_text("main")
        await page.fill("#f-code", pyotp.TOTP(secret).now())
        async with page.expect_navigation():
            await page.click("main form[action='/login/totp'] button[type=submit]")
    assert path_of(page) != "/login", f"the login did not hold: {page.url}"
    return user


def grouped(kind: str, found: list[str]) -> list[str]:
    """One line per distinct message, with the pages it came from."""
    pages: dict[str, list[str]] = {}
    for line in found:
        url, _, message = line.partition(": ")
        pages.setdefault(message, [])
        if (where := url.split("/", 3)[-1]) not in pages[message]:
            pages[message].append(where)
    return [f"{kind} on /{', /'.join(where)}: {message}" for message, where in pages.items()]


def allowed(path: str, role: str) -> bool:
    policy = POLICIES.get(("GET", path))
    return policy is not None and (policy.kind == "public" or policy.allows(Role(role)))


@pytest.mark.parametrize("role", ["admin", "operator"])
async def test_every_page_of_the_role_is_accessible_in_both_languages(
    page: Page, site: Site, watch: Watch, role: str
) -> None:
    ids = await some_data(site)
    problems: list[str] = []
    visited: list[str] = []

    async def check(path: str, name: str) -> None:
        answer = await page.goto(site.url(path))
        status = answer.status if answer is not None else 0
        if status in NOT_BUILT:
            RUN.skipped_pages[path] = f"HTTP {status}: not built yet"
            return
        if status != 200 or path_of(page) != path:
            problems.append(f"{path}: HTTP {status}, at {path_of(page)} (expected 200 at {path})")
            return
        RUN.skipped_pages.pop(path, None)
        visited.append(f"{path} ({await language_of(page)})")
        await screenshot(page, name)
        if found := await blocking_violations(page, name):
            problems.append(found)

    if role == "admin":  # the login page, before logging in: same for every role
        await check("/login", "login")
        await switch_language(page, "en")
        await check("/login", "login")
        await switch_language(page, "ar")
    user = await log_in_as(page, site, role)
    ids["user_id"] = user.id
    pages = [(route.format(**ids), name) for route, name in PAGES[1:] if allowed(route, role)]
    for language in ("ar", "en"):
        if await language_of(page) != language:
            await page.goto(site.url("/account"))
            await switch_language(page, language)
        for path, name in pages:
            await check(path, shot_name(name, role))
    problems += grouped("CSP violation", watch.csp)
    problems += grouped("script error", watch.errors)
    assert visited, "no page answered 200"
    assert not problems, f"{len(problems)} problems on {len(visited)} pages:\n" + "\n".join(problems)


async def test_on_a_tablet_the_menu_and_a_table_fit_without_scrolling_the_page_sideways(
    browser: Browser, site: Site
) -> None:
    context = await browser.new_context(viewport=TABLET)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        await some_data(site)
        await log_in_as(page, site, "admin")
        candidates = ("/admin/users", "/admin/audit", "/campaigns", "/inquiries")
        table_page = None
        for path in candidates:
            answer = await page.goto(site.url(path))
            if answer is not None and answer.status == 200 and await page.locator("table").count():
                table_page = path
                break
        assert table_page is not None, f"none of {', '.join(candidates)} shows a table"
        for language in ("ar", "en"):
            if await language_of(page) != language:
                await switch_language(page, language)
            layout = await measure(page)
            where = f"{table_page} ({language}, {TABLET['width']}x{TABLET['height']})"
            assert layout["page_width"] <= layout["viewport"], f"{where}: the page scrolls sideways: {layout}"
            assert layout["nav_links"] > 0, f"{where}: no menu"
            assert not layout["nav_outside"], f"{where}: menu items off screen: {layout['nav_outside']}"
            assert layout["table_visible"], f"{where}: the table is not on screen: {layout}"
            assert layout["table_fits"] or layout["table_scrolls"], (
                f"{where}: the table is wider than the window and its wrapper does not scroll: {layout}"
            )
            await screenshot(page, "tablet-" + table_page.strip("/").replace("/", "-"))
        # the menu works at this size: its last item opens its page
        last = page.locator("nav.nav a").last
        target = await last.get_attribute("href")
        async with page.expect_navigation():
            await last.click()
        assert path_of(page) == target
    finally:
        await context.close()


async def measure(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(
        """() => {
            const viewport = document.documentElement.clientWidth;
            const links = [...document.querySelectorAll("nav.nav a")];
            const outside = links.filter(a => {
                const r = a.getBoundingClientRect();
                return r.width === 0 || r.left < -1 || r.right > viewport + 1;
            }).map(a => a.textContent.trim());
            const table = document.querySelector("table");
            const box = table.getBoundingClientRect();
            const wrap = table.closest(".table-wrap") || table.parentElement;
            const overflow = getComputedStyle(wrap).overflowX;
            return {
                viewport,
                page_width: document.documentElement.scrollWidth,
                nav_links: links.length,
                nav_outside: outside,
                table_visible: box.width > 0 && box.height > 0,
                table_fits: table.scrollWidth <= wrap.clientWidth + 1,
                table_scrolls: (overflow === "auto" || overflow === "scroll")
                    && wrap.getBoundingClientRect().right <= viewport + 1,
            };
        }"""
    )
    return result
