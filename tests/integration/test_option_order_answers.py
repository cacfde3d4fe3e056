"""Randomised option order end to end: the SMS invitation reply, the digit and the stored
answer follow the citizen's order on SMS and by phone, the same order on both; the results
read model reports the order effects."""

from __future__ import annotations

import json

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.analysis import read
from callcenter.analysis.read import Scope
from callcenter.inquiries import DefinitionCache
from callcenter.inquiry.order import for_citizen, order_text
from callcenter.settings import Settings
from callcenter.sms.gateways.base import InboundSms
from callcenter.sms.inbox import Inbox
from callcenter.voice.ivr_inquiry import Keypad, ask
from callcenter.voice.ivr_prompts import Prompts
from callcenter.voice.ivr_store import VoiceStore
from tests.factories import invite, make_citizens, make_inquiry
from tests.integration.test_results_cli import cli
from tests.webapp import logged_in

A, C = models.table(models.Answer), models.table(models.Citizen)
SHUFFLED = """
slug: shuffled
title: {ar: الأولويات, en: Priorities}
randomise_options: true
questions:
  - key: priority
    kind: choice
    text: {ar: "ما الأولوية؟", en: "What comes first?"}
    options:
      - {value: roads, ar: الطرق, en: Roads}
      - {value: water, ar: المياه, en: Water}
      - {value: power, ar: الكهرباء, en: Power}
      - {value: health, ar: الصحة, en: Health}
  - {key: rating, kind: rating, text: {ar: قيّم, en: Rate}}
"""


async def _citizen_ids(engine: AsyncEngine, phones: list[str]) -> list[int]:
    async with engine.connect() as conn:
        found = dict((await conn.execute(select(C.c.phone, C.c.id).where(C.c.phone.in_(phones)))).all())
    return [int(found[p]) for p in phones]


async def test_sms_answers_follow_and_store_each_citizens_order(
    engine: AsyncEngine, inbox: Inbox, settings: Settings
) -> None:
    inquiry_id = await make_inquiry(engine, yaml_text=SHUFFLED)
    phones = await make_citizens(engine, 6)
    await invite(engine, inquiry_id, phones)
    ids = await _citizen_ids(engine, phones)
    definition = await inbox.definitions.get(inquiry_id)
    assert definition.randomise_options
    expected = {}
    for n, (phone, citizen) in enumerate(zip(phones, ids, strict=True)):
        seen = for_citizen(definition, citizen, key=settings.pseudonym_key).first
        # an invalid reply first: the re-asked question lists the options in the same order
        again = await inbox.receive(InboundSms("loopback", f"bad{n}", phone, "؟؟"))
        assert again is not None
        listed = [line for line in again.splitlines() if line[:1].isdigit()]
        assert listed == [f"{i}) {o.label.ar}" for i, o in enumerate(seen.options, 1)]
        await inbox.receive(InboundSms("loopback", f"one{n}", phone, "1"))
        expected[citizen] = (seen.options[0].value, order_text(seen.order))
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(A.c.citizen_id, A.c.value, A.c.option_order).where(A.c.inquiry_id == inquiry_id)
            )
        ).all()
    assert {r.citizen_id: (r.value, r.option_order) for r in rows} == expected
    assert len({order for _, order in expected.values()}) > 1  # citizens saw different orders


async def test_by_phone_the_keyed_digit_maps_through_the_same_order_and_is_stored(
    engine: AsyncEngine, settings: Settings
) -> None:
    inquiry_id = await make_inquiry(engine, yaml_text=SHUFFLED)
    phones = await make_citizens(engine, 3)
    store = VoiceStore(engine)
    keypad = Keypad(store, Prompts(settings), order_key=settings.pseudonym_key)
    expected = {}
    for citizen in await _citizen_ids(engine, phones):
        session = await store.session(inquiry_id, citizen, "ar")
        inquiry = await keypad._definition(session)
        sms_order = for_citizen(await store.definition(inquiry_id), citizen, key=settings.pseudonym_key)
        assert inquiry.first.order == sms_order.first.order  # the same order on both channels
        asked = ask(inquiry, session)
        step = await keypad._apply(session, inquiry, asked, "2")
        assert step is not None and step.answer is not None
        expected[citizen] = (inquiry.first.options[1].value, order_text(inquiry.first.order))
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(A.c.citizen_id, A.c.value, A.c.option_order, A.c.channel).where(
                    A.c.inquiry_id == inquiry_id
                )
            )
        ).all()
    assert {r.citizen_id: (r.value, r.option_order) for r in rows} == expected
    assert {r.channel for r in rows} == {"voice"}


async def test_the_results_read_model_reports_order_effects(engine: AsyncEngine, inbox: Inbox) -> None:
    inquiry_id = await make_inquiry(engine, yaml_text=SHUFFLED)
    phones = await make_citizens(engine, 40)
    await invite(engine, inquiry_id, phones)
    for n, phone in enumerate(phones):  # everybody picks what they were shown first
        await inbox.receive(InboundSms("loopback", f"g{n}", phone, "1"))
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "shuffled")
        (effects,) = await read.order_effects(conn, inquiry, scope=Scope(), threshold=1)
    assert effects.answers == 40 and effects.question.key == "priority"
    shown_first = [o for o in effects.options if o.first is not None and o.first.n > 0]
    assert shown_first and all(o.first.estimate == 1.0 for o in shown_first)  # type: ignore[union-attr]
    assert all(o.later is None or o.later.estimate in (0.0, None) for o in effects.options)


async def _everybody_picks_what_they_saw_first(engine: AsyncEngine, inbox: Inbox, n: int = 40) -> None:
    inquiry_id = await make_inquiry(engine, yaml_text=SHUFFLED)
    phones = await make_citizens(engine, n)
    await invite(engine, inquiry_id, phones)
    for i, phone in enumerate(phones):
        await inbox.receive(InboundSms("loopback", f"p{i}", phone, "1"))


async def test_the_results_page_flags_a_favoured_first_place(
    engine: AsyncEngine, inbox: Inbox, web: FastAPI
) -> None:
    await _everybody_picks_what_they_saw_first(engine, inbox)
    client, _ = await logged_in(web, engine, "analyst", language="en")
    try:
        page = await client.get("/results/shuffled")
    finally:
        await client.http.aclose()
    assert page.status_code == 200
    assert 'id="h-order"' in page.text and "Order of the options" in page.text
    assert page.text.count('data-flag="first"') == 4  # every option, 100 % when first, 0 % later
    assert "Chosen more often when listed first" in page.text


async def test_callcenter_results_reports_order_effects(
    engine: AsyncEngine, inbox: Inbox, settings: Settings
) -> None:
    await _everybody_picks_what_they_saw_first(engine, inbox)
    done = cli(settings, "results", "shuffled", "--json", "--language", "en")
    assert done.returncode == 0, done.stderr
    (effects,) = json.loads(done.stdout)["order_effects"]
    assert effects["key"] == "priority" and effects["answers"] == 40
    assert {o["flag"] for o in effects["options"]} == {"first"}
    roads = next(o for o in effects["options"] if o["value"] == "roads")
    assert roads["first"]["share"] == 1.0 and roads["later"]["share"] == 0.0
    assert roads["gap"]["low"] > 0 and len(roads["by_position"]) == 4
    table = cli(settings, "results", "shuffled", "--language", "en")
    assert table.returncode == 0, table.stderr
    assert "order effects" in table.stdout and "chosen more when listed first" in table.stdout


async def test_the_inquiry_form_sets_randomised_options(web: FastAPI, engine: AsyncEngine) -> None:
    from tests.integration.test_inquiry_pages import _form, _login

    client, _ = await _login(web, engine, "operator")
    try:
        page = await client.get("/inquiries/new")
        assert 'name="randomise_options"' in page.text
        response = await client.post("/inquiries", _form(randomise_options="1"))
        assert response.status_code == 303, response.text
    finally:
        await client.http.aclose()
    async with engine.connect() as conn:
        flags = (await conn.execute(select(models.table(models.Inquiry).c.randomise_options))).scalars().all()
    assert flags == [True]


async def test_each_campaign_invitation_lists_the_options_in_its_citizens_order(
    engine: AsyncEngine, redis: object, settings: Settings
) -> None:
    from callcenter.campaigns.sender import Sender
    from callcenter.campaigns.service import Audience, create_campaign, move, plan
    from tests.integration.test_campaigns import ScriptedGateway

    await make_inquiry(engine, yaml_text=SHUFFLED)
    phones = await make_citizens(engine, 12)
    ids = dict(zip(phones, await _citizen_ids(engine, phones), strict=True))
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(session, inquiry="shuffled", audience=Audience(), actor="test")
    assert campaign.id is not None
    await plan(engine, campaign.id)
    await move(engine, redis, campaign.id, "running", actor="test")  # type: ignore[arg-type]
    gateway = ScriptedGateway()
    await Sender(engine, redis, gateway, settings).run_lane(campaign.id)  # type: ignore[arg-type]
    assert len(gateway.handed) == 12
    definition = await DefinitionCache(engine).get(campaign.inquiry_id)
    firsts = set()
    for sms in gateway.handed:
        seen = for_citizen(definition, ids[sms.to], key=settings.pseudonym_key).first
        listed = [line for line in sms.body.splitlines() if line[:1].isdigit()]
        assert listed == [f"{i}) {o.label.ar}" for i, o in enumerate(seen.options, 1)]
        firsts.add(listed[0])
    assert len(firsts) > 1  # not everybody saw the same option first
