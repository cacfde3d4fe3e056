"""The agent's desk as agents use it: going ready, a call offered and its caller's card, wrap-up
with a disposition and notes (audited and logged), and what is refused — a move without its
CSRF token, a pause without a reason, ready from wrap-up without a disposition, another
agent's desk topic, a card of a call the agent does not hold, an analyst at /desk."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.phones import mask_phone
from callcenter.routing import AgentState, Entry
from callcenter.routing.store import Caller
from callcenter.web.pages import live
from tests.factories import make_citizens, make_inquiry
from tests.integration.test_campaign_pages import municipality, staff
from tests.integration.test_live import first, messages, serving
from tests.webapp import StaffClient

A = models.table(models.AuditLog)
EV = models.table(models.RoutingEvent)
Q = models.table(models.ServiceQueue)
P = models.table(models.AgentProfile)
GENERAL = {"steps": [[0, 1]], "sl_threshold_s": 20, "short_abandon_s": 5, "sl_target": 0.8}


async def queues(engine: AsyncEngine, *keys: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Q),
            [
                {"key": key, "service": key, "name_ar": f"طابور {key}", "name_en": f"{key} queue",
                 "config": GENERAL, "active": True, "created_at": datetime.now(UTC)}
                for key in keys
            ],
        )  # fmt: skip


async def profile(engine: AsyncEngine, user_id: int, *services: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(P).values(
                user_id=user_id,
                endpoint=f"PJSIP/agent{user_id}",
                skills=[["service", s, 1] for s in services],
                active=True,
                created_at=datetime.now(UTC),
            )
        )


async def desk_agent(
    app: FastAPI, engine: AsyncEngine, *, services: tuple[str, ...] = ("general",), language: str = "en"
) -> tuple[StaffClient, models.User, str]:
    """A logged-in agent with an agent profile serving ``services``; returns the agent id too."""
    client, user = await staff(app, engine, "agent", language=language)
    assert user.id is not None
    await profile(engine, user.id, *services)
    return client, user, str(user.id)


async def offer(acd: Acd, entry: str, caller: Caller, queue: str = "general") -> str:
    """A caller joins ``queue`` and the router offers them (to the longest-idle ready agent)."""
    now = (await acd.store.snapshot()).now
    enqueued = await acd.enqueue(Entry(entry, queue, now), caller)
    assert enqueued.refused is None
    routed = await acd.round()
    (made,) = routed.decisions.offers
    return made.agent


async def state_of(acd: Acd, agent_id: str) -> AgentState:
    record = await acd.store.agent(agent_id)
    assert record is not None
    return record.agent.state


async def move(client: StaffClient, **form: Any) -> httpx.Response:
    return await client.post("/desk/state", form)


async def a_citizen_with_history(engine: AsyncEngine) -> tuple[int, str]:
    """A citizen of Tripoli with a past call, an open ticket and an answer to a running inquiry."""
    await municipality(engine, "TRP")
    (phone,) = await make_citizens(engine, 1, municipality="TRP", start=4242)
    inquiry_id = await make_inquiry(engine)
    async with engine.begin() as conn:
        citizen_id = int(
            (await conn.execute(select(models.table(models.Citizen).c.id).where(
                models.table(models.Citizen).c.phone == phone))).scalar_one()
        )  # fmt: skip
        question = (
            await conn.execute(
                select(models.table(models.Question).c.id, models.table(models.Question).c.text_en)
                .where(models.table(models.Question).c.inquiry_id == inquiry_id)
                .limit(1)
            )
        ).one()
        await conn.execute(
            insert(models.table(models.Call)).values(
                direction="in", caller=phone, citizen_id=citizen_id, outcome="callback",
                channel="", language="ar", started_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
            )
        )  # fmt: skip
        await conn.execute(
            insert(models.table(models.Ticket)).values(
                kind="callback", citizen_id=citizen_id, phone=phone, status="open", callback=True,
                notes="", created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
            )
        )  # fmt: skip
        await conn.execute(
            insert(models.table(models.Ticket)).values(
                kind="service", citizen_id=citizen_id, phone=phone, status="closed", callback=False,
                notes="", created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
            )
        )  # fmt: skip
        await conn.execute(
            insert(models.table(models.Answer)).values(
                inquiry_id=inquiry_id, question_id=question.id, citizen_id=citizen_id, channel="sms",
                raw="3", value="three-and-a-half", created_at=datetime.now(UTC),
            )
        )  # fmt: skip
    return citizen_id, phone


async def test_an_agent_goes_ready_takes_a_call_sees_the_card_and_wraps_up(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await queues(engine, "general")
    citizen_id, phone = await a_citizen_with_history(engine)
    client, user, agent_id = await desk_agent(web, engine)
    acd = Acd(engine, redis)

    page = await client.get("/desk")
    assert page.status_code == 200
    assert f'sse-connect="/live?topic=desk:{agent_id}"' in page.text
    assert 'data-agent-state="offline"' in page.text and 'data-move="ready"' in page.text
    assert "No caller now" in page.text

    ready = await move(client, to="ready", shown="offline")
    assert ready.status_code == 303 and ready.headers["location"] == "/desk?done=ready"
    assert await state_of(acd, agent_id) is AgentState.READY
    async with engine.connect() as conn:
        (row,) = (await conn.execute(select(A).where(A.c.action == "desk.state"))).all()
    assert row.actor_id == user.id and row.target == f"agent:{agent_id}" and row.address == "203.0.113.7"
    assert row.before["state"] == "offline" and row.after == {"state": "ready"}

    caller = Caller(phone=phone, citizen_id=citizen_id, language="ar", path=("0",), call_id=None)
    assert await offer(acd, "call-1", caller) == agent_id
    state = await client.get("/desk/state")
    assert 'data-agent-state="reserved"' in state.text and 'data-entry="call-1"' in state.text
    assert "A call is coming to your phone" in state.text and "data-move=" not in state.text
    card = await client.get("/desk/card")
    assert card.status_code == 200 and card.headers["cache-control"] == "no-store"
    assert mask_phone(phone) in card.text and phone not in card.text  # agents see a masked number
    assert "TRP town" in card.text and "general queue" in card.text
    assert '<bdi class="mono" dir="ltr">0</bdi>' in card.text  # the menu key pressed
    assert "Asked to be called back" in card.text and "Called 1415" in card.text
    assert "1415-000001" in card.text and "1415-000002" not in card.text  # only open tickets
    assert "three-and-a-half" in card.text
    assert (await client.get("/desk/card", params={"entry": "call-1"})).status_code == 200

    await acd.connected("call-1", agent_id)
    assert "You are on a call" in (await client.get("/desk/state")).text
    await acd.ended("call-1", agent_id)
    wrap = await client.get("/desk")
    assert 'data-agent-state="wrap_up"' in wrap.text and 'name="disposition"' in wrap.text
    assert mask_phone(phone) in wrap.text  # the card stays through the wrap-up

    # ready from wrap-up needs the disposition, then the notes: clear errors, nothing moves
    no_disposition = await move(client, to="ready", shown="wrap_up", notes="asked about roads")
    assert no_disposition.status_code == 422
    assert "Choose how the call ended (its disposition) before the next call." in no_disposition.text
    assert 'class="error-summary"' in no_disposition.text and "asked about roads" in no_disposition.text
    no_notes = await move(client, to="ready", shown="wrap_up", disposition="resolved")
    assert no_notes.status_code == 422 and "Write a note about the call" in no_notes.text
    assert await state_of(acd, agent_id) is AgentState.WRAP_UP
    done = await move(client, to="ready", shown="wrap_up", disposition="resolved", notes="asked about roads")
    assert done.status_code == 303
    assert await state_of(acd, agent_id) is AgentState.READY
    async with engine.connect() as conn:
        events = (await conn.execute(select(EV).where(EV.c.agent == agent_id).order_by(EV.c.id))).all()
        audits = (await conn.execute(select(A).where(A.c.action == "desk.state").order_by(A.c.id))).all()
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["agent.state", "entry.wrapup"]
    assert events[-2].data["disposition"] == "resolved" and events[-2].data["from"] == "wrap_up"
    assert events[-1].entry == "call-1" and events[-1].data == {
        "disposition": "resolved",
        "notes": "asked about roads",
    }
    assert audits[-1].after == {"state": "ready", "disposition": "resolved"}
    assert "No caller now" in (await client.get("/desk/card")).text


async def test_bad_moves_are_refused_with_clear_errors(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await queues(engine, "general")
    client, _user, agent_id = await desk_agent(web, engine)
    acd = Acd(engine, redis)
    await client.get("/desk")

    forged = await client.post("/desk/state", {"to": "ready"}, csrf=False)
    assert forged.status_code == 403 and forged.headers["x-error-id"] == "csrf_failed"
    assert await state_of(acd, agent_id) is AgentState.OFFLINE

    no_reason = await move(client, to="paused", shown="offline")
    assert no_reason.status_code == 422 and "Choose a reason for the pause." in no_reason.text
    made_up = await move(client, to="paused", shown="offline", reason="nap")  # not in the settings' list
    assert made_up.status_code == 422 and "Choose a reason for the pause." in made_up.text
    for bad in ("on_call", "reserved", "", "<script>"):
        refused = await move(client, to=bad, shown="offline")
        assert refused.status_code == 422 and "Choose Ready, Pause or Offline." in refused.text, bad
        assert "<script>" not in refused.text
    assert await state_of(acd, agent_id) is AgentState.OFFLINE

    paused = await move(client, to="paused", shown="offline", reason="training")
    assert paused.status_code == 303
    record = await acd.store.agent(agent_id)
    assert record is not None and record.agent.pause_reason == "training"
    assert "Training" in (await client.get("/desk/state")).text

    stale = await move(client, to="offline", shown="ready")  # the page showed another state
    assert stale.status_code == 409 and "Your state changed meanwhile: you are now Paused." in stale.text
    assert await state_of(acd, agent_id) is AgentState.PAUSED

    await move(client, to="ready", shown="paused")
    await offer(acd, "call-9", Caller(phone="+218910000001"))
    busy = await move(client, to="paused", shown="reserved", reason="break")  # nothing to choose now
    assert busy.status_code == 409 and "You cannot go from Call offered to Paused now." in busy.text
    assert await state_of(acd, agent_id) is AgentState.RESERVED


async def test_a_card_is_only_for_the_call_the_agent_holds(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await queues(engine, "general", "services")
    one, _u1, first_id = await desk_agent(web, engine, services=("general",))
    two, _u2, second_id = await desk_agent(web, engine, services=("services",))
    acd = Acd(engine, redis)
    for client in (one, two):
        await client.get("/desk")
        await move(client, to="ready", shown="offline")
    assert await offer(acd, "call-a", Caller(phone="+218910000002"), queue="general") == first_id
    assert await offer(acd, "call-b", Caller(phone="+218910000003"), queue="services") == second_id

    theirs = await one.get("/desk/card", params={"entry": "call-b"})
    assert theirs.status_code == 404 and "There is no such call on your desk." in theirs.text
    assert mask_phone("+218910000003") not in theirs.text
    assert (await one.get("/desk/card", params={"entry": "no-such-call"})).status_code == 404
    assert (await one.get("/desk/card", params={"entry": "call-a"})).status_code == 200
    idle, _u3, _idle_id = await desk_agent(web, engine)
    assert (await idle.get("/desk/card", params={"entry": "call-a"})).status_code == 404
    assert "No caller now" in (await idle.get("/desk/card")).text


async def test_an_agent_without_a_profile_is_told_to_ask_a_supervisor(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    client, _user = await staff(web, engine, "agent", language="en")
    page = await client.get("/desk")
    assert page.status_code == 200
    assert "You are not set up to take calls; ask a supervisor." in page.text
    assert "sse-connect" not in page.text and "data-move" not in page.text
    refused = await client.post("/desk/state", {"to": "ready"})
    assert refused.status_code == 409 and "You are not set up to take calls" in refused.text
    assert "You are not set up" in (await client.get("/desk/state")).text
    arabic, _ = await staff(web, engine, "agent", language="ar")
    assert "لم تُهيَّأ لاستقبال المكالمات؛ اطلب ذلك من المشرف." in (await arabic.get("/desk")).text


async def test_analysts_and_supervisors_are_refused_the_desk_and_agents_land_on_it(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    for role in ("analyst", "supervisor", "operator"):
        client, _ = await staff(web, engine, role, language="en")
        for path in ("/desk", "/desk/state", "/desk/card"):
            refused = await client.get(path)
            assert refused.status_code == 403 and refused.headers["x-error-id"] == "forbidden", (role, path)
        assert (await client.post("/desk/state", {"to": "ready"})).status_code == 403
        assert 'href="/desk"' not in (await client.get("/account")).text  # not in the menu either
    agent, _ = await staff(web, engine, "agent", language="en")
    assert 'href="/desk"' in (await agent.get("/account")).text


async def test_the_desk_stream_is_the_agents_own_and_keeps_their_contact(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "DESK_HEARTBEAT_S", 0.2)
    monkeypatch.setattr(live, "CONTACT_TTL_S", 0.6)
    await queues(engine, "general")
    client, _user, agent_id = await desk_agent(web, engine)
    _other, _other_user, other_id = await desk_agent(web, engine)
    await client.get("/desk")
    await move(client, to="ready", shown="offline")
    acd = Acd(engine, redis)
    mine = {"Cookie": f"cc_session={client.http.cookies.get('cc_session')}"}
    async with serving(web) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        for topic in (f"desk:{other_id}", "desk:987654", "wallboard"):
            async with http.stream("GET", "/live", headers=mine, params={"topic": topic}) as response:
                assert response.status_code == 403, topic
        async with http.stream(
            "GET", "/live", headers=mine, params={"topic": f"desk:{agent_id}"}
        ) as response:
            assert response.status_code == 200
            found = messages(response)
            _retry, snapshot = await first(found, 2)
            assert snapshot["event"] == "desk.agent" and '"state":"ready"' in snapshot["data"]
            await asyncio.sleep(1.0)  # past the contact's life: only the stream's touches keep it
            await acd.sweep_contact()
            assert await state_of(acd, agent_id) is AgentState.READY
            await offer(acd, "call-1", Caller(phone="+218910000004"))
            (event,) = await first(found, 1)
            assert event["event"] == "desk.agent" and '"state":"reserved"' in event["data"]
            assert '"entry":"call-1"' in event["data"]
            await acd.leave("call-1")  # the caller hung up while it rang: ready again
        # the browser went away: the touches stop, the next sweep finds the desk gone
        await asyncio.sleep(1.0)
        await acd.sweep_contact()
        assert await state_of(acd, agent_id) is AgentState.LOST_CONTACT
    page = await client.get("/desk")
    assert 'data-agent-state="lost_contact"' in page.text and "Your desk lost its connection" in page.text
    back = await move(client, to="ready", shown="lost_contact")
    assert back.status_code == 303 and await state_of(acd, agent_id) is AgentState.READY
