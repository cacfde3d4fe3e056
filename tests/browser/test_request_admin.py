"""The service requests' admin pages in a real browser, in Arabic (right to left) and English:
an admin edits a citizen SMS text (a broken placeholder refused, a preview with its SMS count,
then saved), and a supervisor corrects the holiday calendar and drops the correction.
Screenshots of each page in both languages, axe-core on each, and no Content-Security-Policy
violation or script error."""

from __future__ import annotations

from playwright.async_api import Page
from sqlalchemy import select

from callcenter import models
from tests.browser.support import Site, Watch, in_both_languages, screenshot, switch_language, translated
from tests.browser.test_requests import log_in_with_code
from tests.integration.test_request_admin_pages import next_working_day
from tests.integration.test_request_pages import make, seed

TEXT = models.table(models.RequestText)
CORRECTION = models.table(models.HolidayCorrection)


async def test_an_admin_edits_a_citizen_text_with_a_preview_in_arabic_and_english(
    page: Page, site: Site, watch: Watch
) -> None:
    await seed(site.engine)
    await log_in_with_code(page, site, "admin")
    await page.click("nav.nav a[href='/admin/requests/texts']")
    await page.wait_for_url("**/admin/requests/texts")
    row = page.locator("tr[data-text='texts.created']")
    assert await row.locator("[data-language='ar'] [data-encoding='ucs2']").count() == 1
    await in_both_languages(page, "admin-request-texts", axe=True)

    async with page.expect_navigation():
        await row.locator("a").click()
    await switch_language(page, "ar")
    assert await page.get_attribute("html", "dir") == "rtl"
    await page.fill("#f-ar", "1415: تم تسجيل طلبكم {refrence}.")
    async with page.expect_navigation():
        await page.click("#edit button[value=save]")
    error = await page.inner_text("#edit .field--error .field__error")
    assert "{refrence}" in error and "عنصر نائب غير معروف" in error
    await screenshot(page, "admin-request-text-error")

    await page.fill("#f-ar", "1415: سُجّل طلبكم ({category}) برقم {reference}، والموعد المتوقع {due}.")
    async with page.expect_navigation():
        await page.click("#edit button[value=preview]")
    bubble = await page.inner_text("#preview [data-language='ar'] .sms-bubble")
    assert bubble == "1415: سُجّل طلبكم (إنارة الشوارع) برقم 1415-4217-0393، والموعد المتوقع 2026-03-17."
    assert await page.get_attribute("#preview [data-language='ar'] [data-segments]", "data-segments") == "2"
    async with page.expect_navigation():
        await page.click("#edit button[value=save]")
    assert translated(
        "The text is saved: citizens get it from their next message.", "ar"
    ) in await page.inner_text(".notice")
    await switch_language(page, "en")
    await in_both_languages(page, "admin-request-text", axe=True)
    async with site.engine.connect() as conn:
        saved = (await conn.execute(select(TEXT.c.name, TEXT.c.ar))).one()
    assert saved.name == "created" and saved.ar.startswith("1415: سُجّل طلبكم")
    assert not watch.csp and not watch.errors, watch.csp + watch.errors


async def test_a_supervisor_corrects_the_holiday_calendar_in_arabic_and_english(
    page: Page, site: Site, watch: Watch
) -> None:
    await seed(site.engine)
    await make(site.engine, site.settings, "benghazi")
    await log_in_with_code(page, site, "supervisor")
    await page.goto(site.url("/admin/requests/holidays"))
    assert await page.locator("#holidays-table tbody tr[data-day]").count() > 5
    await in_both_languages(page, "admin-holidays", axe=True)

    await switch_language(page, "ar")
    assert await page.get_attribute("html", "dir") == "rtl"
    day = await next_working_day(site.engine, site.settings)
    await page.fill("#f-day", day.isoformat())
    await page.check("input[name=action][value=add]")
    await page.fill("#f-name", "يوم حداد وطني")
    async with page.expect_navigation():
        await page.click("#correct button[type=submit]")
    assert translated("The day off is added to the calendar.", "ar") in await page.inner_text(".notice")
    assert "1" in await page.inner_text("#recomputed")  # the one open request's clocks
    added = page.locator(f"#corrections-table tr[data-day='{day.isoformat()}']")
    assert "يوم حداد وطني" in await added.inner_text()
    await screenshot(page, "admin-holidays-corrected")

    async with page.expect_navigation():
        await added.locator("button").click()
    assert translated(
        "The correction is dropped: the estimated calendar applies to that day again.", "ar"
    ) in await page.inner_text(".notice")
    async with site.engine.connect() as conn:
        assert (await conn.execute(select(CORRECTION.c.id))).first() is None
    assert not watch.csp and not watch.errors, watch.csp + watch.errors
