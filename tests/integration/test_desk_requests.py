"""The wrap-up's service request once the service catalogue is loaded: a category chosen from
it, a request routed and timed, linked to the call's ticket, its reference shown to the agent
and texted to the caller with the expected date."""

from __future__ import annotations

import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.requests.reference import parse
from callcenter.requests.store import load
from callcenter.routing.store import Caller
from callcenter.sms.gateways.loopback import read_outbox
from tests.integration.test_desk_calls import CHANNEL, TK, events, on_a_call
from tests.integration.test_desk_pages import a_citizen_with_history, desk_agent, queues
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities

R = models.table(models.ServiceRequest)


async def test_the_wrap_up_makes_a_request_from_the_catalogue_and_texts_its_reference(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await add_municipalities(engine)
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    await queues(engine, "general")
    citizen_id, phone = await a_citizen_with_history(engine)
    client, _user, agent_id = await desk_agent(web, engine)
    acd = Acd(engine, redis)
    await on_a_call(acd, client, agent_id, caller=Caller(phone=phone, citizen_id=citizen_id, channel=CHANNEL))
    await acd.ended("call-1", agent_id)
    page = await client.get("/desk")
    assert '<option value="street_lighting">' in page.text and 'name="category" type="text"' not in page.text
    M = models.table(models.Municipality)
    async with engine.connect() as conn:
        trp = (await conn.execute(select(M.c.id).where(M.c.code == "TRP"))).scalar_one()
    form = {"entry": "call-1", "municipality": str(trp), "description": "The lamp by the school is dark."}

    free_text = await client.post("/desk/ticket", form | {"category": "Street lighting"})
    assert free_text.status_code == 422 and "Choose the category of the request." in free_text.text
    async with engine.connect() as conn:
        assert (await conn.execute(select(R))).all() == []

    done = await client.post("/desk/ticket", form | {"category": "street_lighting"})
    assert done.status_code == 303 and "done=request" in done.headers["location"]
    async with engine.connect() as conn:
        made = (await conn.execute(select(R))).one()
        ticket = (await conn.execute(select(TK).where(TK.c.id == made.ticket_id))).one()
    assert (made.channel, made.phone, made.citizen_id, made.municipality_id, made.status) == (
        "desk", phone, citizen_id, trp, "sent",
    )  # fmt: skip
    assert made.description == "The lamp by the school is dark." and ticket.kind == "service"
    assert parse(made.reference).display == made.reference
    shown = await client.get(done.headers["location"])
    assert f'<bdi class="mono" dir="ltr">{made.reference}</bdi>' in shown.text
    items, _ = await read_outbox(redis)
    [sms] = [sms for _, sms, _ in items]
    assert sms.to == phone and made.reference in sms.body
    [event] = await events(engine, "entry.ticket")
    assert event.data == {"ticket": ticket.id, "category": "street_lighting", "request": made.reference}


async def test_a_forged_reference_in_the_notice_is_not_shown(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    client, _user, _agent = await desk_agent(web, engine)
    page = await client.get("/desk?done=request&reference=<script>1415-0000-0001</script>")
    assert page.status_code == 200 and "<script>1415" not in page.text and "is recorded" not in page.text
