"""The call centre in a real browser: an agent goes ready on the desk, a call is offered (the ACD
driven from the test against the app's own Redis and database) and the caller's card appears
without a reload; the agent wraps up with a disposition and notes; meanwhile a supervisor's
wallboard follows every change live; an agent who closes the browser mid-call shows as lost
contact. Screenshots of both pages in Arabic and English, axe-core on each, and no
Content-Security-Policy violation or script error."""

from __future__ import annotations

import pyotp
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, BrowserContext, Page
from sqlalchemy import select

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.phones import mask_phone
from callcenter.routing.store import Caller
from callcenter.web.pages import live
from tests.browser.support import (
    DESKTOP,
    Site,
    Watch,
    in_both_languages,
    log_in,
    path_of,
    screenshot,
    translated,
)
from tests.factories import make_citizens
from tests.integration.test_campaign_pages import municipality
from tests.integration.test_desk_pages import offer, profile, queues
from tests.webapp import make_user

STILL_HERE = "() => window.stillTheSamePage"


async def another_window(browser: Browser, watch: Watch) -> tuple[BrowserContext, Page]:
    """A second person's browser (its own cookies), watched for script errors like the first."""
    context = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    window = await context.new_page()
    watch.attach(window)
    return context, window


async def second_factor(page: Page, secret: str) -> None:
    """The supervisor's TOTP code, after the password: on to their home page, the wallboard."""
    await page.fill("#f-code", pyotp.TOTP(secret).now())
    async with page.expect_navigation():
        await page.click("main form[action='/login/totp'] button[type=submit]")


async def text_of(page: Page, selector: str) -> str:
    return (await page.locator(selector).first.text_content() or "").strip()


async def test_an_agent_takes_a_call_while_a_supervisor_watches_the_wallboard(
    page: Page, browser: Browser, site: Site, watch: Watch, redis: aioredis.Redis
) -> None:
    await queues(site.engine, "general")
    await municipality(site.engine, "TRP")
    (phone,) = await make_citizens(site.engine, 1, municipality="TRP", start=5151)
    async with site.engine.connect() as conn:
        citizens = models.table(models.Citizen)
        citizen_id = (await conn.execute(select(citizens.c.id).where(citizens.c.phone == phone))).scalar_one()
    agent = await make_user(site.engine, "agent", name="Amal Agent")
    assert agent.id is not None
    await profile(site.engine, agent.id, "general")
    secret = pyotp.random_base32()
    boss = await make_user(site.engine, "supervisor", totp_secret=secret)
    acd = Acd(site.engine, redis)
    row = f'#agents tr[data-agent="{agent.id}"]'

    # the supervisor opens the wallboard (their home page) after the second factor
    context, board = await another_window(browser, watch)
    try:
        await log_in(board, site, boss.email)
        assert path_of(board) == "/login/totp"
        await second_factor(board, secret)
        assert path_of(board) == "/wallboard"
        await board.wait_for_selector(".live-status[data-state=live]")
        assert await board.locator(row).count() == 0  # the agent has not opened the desk yet

        # the agent logs in: the desk is their home page; they go ready
        await log_in(page, site, agent.email)
        assert path_of(page) == "/desk"
        await page.wait_for_selector(".live-status[data-state=live]")
        assert await page.get_attribute("#desk-state [data-agent-state]", "data-agent-state") == "offline"
        await page.click("button[data-move=ready]")
        await page.wait_for_url("**/desk?done=ready")
        await page.wait_for_selector(".live-status[data-state=live]")
        assert await page.get_attribute("#desk-state [data-agent-state]", "data-agent-state") == "ready"
        await page.evaluate("() => { window.stillTheSamePage = 'yes'; }")  # a reload would lose it
        await board.wait_for_selector(f'{row}[data-agent-state="ready"]')

        # a caller presses 0 and the router offers them to the agent: the card appears by itself
        assert await offer(acd, "call-1", Caller(phone, citizen_id, "ar", ("0",))) == str(agent.id)
        await page.wait_for_selector("[data-card=phone]")
        assert await text_of(page, "[data-card=phone]") == mask_phone(phone)
        assert phone not in await page.inner_text("main")
        assert await text_of(page, "[data-card=municipality]") == "بلدية TRP"
        assert await page.get_attribute("#desk-state [data-agent-state]", "data-agent-state") == "reserved"
        await board.wait_for_selector(f'{row}[data-agent-state="reserved"]')
        await screenshot(page, "desk-offered")

        await acd.connected("call-1", str(agent.id))
        await page.wait_for_selector('#desk-state [data-agent-state="on_call"]')
        await board.wait_for_selector(f'{row}[data-agent-state="on_call"]')
        await acd.ended("call-1", str(agent.id))
        await page.wait_for_selector("#f-disposition")
        assert await page.evaluate(STILL_HERE) == "yes"  # all of it without a reload
        assert await text_of(page, "[data-card=phone]") == mask_phone(phone)  # the card stays
        await board.wait_for_selector(f'{row}[data-agent-state="wrap_up"]')
        await in_both_languages(page, "desk", axe=True)

        # ready without a disposition: a clear error, still in wrap-up
        await page.fill("#f-notes", "سأل عن صيانة الطريق")
        await page.click("button[data-move=ready]")
        await page.wait_for_load_state()
        summary = await page.inner_text(".error-summary")
        assert (
            translated("Choose how the call ended (its disposition) before the next call.", "ar") in summary
        )
        assert await page.input_value("#f-notes") == "سأل عن صيانة الطريق"  # kept for the agent
        await page.select_option("#f-disposition", "resolved")
        await page.click("button[data-move=ready]")
        await page.wait_for_url("**/desk?done=ready")
        assert await page.get_attribute("#desk-state [data-agent-state]", "data-agent-state") == "ready"
        assert await page.locator("[data-card=phone]").count() == 0

        # the wallboard followed: the call answered, the agent ready again
        await board.wait_for_selector(f'{row}[data-agent-state="ready"]')
        await board.wait_for_function(
            "() => document.querySelector('#queues tr[data-queue=general] [data-figure=answered]')"
            "?.textContent.trim() === '1'"
        )
        assert await board.get_attribute(".live-status", "data-state") == "live"
        await in_both_languages(board, "wallboard", axe=True)
        await board.click("a[href='/wallboard/report']")
        await board.wait_for_selector("#report tbody tr[data-subject=general]")
        await in_both_languages(board, "wallboard-report", axe=True)
    finally:
        await context.close()
    assert watch.csp == [] and watch.errors == [], watch.csp + watch.errors


async def test_an_analyst_is_refused_the_desk(page: Page, site: Site) -> None:
    analyst = await make_user(site.engine, "analyst")
    await log_in(page, site, analyst.email)
    answer = await page.goto(site.url("/desk"))
    assert answer is not None and answer.status == 403
    assert await page.locator("nav.nav a[href='/desk']").count() == 0


async def test_an_agent_not_set_up_is_told_whom_to_ask(page: Page, site: Site) -> None:
    agent = await make_user(site.engine, "agent")
    await log_in(page, site, agent.email)
    assert path_of(page) == "/desk"
    assert translated("You are not set up to take calls; ask a supervisor.", "ar") in await page.inner_text(
        "#desk-not-set-up"
    )
    await in_both_languages(page, "desk-not-set-up", axe=True)


async def test_during_a_call_notes_and_transfer_and_the_supervisors_listen_buttons_and_ratings(
    page: Page, browser: Browser, site: Site, watch: Watch, redis: aioredis.Redis
) -> None:
    """During the call the desk saves notes and offers the transfer; the wrap-up records a service
    request (a clear error first, then its reference); the wallboard shows the callers' ratings
    and, on the row of the agent on a call, listen / whisper / barge."""
    await queues(site.engine, "general", "services")
    trp = await municipality(site.engine, "TRP")
    (phone,) = await make_citizens(site.engine, 1, municipality="TRP", start=6161)
    agent = await make_user(site.engine, "agent", name="Amal Agent")
    assert agent.id is not None
    await profile(site.engine, agent.id, "general")
    secret = pyotp.random_base32()
    boss = await make_user(site.engine, "supervisor", totp_secret=secret)
    acd = Acd(site.engine, redis)
    await acd.record("call.rated", entry="earlier", agent=str(agent.id), queue="general", data={"rating": 5})
    await acd.record("call.rated", entry="earlier2", agent=str(agent.id), queue="general", data={"rating": 4})
    row = f'#agents tr[data-agent="{agent.id}"]'

    await log_in(page, site, agent.email)
    await page.click("button[data-move=ready]")
    await page.wait_for_url("**/desk?done=ready")
    caller = Caller(phone, None, "ar", ("0",), channel="PJSIP/citizen-1")
    assert await offer(acd, "call-1", caller) == str(agent.id)
    await acd.connected("call-1", str(agent.id))
    await page.wait_for_selector("form[data-form=note]")
    await page.click("button[data-action=note]")  # an empty note: a clear error, nothing saved
    await page.wait_for_load_state()
    assert translated("Write the note first.", "ar") in await page.inner_text(".error-summary")
    await page.fill("#f-note", "يسأل عن إنارة الشارع قرب المدرسة")
    await page.click("button[data-action=note]")
    await page.wait_for_url("**/desk?done=note")
    assert "يسأل عن إنارة الشارع" in await page.inner_text("[data-call-notes]")
    assert await page.locator("#f-queue option[value=services]").count() == 1
    await in_both_languages(page, "desk-on-call", axe=True)

    context, board = await another_window(browser, watch)
    try:
        await log_in(board, site, boss.email)
        await second_factor(board, secret)
        await board.wait_for_selector(f'{row}[data-agent-state="on_call"]')
        for mode in ("listen", "whisper", "barge"):
            assert await board.locator(f"{row} button[data-spy={mode}]").count() == 1
        assert "4.5" in await board.inner_text(f"{row} [data-figure=rating]")
        await in_both_languages(board, "wallboard-on-call", axe=True)
    finally:
        await context.close()

    await acd.ended("call-1", str(agent.id))
    await page.wait_for_selector("form[data-form=ticket]")
    # the wrap-up's notes start from the note saved during the call
    assert await page.input_value("#f-notes") == "يسأل عن إنارة الشارع قرب المدرسة"
    await page.fill("#f-category", "إنارة الشوارع")
    await page.click("button[data-action=ticket]")
    await page.wait_for_load_state()
    summary = await page.inner_text(".error-summary")
    assert translated("Describe the request.", "ar") in summary
    assert await page.input_value("#f-municipality") == str(trp)  # the caller's own, kept
    await page.fill("#f-description", "المصباح أمام بوابة المدرسة مطفأ منذ أسبوع")
    await page.click("button[data-action=ticket]")
    await page.wait_for_url("**/desk?done=ticket*")
    assert "1415-" in await page.inner_text(".notice")
    await in_both_languages(page, "desk-service-request", axe=True)
    assert watch.csp == [] and watch.errors == [], watch.csp + watch.errors


async def test_an_agent_who_closes_the_browser_mid_call_shows_as_lost_contact_on_the_wallboard(
    page: Page,
    browser: Browser,
    site: Site,
    watch: Watch,
    redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The agent's desk is open on a call; the agent closes the browser. Their desk's stream
    stops touching the contact, the wallboard's own heartbeat sweeps, and the supervisor's
    wallboard shows the agent as lost contact (not paused) while the call itself goes on."""
    monkeypatch.setattr(live, "DESK_HEARTBEAT_S", 0.3)  # the server runs in this process
    monkeypatch.setattr(live, "CONTACT_TTL_S", 1.0)
    monkeypatch.setattr(live, "WALLBOARD_HEARTBEAT_S", 0.3)
    await queues(site.engine, "general")
    agent = await make_user(site.engine, "agent", name="Amal Agent")
    assert agent.id is not None
    await profile(site.engine, agent.id, "general")
    secret = pyotp.random_base32()
    boss = await make_user(site.engine, "supervisor", totp_secret=secret, language="en")
    acd = Acd(site.engine, redis)
    row = f'#agents tr[data-agent="{agent.id}"]'

    await log_in(page, site, boss.email)
    await second_factor(page, secret)
    assert path_of(page) == "/wallboard"
    await page.wait_for_selector(".live-status[data-state=live]")

    context, desk = await another_window(browser, watch)
    try:
        await log_in(desk, site, agent.email)
        await desk.click("button[data-move=ready]")
        await desk.wait_for_url("**/desk?done=ready")
        await desk.wait_for_selector(".live-status[data-state=live]")
        await offer(acd, "call-1", Caller("+218912345678", None, "ar", ("0",)))
        await acd.connected("call-1", str(agent.id))
        await desk.wait_for_selector('#desk-state [data-agent-state="on_call"]')
        await page.wait_for_selector(f'{row}[data-agent-state="on_call"]')
    finally:
        await context.close()  # the agent closes the browser mid-call

    await page.wait_for_selector(f'{row}[data-agent-state="lost_contact"]')
    assert "Lost contact" in (await page.locator(row).text_content() or "")  # said, not a pause
    assert await page.get_attribute(".live-status", "data-state") == "live"
    record = await acd.store.agent(str(agent.id))
    assert record is not None and record.entry == "call-1"  # the call goes on without the desk
    await in_both_languages(page, "wallboard-lost-contact", axe=True)
    assert watch.csp == [] and watch.errors == [], watch.csp + watch.errors
