"""The supervisors' wallboard on the real app: today's figures from the event log after calls go
through the ACD, staffing beside the agents staffed, callbacks pending, the live topic (and its
sweep that shows an agent whose browser closed mid-call as lost contact), the 15-minute
report and its CSV, and who may see none of it."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.desk.wallboard import today
from callcenter.routing import AgentState
from callcenter.routing.store import Caller
from callcenter.web.pages import live
from tests.integration.test_campaign_pages import staff
from tests.integration.test_desk_pages import desk_agent, move, offer, queues, state_of
from tests.integration.test_live import first, messages, serving
from tests.webapp import StaffClient, logged_in

A = models.table(models.AuditLog)
CB = models.table(models.Callback)


async def a_handled_call(acd: Acd, client: StaffClient, agent_id: str, entry: str) -> None:
    """The agent (ready) takes ``entry`` and wraps it up from the desk."""
    await offer(acd, entry, Caller(phone="+218910000010", language="ar"))
    await acd.connected(entry, agent_id)
    await acd.ended(entry, agent_id)
    done = await move(client, to="ready", shown="wrap_up", disposition="resolved", notes="roads")
    assert done.status_code == 303


async def test_the_wallboard_shows_todays_figures_from_the_log(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await queues(engine, "general")
    desk, _agent, agent_id = await desk_agent(web, engine)
    supervisor, _ = await staff(web, engine, "supervisor", language="en")
    acd = Acd(engine, redis)
    empty = await supervisor.get("/wallboard")
    assert empty.status_code == 200
    assert 'sse-connect="/live?topic=wallboard"' in empty.text and 'hx-get="/wallboard/figures"' in empty.text
    assert 'data-queue="general"' in empty.text and "general queue" in empty.text
    assert "Agent" in empty.text

    await desk.get("/desk")
    await move(desk, to="ready", shown="offline")
    await a_handled_call(acd, desk, agent_id, "call-1")
    await offer(acd, "call-2", Caller(phone="+218910000011"))
    await acd.leave("call-2")  # hung up while the agent's phone rang: an abandon (short: at once)
    async with engine.begin() as conn:
        await conn.execute(
            insert(CB).values(
                entry="cb-1", queue="general", phone="+218910000012", language="ar", priority=0,
                enqueued_at=(await acd.store.snapshot()).now - 125, status="pending", attempts=0,
                expires_at=datetime.now(UTC) + timedelta(hours=4), created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )  # fmt: skip

    figures = await supervisor.get("/wallboard/figures")
    assert figures.status_code == 200 and figures.headers["cache-control"] == "no-store"
    html = figures.text
    now = html[html.index('<table class="table table--figures" id="waiting">') :]
    now = now[now.index('<tr data-queue="general">') :]
    now = now[: now.index("</tr>")]
    assert 'data-figure="waiting">0<' in now and 'data-figure="staffed">1<' in now
    assert 'data-figure="callbacks_pending">1<' in now and 'data-figure="oldest_callback">2:0' in now
    row = html[html.index('<table class="table table--figures" id="queues">') :]
    row = row[row.index('<tr data-queue="general">') :]
    row = row[: row.index("</tr>")]
    assert 'data-figure="offered">2<' in row and 'data-figure="answered">1<' in row
    assert 'data-figure="short_abandoned">1<' in row and 'data-figure="abandoned">0<' in row
    assert 'data-figure="service_level">100%' in row  # answered at once; the short abandon apart
    assert f'<tr data-agent="{agent_id}" data-agent-state="ready">' in html
    assert 'id="staffing"' in html and "Erlang" in html
    assert '<th scope="row">Test agent</th>' in html


async def test_the_live_wallboard_sweeps_a_desk_that_closed_mid_call_into_lost_contact(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "DESK_HEARTBEAT_S", 0.2)
    # the desk's first contact (going ready, below) lasts until its stream is open, however
    # slowly a busy machine gets there; the stream's own touches then last 0.6 s
    monkeypatch.setattr(live, "CONTACT_TTL_S", 60.0)
    monkeypatch.setattr(live, "WALLBOARD_HEARTBEAT_S", 0.2)
    await queues(engine, "general")
    desk, _agent, agent_id = await desk_agent(web, engine)
    supervisor, _ = await staff(web, engine, "supervisor", language="en")
    acd = Acd(engine, redis)
    await desk.get("/desk")
    await move(desk, to="ready", shown="offline")
    agent_cookie = {"Cookie": f"cc_session={desk.http.cookies.get('cc_session')}"}
    boss_cookie = {"Cookie": f"cc_session={supervisor.http.cookies.get('cc_session')}"}
    async with (
        serving(web) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        http.stream("GET", "/live", headers=boss_cookie, params={"topic": "wallboard"}) as board,
    ):
        assert board.status_code == 200
        changes = messages(board)
        retry, current = await first(changes, 2)
        assert retry == {"retry": "3000"}
        assert current["event"] == "wallboard.changed"  # a page (re)connecting fetches the figures
        assert current["data"] == '{"kinds":[],"at":0.0}'
        async with http.stream(
            "GET", "/live", headers=agent_cookie, params={"topic": f"desk:{agent_id}"}
        ) as stream:
            desk_messages = messages(stream)  # held: a dropped reader would close the stream
            await first(desk_messages, 2)  # retry, the desk's state
            monkeypatch.setattr(live, "CONTACT_TTL_S", 0.6)
            await offer(acd, "call-1", Caller(phone="+218910000013"))
            await acd.connected("call-1", agent_id)
            queued, offered, connected = await first(changes, 3)
            assert {m["event"] for m in (queued, offered, connected)} == {"wallboard.changed"}
            assert "entry.offered" in offered["data"] and "entry.connected" in connected["data"]
            await asyncio.sleep(1.0)  # the desk's stream keeps its contact while it is open
            assert await state_of(acd, agent_id) is AgentState.ON_CALL
        # the agent closed the browser mid-call: the wallboard's own heartbeat sweeps
        async with asyncio.timeout(5):
            while await state_of(acd, agent_id) is not AgentState.LOST_CONTACT:
                await asyncio.sleep(0.1)
        (swept,) = await first(changes, 1)
        assert swept["event"] == "wallboard.changed"
        assert swept["data"].startswith('{"kinds":["agent.state"]')
    figures = await supervisor.get("/wallboard/figures")
    assert f'<tr data-agent="{agent_id}" data-agent-state="lost_contact">' in figures.text
    assert "Lost contact" in figures.text
    record = await acd.store.agent(agent_id)
    assert record is not None and record.entry == "call-1"  # the call goes on without the desk


async def test_the_interval_report_and_its_csv(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await queues(engine, "general")
    desk, agent, agent_id = await desk_agent(web, engine)
    supervisor, boss = await staff(web, engine, "supervisor", language="en")
    acd = Acd(engine, redis)
    await desk.get("/desk")
    await move(desk, to="ready", shown="offline")
    await a_handled_call(acd, desk, agent_id, "call-1")
    await a_handled_call(acd, desk, agent_id, "call-2")
    day = today((await acd.store.snapshot()).now, "Africa/Tripoli").isoformat()

    by_queue = await supervisor.get("/wallboard/report", params={"day": day, "by": "queue"})
    assert by_queue.status_code == 200
    assert '<tr data-subject="general">' in by_queue.text and '<tr data-total="general">' in by_queue.text
    total = by_queue.text[by_queue.text.index('<tr data-total="general">') :]
    assert '<td class="num">2</td>' in total[: total.index("</tr>")]  # offered and answered: 2
    by_agent = await supervisor.get("/wallboard/report", params={"day": day, "by": "agent"})
    assert by_agent.status_code == 200 and f'<tr data-subject="{agent_id}">' in by_agent.text
    assert agent.name in by_agent.text
    assert (await supervisor.get("/wallboard/report")).status_code == 200  # today, by queue

    export = await supervisor.get("/wallboard/report.csv", params={"day": day, "by": "queue"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert export.content.startswith(b"\xef\xbb\xbf")
    assert f'filename="intervals-queue-{day}.csv"' in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert sum(int(r["offered"]) for r in rows) == 2 and sum(int(r["answered"]) for r in rows) == 2
    assert {r["queue"] for r in rows} == {"general"}
    agents_csv = await supervisor.get("/wallboard/report.csv", params={"day": day, "by": "agent"})
    lines = list(csv.DictReader(io.StringIO(agents_csv.content.decode("utf-8-sig"))))
    assert sum(int(r["handled"]) for r in lines) == 2 and {r["name"] for r in lines} == {agent.name}
    async with engine.connect() as conn:
        audits = (await conn.execute(select(A).where(A.c.action == "wallboard.report_export"))).all()
    assert [(a.actor_id, a.target, a.details["day"]) for a in audits] == [
        (boss.id, "report:queue", day),
        (boss.id, "report:agent", day),
    ]

    for bad in ({"day": "yesterday"}, {"day": "2026-13-45"}, {"by": "caller"}, {"by": "<script>"}):
        page = await supervisor.get("/wallboard/report", params=bad)
        assert page.status_code == 400, bad
        assert "Enter the day as a date" in page.text or "Choose queues or agents." in page.text
        assert "<script>" not in page.text
        assert (await supervisor.get("/wallboard/report.csv", params=bad)).status_code == 400
    empty = await supervisor.get("/wallboard/report", params={"day": "2020-01-01"})
    assert empty.status_code == 200 and "Nothing happened in the queues on this day." in empty.text


async def test_only_supervisors_and_admins_see_the_wallboard_and_each_role_lands_home(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    for role in ("agent", "analyst", "operator"):
        client, _ = await staff(web, engine, role, language="en")
        for path in ("/wallboard", "/wallboard/figures", "/wallboard/report", "/wallboard/report.csv"):
            refused = await client.get(path)
            assert refused.status_code == 403 and refused.headers["x-error-id"] == "forbidden", (role, path)
        assert 'href="/wallboard"' not in (await client.get("/account")).text
    for role in ("supervisor", "admin"):
        client, _ = await staff(web, engine, role, language="en")
        assert (await client.get("/wallboard")).status_code == 200
        assert 'href="/wallboard"' in (await client.get("/account")).text
    agent, _ = await logged_in(web, engine, "agent")
    home = await agent.http.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/desk"
    supervisor, _ = await staff(web, engine, "supervisor")
    home = await supervisor.http.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/wallboard"
