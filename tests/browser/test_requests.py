"""Service requests in a real browser: an officer logs in, lands on their work queue, sees
only their municipality's requests, opens one and changes its status with a public note,
and the citizen's SMS goes out through the loopback gateway; a supervisor sees an overdue
request escalated to the ministry. Screenshots of each page in Arabic and English, axe-core
on each, and no Content-Security-Policy violation or script error."""

from __future__ import annotations

import pyotp
import redis.asyncio as aioredis
from playwright.async_api import Page
from sqlalchemy import select

from callcenter import models
from callcenter.requests.recompute import recompute_sla
from callcenter.sms.gateways.loopback import read_outbox
from tests.browser.support import Site, Watch, in_both_languages, log_in, path_of, translated
from tests.integration.test_request_pages import OTHER, REPORTER, WEEK, make, seed
from tests.webapp import make_user

MESSAGE = models.table(models.Message)


async def log_in_with_code(page: Page, site: Site, role: str) -> None:
    """The ministry's staff log in with their password and then their TOTP code."""
    secret = pyotp.random_base32()
    user = await make_user(site.engine, role, totp_secret=secret, language="en")
    await log_in(page, site, user.email)
    await page.fill("#f-code", pyotp.TOTP(secret).now())
    async with page.expect_navigation():
        await page.click("main form[action='/login/totp'] button[type=submit]")


async def test_an_officer_changes_a_requests_status_and_the_citizen_is_texted(
    page: Page, site: Site, watch: Watch, redis: aioredis.Redis
) -> None:
    places = await seed(site.engine)
    ours = await make(site.engine, site.settings, "benghazi", language="ar")
    theirs = await make(site.engine, site.settings, "misrata", phone=OTHER)
    officer = await make_user(
        site.engine, "officer", name="Salem Officer", municipalities=[places["benghazi"]]
    )

    await log_in(page, site, officer.email)
    assert path_of(page) == "/requests"  # an officer's home page
    rows = page.locator("#queue tbody tr")
    assert await rows.count() == 1
    assert await rows.first.get_attribute("data-reference") == ours.reference
    assert theirs.reference not in await page.inner_text("main")
    await in_both_languages(page, "requests-queue", axe=True)

    async with page.expect_navigation():
        await page.click(f"#queue a[href='/requests/{ours.reference}']")
    assert path_of(page) == f"/requests/{ours.reference}"
    assert await page.locator("#due-date").is_visible()
    await in_both_languages(page, "request", axe=True)

    await page.select_option("#f-to", "acknowledged")
    await page.fill("#f-note", "الفريق سيصل يوم الأحد")
    assert await page.is_checked("#status-form input[name=public]")
    async with page.expect_navigation():
        await page.click("#status-form button[type=submit]")
    notice = await page.inner_text(".notice")
    assert translated("The status is changed.", "ar") in notice
    assert translated("The citizen is told by SMS.", "ar") in notice
    history = page.locator("#history-table tbody tr").last
    assert await history.get_attribute("data-public") == "yes"
    assert "الفريق سيصل يوم الأحد" in await history.inner_text()

    items, _ = await read_outbox(redis, "0-0", 100, None)
    texts = [sms for _id, sms, _gid in items if sms.to == REPORTER]
    assert len(texts) == 1
    assert ours.reference in texts[0].body and "الفريق سيصل يوم الأحد" in texts[0].body
    async with site.engine.connect() as conn:
        status = (
            await conn.execute(select(MESSAGE.c.status).where(MESSAGE.c.phone == REPORTER))
        ).scalar_one()
    assert status == "sent"
    assert not watch.csp and not watch.errors, watch.csp + watch.errors


async def test_a_supervisor_sees_an_overdue_request_escalated(page: Page, site: Site, watch: Watch) -> None:
    await seed(site.engine)
    late = await make(site.engine, site.settings, "misrata", days_ago=30)
    await make(site.engine, site.settings, "benghazi", phone=OTHER)
    await recompute_sla(site.engine, WEEK)
    await log_in_with_code(page, site, "supervisor")
    await page.goto(site.url("/requests"))
    first = page.locator("#queue tbody tr").first
    assert await first.get_attribute("data-reference") == late.reference  # overdue first
    assert "row--overdue" in (await first.get_attribute("class") or "")

    await page.click("a[href='/requests/municipalities']")
    await page.wait_for_url("**/requests/municipalities")
    escalated = page.locator(f"#escalated-table tr[data-reference='{late.reference}']")
    assert await escalated.count() == 1
    assert "Overdue — escalated to the ministry" in (await escalated.text_content() or "")
    assert await page.locator("#ranking tbody tr").count() == 2
    await in_both_languages(page, "requests-municipalities", axe=True)
    assert not watch.csp and not watch.errors, watch.csp + watch.errors


async def test_an_admin_edits_a_category_of_the_service_catalogue(
    page: Page, site: Site, watch: Watch
) -> None:
    await seed(site.engine)
    await log_in_with_code(page, site, "admin")

    await page.goto(site.url("/admin/catalogue"))
    await in_both_languages(page, "admin-catalogue", axe=True)
    async with page.expect_navigation():
        await page.click("#categories a >> nth=1")  # waste collection, keypad 2
    await page.fill("#f-resolution_hours", "28")
    async with page.expect_navigation():
        await page.click(
            "main form[action^='/admin/catalogue/categories/']:not([action$='/overrides']) button"
        )
    assert translated("The category is saved.", "en") in await page.inner_text(".notice")
    assert await page.input_value("#f-resolution_hours") == "28"
    await in_both_languages(page, "admin-catalogue-category", axe=True)
    category = models.table(models.ServiceCategory)
    async with site.engine.connect() as conn:
        hours = await conn.execute(
            select(category.c.resolution_hours).where(category.c.key == "waste_collection")
        )
    assert hours.scalar_one() == 28.0
    assert not watch.csp and not watch.errors, watch.csp + watch.errors
