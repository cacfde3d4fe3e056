"""A campaign's page follows the campaign live: started from its button, sent by the real
worker (in this process, on the loopback gateway), its counts change on screen through
Server-Sent Events while the page itself stays where it is."""

from __future__ import annotations

import asyncio

from playwright.async_api import Page
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.campaigns.service import Audience, counts, create_campaign
from callcenter.jobs import run_worker
from tests.browser.support import Site, in_both_languages, log_in, path_of, screenshot
from tests.factories import THREE_QUESTIONS, make_citizens, make_inquiry
from tests.webapp import make_user

CITIZENS = 25
SENT = "[data-count=sent]"


async def shown(page: Page, selector: str) -> str:
    return (await page.locator(selector).text_content() or "").strip()


async def test_a_started_campaign_shows_its_progress_live_without_reloading_the_page(
    page: Page, site: Site
) -> None:
    await make_inquiry(site.engine, yaml_text=THREE_QUESTIONS)
    await make_citizens(site.engine, CITIZENS)
    async with AsyncSession(site.engine, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(session, inquiry="three", audience=Audience(), actor="test")
    operator = await make_user(site.engine, "operator")
    await log_in(page, site, operator.email)
    answer = await page.goto(site.url(f"/campaigns/{campaign.id}"))
    assert answer is not None and answer.status == 200
    await page.wait_for_selector(".live-status[data-state=live]")
    assert await shown(page, SENT) == "0"
    await screenshot(page, "campaign-draft")

    # the operator starts it; nobody works on it yet (the worker is not running)
    async with page.expect_response(lambda r: r.request.method == "POST") as started:
        await page.click("button[data-action=start]")
    await page.wait_for_load_state()
    assert (await started.value).status == 303
    assert path_of(page) == f"/campaigns/{campaign.id}"
    await page.wait_for_selector(".live-status[data-state=live]")
    assert await shown(page, SENT) == "0"
    before = page.url
    await page.evaluate("() => { window.stillTheSamePage = 'yes'; }")  # a reload would lose it

    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(site.settings, stop=stop))
    try:
        await page.wait_for_function(
            "([selector, want]) => document.querySelector(selector)?.textContent.trim() === want",
            arg=[SENT, str(CITIZENS)],
            timeout=30_000,
        )
    finally:
        stop.set()
        await asyncio.wait_for(worker, 20)
    assert (await counts(site.engine, campaign.id or 0)).get("sent") == CITIZENS
    assert page.url == before
    assert await page.evaluate("() => window.stillTheSamePage") == "yes"
    assert await page.get_attribute(".live-status", "data-state") == "live"
    await in_both_languages(page, "campaign-live", axe=True)
