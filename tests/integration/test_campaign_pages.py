"""The campaign pages as staff use them: the list, a new campaign, the live detail page, the
moves (audited with the person), the roles that may not, municipality scope and bad input."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.accounts.roles import Role
from callcenter.accounts.sessions import COOKIE, open_session
from callcenter.campaigns.service import Audience, create_campaign, move, plan
from callcenter.live import stream_key
from callcenter.settings import Settings
from tests.factories import make_citizens, make_inquiry
from tests.webapp import StaffClient, make_user

A = models.table(models.AuditLog)
K = models.table(models.Campaign)
D = models.table(models.Delivery)
MU = models.table(models.Municipality)
TRIPOLI = ZoneInfo("Africa/Tripoli")
SLUG = "return-of-life-roads"  # the sample inquiry's
PHONES = itertools.count(10_000, 1_000)  # the first of each batch of test citizens' numbers


async def staff(
    app: FastAPI,
    engine: AsyncEngine,
    role: Role | str,
    *,
    municipalities: Iterable[int] = (),
    language: str = "en",
) -> tuple[StaffClient, models.User]:
    """A browser holding a full session of a new user (no second-factor step), its CSRF token known."""
    user = await make_user(engine, role, municipalities=municipalities, language=language)
    assert user.id is not None
    async with AsyncSession(engine) as session, session.begin():
        opened = await open_session(
            session,
            user_id=user.id,
            stage="full",
            address="203.0.113.7",
            user_agent="test",
            absolute=timedelta(hours=1),
            now=datetime.now(UTC),
        )
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    client = StaffClient(httpx.AsyncClient(transport=transport, base_url="https://1415.test"))
    client.http.cookies.set(COOKIE, opened.token)
    client.csrf = opened.csrf_token
    return client, user


async def municipality(engine: AsyncEngine, code: str) -> int:
    async with engine.begin() as conn:
        found = (await conn.execute(select(MU.c.id).where(MU.c.code == code))).scalar()
        if found is None:
            found = (
                await conn.execute(
                    insert(MU)
                    .values(code=code, name_ar=f"بلدية {code}", name_en=f"{code} town")
                    .returning(MU.c.id)
                )
            ).scalar_one()
    return int(found)


async def new_campaign(
    engine: AsyncEngine,
    redis: aioredis.Redis,
    *,
    codes: tuple[str, ...] = ("TRP",),
    status: str = "running",
    quiet: tuple[str, str] | None = None,
    citizens: int = 3,
) -> int:
    """A campaign of the sample inquiry to citizens of ``codes`` (created if need be), planned."""
    async with engine.connect() as conn:
        inquiry = (
            await conn.execute(
                select(models.table(models.Inquiry).c.id).where(models.table(models.Inquiry).c.slug == SLUG)
            )
        ).scalar()
    if inquiry is None:
        inquiry = await make_inquiry(engine)
    for code in codes:
        await municipality(engine, code)
        if citizens:
            await make_citizens(engine, citizens, municipality=code, start=next(PHONES))
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(
            session,
            inquiry=int(inquiry),
            audience=Audience(codes),
            actor="test",
            quiet_start=quiet[0] if quiet else None,
            quiet_end=quiet[1] if quiet else None,
        )
    assert campaign.id is not None
    await plan(engine, campaign.id)
    if status != "draft":
        await move(engine, redis, campaign.id, "running", actor="test")
    if status not in ("draft", "running"):
        await move(engine, redis, campaign.id, status, actor="test")
    return campaign.id


async def audits(engine: AsyncEngine, action: str) -> list[models.AuditLog]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(select(models.AuditLog).where(A.c.action == action).order_by(A.c.id))
        return list(rows.scalars())


def quiet_now() -> tuple[str, str]:
    """Quiet hours around the present moment (Tripoli time), ending in two hours."""
    local = datetime.now(TRIPOLI)
    return (local - timedelta(hours=1)).strftime("%H:%M"), (local + timedelta(hours=2)).strftime("%H:%M")


# -- the list -----------------------------------------------------------------------------


async def test_the_list_shows_campaigns_newest_first_with_progress(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    older = await new_campaign(engine, redis)
    newer = await new_campaign(engine, redis, status="paused", citizens=0)
    client, _ = await staff(web, engine, "analyst")
    page = await client.get("/campaigns")
    assert page.status_code == 200
    assert page.text.index(f'href="/campaigns/{newer}"') < page.text.index(f'href="/campaigns/{older}"')
    assert "Paused: nothing is sent until the campaign is resumed." in page.text
    assert 'class="meter"' in page.text and "0 of 3 handled (0%)" in page.text
    assert "Return of life" in page.text or "return" in page.text.casefold()
    assert "New campaign" not in page.text  # an analyst reads, does not run
    await client.http.aclose()


async def test_the_list_is_paginated_by_fifty(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    inquiry = await make_inquiry(engine)
    async with engine.begin() as conn:
        await conn.execute(
            insert(K), [{"inquiry_id": inquiry, "audience": {}, "status": "draft"} for _ in range(51)]
        )
    client, _ = await staff(web, engine, "operator")
    first = await client.get("/campaigns")
    assert first.text.count("<tr>") == 51  # the header row and fifty campaigns
    assert "Page 1 of 2" in first.text and 'href="/campaigns?page=2"' in first.text
    second = await client.get("/campaigns?page=2")
    assert second.text.count("<tr>") == 2
    for bad in ("abc", "-1", "0", "99999999999", "<script>"):
        assert (await client.get("/campaigns", params={"page": bad})).status_code == 200
    await client.http.aclose()


# -- a new campaign -----------------------------------------------------------------------


async def test_an_operator_creates_and_starts_a_campaign_that_the_worker_then_runs(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    await make_inquiry(engine)
    await municipality(engine, "TRP")
    await make_citizens(engine, 4, municipality="TRP")
    await make_citizens(engine, 2, municipality="BEN", start=100)
    client, user = await staff(web, engine, "operator")
    form = await client.get("/campaigns/new")
    assert form.status_code == 200 and f'value="{SLUG}"' in form.text and 'value="TRP"' in form.text
    created = await client.post(
        "/campaigns",
        {"inquiry": SLUG, "channel": "sms", "municipalities": ["TRP"], "languages": ["ar"],
         "rate_per_s": "50", "max_attempts": "3", "quiet_start": "", "quiet_end": "", "start": "1"},
    )  # fmt: skip
    assert created.status_code == 303, created.text
    match = re.fullmatch(r"/campaigns/(\d+)\?done=start", created.headers["location"])
    assert match
    campaign_id = int(match.group(1))
    assert await redis.exists(f"arq:job:plan:{campaign_id}")
    (made,) = await audits(engine, "campaign.create")
    assert made.actor_id == user.id and made.actor == user.email and made.address == "203.0.113.7"
    page = await client.get(created.headers["location"])
    assert "Planning: the list of citizens to contact is being drawn up." in page.text
    assert "The campaign is starting" in page.text

    from callcenter.jobs import make_worker

    worker = make_worker(settings, burst=True)
    try:
        await asyncio.wait_for(worker.main(), 60)
    finally:
        await worker.close()
    async with engine.connect() as conn:
        row = (await conn.execute(select(K).where(K.c.id == campaign_id))).one()
        sent = (await conn.execute(select(D.c.status).where(D.c.campaign_id == campaign_id))).scalars().all()
    assert row.status == "done" and row.rate_per_s == 50 and row.max_attempts == 3
    assert sorted(sent) == ["sent"] * 4  # Tripoli's four, not Benghazi's two
    (running,) = await audits(engine, "campaign.running")
    assert running.actor_id == user.id  # the worker acted for the person who pressed start
    assert await redis.xlen(stream_key(f"campaign:{campaign_id}")) >= 2  # running, then done
    page = await client.get(f"/campaigns/{campaign_id}")
    assert "Done: every citizen in the audience has been contacted." in page.text
    assert 'data-count="sent">4<' in page.text and "sse-connect" not in page.text  # finished: not live
    await client.http.aclose()


async def test_bad_form_input_gets_clear_errors_and_is_shown_back_escaped(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await make_inquiry(engine)
    client, _ = await staff(web, engine, "operator")
    script = "<script>alert(1)</script>"
    cases: dict[str, dict[str, str | list[str]]] = {
        "There is no open inquiry with this name.": {"inquiry": "no-such-inquiry"},
        "Enter the rate as a number of messages a second, 0 or more (0: no limit).": {"rate_per_s": "-1"},
        "Enter the start of the quiet hours as a time like 21:00.": {
            "quiet_start": "25:00",
            "quiet_end": "08:00",
        },
        "Enter the end of the quiet hours as a time like 08:00.": {"quiet_start": "21:00", "quiet_end": "8h"},
        "Give both the start and the end of the quiet hours, or neither.": {"quiet_start": "21:00"},
        "Choose municipalities from the list.": {"municipalities": ["NOWHERE"]},
        "Choose SMS or voice calls.": {"channel": "fax"},
        "Choose Arabic, English or both.": {"languages": ["fr"]},
        "Enter a number of attempts from 1 to 10.": {"max_attempts": "11"},
    }
    for message, bad in cases.items():
        form: dict[str, str | list[str]] = {"inquiry": SLUG, "channel": "sms"}
        response = await client.post("/campaigns", form | bad)
        assert response.status_code == 422, (bad, response.status_code)
        assert message in response.text, bad
        assert 'class="error-summary"' in response.text
    shown = await client.post("/campaigns", {"inquiry": SLUG, "channel": "sms", "rate_per_s": script})
    assert shown.status_code == 422 and script not in shown.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
    for rate in ("inf", "nan", "1e9", "x" * 5000):
        assert (await client.post("/campaigns", {"inquiry": SLUG, "rate_per_s": rate})).status_code == 422
    async with engine.connect() as conn:
        assert (await conn.execute(select(K.c.id))).all() == []
    no_csrf = await client.post("/campaigns", {"inquiry": SLUG}, csrf=False)
    assert no_csrf.status_code == 403
    await client.http.aclose()


async def test_a_closed_inquiry_is_not_offered_and_is_refused(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    from callcenter.inquiry.definition import InquiryStatus

    await make_inquiry(engine, status=InquiryStatus.CLOSED)
    client, _ = await staff(web, engine, "operator")
    assert f'value="{SLUG}"' not in (await client.get("/campaigns/new")).text
    refused = await client.post("/campaigns", {"inquiry": SLUG, "channel": "sms"})
    assert refused.status_code == 422 and "There is no open inquiry with this name." in refused.text
    await client.http.aclose()


# -- moves --------------------------------------------------------------------------------


async def test_pause_resume_and_cancel_are_audited_with_the_staff_member(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    campaign_id = await new_campaign(engine, redis)
    client, user = await staff(web, engine, "operator")
    page = await client.get(f"/campaigns/{campaign_id}")
    assert 'data-action="pause"' in page.text and 'data-action="cancel"' in page.text
    assert 'data-action="resume"' not in page.text and 'data-action="start"' not in page.text
    for action, status in (("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")):
        response = await client.post(f"/campaigns/{campaign_id}/{action}")
        assert (
            response.status_code == 303
            and response.headers["location"] == f"/campaigns/{campaign_id}?done={action}"
        )
        (row,) = [a for a in await audits(engine, f"campaign.{status}") if a.actor_id is not None]
        assert row.actor_id == user.id and row.address == "203.0.113.7" and row.target == str(campaign_id)
        assert (await redis.get(f"campaign:{campaign_id}:status")) == status.encode()
    assert await redis.exists(f"arq:job:send:{campaign_id}:2:0")  # resumed: the lanes of the new epoch
    events = await redis.xrange(stream_key(f"campaign:{campaign_id}"))
    assert len(events) == 3  # one live event per move
    again = await client.post(f"/campaigns/{campaign_id}/pause")
    assert again.status_code == 409
    assert "This campaign cannot do that now. Its status is: Cancelled." in again.text
    assert len(await audits(engine, "campaign.paused")) == 1
    await client.http.aclose()


async def test_a_draft_is_started_from_its_page_once(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    campaign_id = await new_campaign(engine, redis, status="draft")
    client, _ = await staff(web, engine, "admin")
    page = await client.get(f"/campaigns/{campaign_id}")
    assert 'data-action="start"' in page.text and 'data-action="pause"' not in page.text
    started = await client.post(f"/campaigns/{campaign_id}/start")
    assert started.status_code == 303
    assert await redis.exists(f"arq:job:plan:{campaign_id}")
    again = await client.post(f"/campaigns/{campaign_id}/start")
    assert again.status_code == 303  # the same planning job: queued once
    assert "Planning" in (await client.get(f"/campaigns/{campaign_id}/progress")).text
    await client.http.aclose()


async def test_a_supervisor_sees_no_buttons_and_may_not_move_a_campaign(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    campaign_id = await new_campaign(engine, redis)
    client, _ = await staff(web, engine, "supervisor")
    page = await client.get(f"/campaigns/{campaign_id}")
    assert page.status_code == 200 and "data-action=" not in page.text
    assert "New campaign" not in (await client.get("/campaigns")).text
    for action in ("start", "pause", "resume", "cancel"):
        assert (await client.post(f"/campaigns/{campaign_id}/{action}")).status_code == 403
    assert (await client.get("/campaigns/new")).status_code == 403
    assert (await client.post("/campaigns", {"inquiry": SLUG})).status_code == 403
    assert (await redis.get(f"campaign:{campaign_id}:status")) == b"running"
    agent, _ = await staff(web, engine, "agent")
    assert (await agent.get(f"/campaigns/{campaign_id}")).status_code == 403
    await client.http.aclose()
    await agent.http.aclose()


async def test_moves_need_the_csrf_token(web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis) -> None:
    campaign_id = await new_campaign(engine, redis)
    client, _ = await staff(web, engine, "operator")
    assert (await client.post(f"/campaigns/{campaign_id}/pause", csrf=False)).status_code == 403
    assert (
        await client.post(f"/campaigns/{campaign_id}/pause", {"csrf_token": "forged"}, csrf=False)
    ).status_code == 403
    assert (await redis.get(f"campaign:{campaign_id}:status")) == b"running"
    await client.http.aclose()


# -- municipality scope -------------------------------------------------------------------


async def test_a_scoped_user_sees_only_campaigns_within_their_municipalities(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    mine = await new_campaign(engine, redis, codes=("TRP",))
    theirs = await new_campaign(engine, redis, codes=("BEN",))
    straddling = await new_campaign(engine, redis, codes=("TRP", "BEN"), citizens=0)
    everywhere = await new_campaign(engine, redis, codes=(), citizens=0)
    tripoli = await municipality(engine, "TRP")
    client, _ = await staff(web, engine, "operator", municipalities=[tripoli])
    listed = await client.get("/campaigns")
    assert f'href="/campaigns/{mine}"' in listed.text
    for hidden in (theirs, straddling, everywhere):
        assert f'href="/campaigns/{hidden}"' not in listed.text
    assert "1 campaign" in listed.text
    assert (await client.get(f"/campaigns/{mine}")).status_code == 200
    for hidden in (theirs, straddling, everywhere, 987654):
        assert (await client.get(f"/campaigns/{hidden}")).status_code == 404
        assert (await client.get(f"/campaigns/{hidden}/progress")).status_code == 404
        assert (await client.post(f"/campaigns/{hidden}/pause")).status_code == 404
    assert (await redis.get(f"campaign:{theirs}:status")) == b"running"
    for bad in ("abc", "1e3", "-1", "9" * 40, "%3Cscript%3E"):
        assert (await client.get(f"/campaigns/{bad}")).status_code == 404
    await client.http.aclose()


async def test_a_scoped_operator_creates_campaigns_only_for_their_municipalities(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await make_inquiry(engine)
    tripoli = await municipality(engine, "TRP")
    await municipality(engine, "BEN")
    client, _ = await staff(web, engine, "operator", municipalities=[tripoli])
    form = await client.get("/campaigns/new")
    assert 'value="TRP"' in form.text and 'value="BEN"' not in form.text
    everywhere = await client.post("/campaigns", {"inquiry": SLUG, "channel": "sms"})
    assert everywhere.status_code == 422 and "Choose at least one of your municipalities." in everywhere.text
    elsewhere = await client.post(
        "/campaigns", {"inquiry": SLUG, "channel": "sms", "municipalities": ["BEN"]}
    )
    assert elsewhere.status_code == 422 and "Choose municipalities from the list." in elsewhere.text
    made = await client.post("/campaigns", {"inquiry": SLUG, "channel": "sms", "municipalities": ["TRP"]})
    assert made.status_code == 303
    assert (await client.get(made.headers["location"])).status_code == 200
    await client.http.aclose()


# -- the detail page, live ----------------------------------------------------------------


async def test_the_detail_page_is_live_without_inline_script(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    campaign_id = await new_campaign(engine, redis)
    client, _ = await staff(web, engine, "operator")
    page = await client.get(f"/campaigns/{campaign_id}")
    html = page.text
    assert f'sse-connect="/live?topic=campaign:{campaign_id}"' in html and 'hx-ext="sse"' in html
    assert (
        'hx-trigger="sse:campaign.progress"' in html and f'hx-get="/campaigns/{campaign_id}/progress"' in html
    )
    status = re.search(r'<p class="live-status"[^>]*>', html)
    assert status and 'role="status"' in status.group(0) and 'aria-live="polite"' in status.group(0)
    assert (
        'data-text-live="Live"' in html and 'data-text-reconnecting="Connection lost, reconnecting…"' in html
    )
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [] and "style=" not in html
    assert '<progress class="meter"' in html
    fragment = await client.get(f"/campaigns/{campaign_id}/progress")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'data-count="planned">3<' in fragment.text and 'data-action="pause"' in fragment.text
    assert 'name="csrf_token"' in fragment.text
    await client.http.aclose()


async def test_at_night_the_page_says_when_quiet_hours_end(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    start, end = quiet_now()
    campaign_id = await new_campaign(engine, redis, quiet=(start, end))
    english, _ = await staff(web, engine, "analyst")
    page = await english.get(f"/campaigns/{campaign_id}")
    assert f"Quiet hours: sending resumes at {end} (Tripoli time)." in page.text
    assert 'data-reason="quiet_hours"' in page.text
    arabic, _ = await staff(web, engine, "analyst", language="ar")
    page = await arabic.get(f"/campaigns/{campaign_id}")
    assert 'dir="rtl"' in page.text and f"ساعات الهدوء: يُستأنف الإرسال الساعة {end}" in page.text
    await english.http.aclose()
    await arabic.http.aclose()


async def test_campaign_show_prints_the_same_reason(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    start, end = quiet_now()
    campaign_id = await new_campaign(engine, redis, quiet=(start, end))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")} | {
        "CALLCENTER_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "CALLCENTER_REDIS_URL": str(settings.redis_url),
        "CALLCENTER_DATA_DIR": str(settings.data_dir),
        "CALLCENTER_ENV": "test",
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.cli", "campaign", "show", str(campaign_id),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out) == {"pending": 3}  # stdout stays JSON for scripts
    assert f"Quiet hours: sending resumes at {end} (Tripoli time)." in err.decode()
    assert "running" in err.decode()
