"""The mode switch on PostgreSQL and SQLite: who gets the other channel after X hours, once,
and a late SMS reply racing the switch call (recorded once; the call goes on after it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.settings import Settings
from callcenter.sim import CitizenModel, Outcome
from callcenter.sms.gateways.base import InboundSms
from callcenter.sms.inbox import Inbox
from callcenter.telephony import names
from callcenter.telephony.agi import AgiChannel
from callcenter.voice import dial_rules
from callcenter.voice.dial_lab import StubOutbound, sim_rig
from callcenter.voice.switch import SWITCH_KEY, plan_switch, plan_switches
from tests.factories import THREE_QUESTIONS, invite, make_citizens, make_inquiry

D, C, K = models.table(models.Delivery), models.table(models.Citizen), models.table(models.Campaign)
S, A, CALL = models.table(models.InquirySession), models.table(models.Answer), models.table(models.Call)
I = models.table(models.Inquiry)  # noqa: E741

pytestmark = pytest.mark.timeout(60)
QUESTIONS = ("q1", "q2", "q3")


@pytest.fixture(autouse=True)
async def _no_call_rows(sqlite_engine: AsyncEngine) -> Any:
    """The shared fixtures do not empty ``call`` (and SQLite enforces its foreign keys)."""
    async with sqlite_engine.begin() as conn:
        await conn.execute(delete(CALL))
    yield
    async with sqlite_engine.begin() as conn:
        await conn.execute(delete(CALL))


def sms(phone: str, body: str, gid: str) -> InboundSms:
    return InboundSms(gateway="loopback", gateway_id=gid, sender=phone, body=body)


async def switching_inquiry(engine: AsyncEngine, *, to: str, hours: float, max_contacts: int = 3) -> int:
    inquiry_id = await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    async with engine.begin() as conn:
        await conn.execute(
            update(I)
            .where(I.c.id == inquiry_id)
            .values(switch_after_hours=hours, switch_to=to, max_contacts=max_contacts)
        )
    return inquiry_id


async def ids_of(engine: AsyncEngine, phones: list[str]) -> dict[str, int]:
    async with engine.connect() as conn:
        result = await conn.execute(select(C.c.phone, C.c.id).where(C.c.phone.in_(phones)))
        return {str(p): int(i) for p, i in result}


async def backdate(
    engine: AsyncEngine, table: Any, when: datetime, *where: Any, column: str = "sent_at"
) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(table).where(*where).values({column: when}))


async def switch_rows(engine: AsyncEngine, channel: str) -> tuple[models.Campaign | None, set[str]]:
    """The inquiry's switch campaign on ``channel`` and the phones it holds."""
    async with engine.connect() as conn:
        campaign = (
            await conn.execute(select(K).where(K.c.channel == channel).order_by(K.c.id.desc()).limit(1))
        ).first()
        if campaign is None:
            return None, set()
        phones = await conn.execute(
            select(C.c.phone)
            .select_from(D.join(C, C.c.id == D.c.citizen_id))
            .where(D.c.campaign_id == campaign.id, D.c.status == "pending", D.c.attempts == 0)
        )
        return models.Campaign(**campaign._mapping), set(phones.scalars())


async def test_sms_non_responders_get_a_call_after_x_hours_once(
    engine: AsyncEngine, inbox: Inbox, redis: aioredis.Redis
) -> None:
    now = datetime.now(UTC)
    inquiry_id = await switching_inquiry(engine, to="voice", hours=2, max_contacts=2)
    phones = await make_citizens(engine, 8)
    silent, partial, partial_recent, completed, opted_out, too_recent, unsent, capped = phones
    sms_campaign = await invite(engine, inquiry_id, [p for p in phones if p != unsent])
    async with engine.begin() as conn:
        who = await ids_of(engine, phones)
        await conn.execute(
            insert(D).values(campaign_id=sms_campaign, citizen_id=who[unsent], status="pending")
        )
    await backdate(engine, D, now - timedelta(hours=3), D.c.citizen_id != who[too_recent])
    await backdate(engine, D, now - timedelta(hours=1), D.c.citizen_id == who[too_recent])
    # a second SMS contact for one citizen: two contacts, the inquiry's cap
    second = await invite(engine, inquiry_id, [capped])
    await backdate(engine, D, now - timedelta(hours=3), D.c.campaign_id == second)
    async with engine.begin() as conn:  # the switch campaign copies these from the SMS campaigns
        await conn.execute(update(K).values(quiet_start="22:00", quiet_end="07:30", max_attempts=3))
    # replies: half-way long ago, half-way just now, completed, STOP
    await inbox.receive(sms(partial, "4", "p1"))
    await inbox.receive(sms(partial_recent, "4", "r1"))
    for n, body in enumerate(("4", "نعم", "2")):
        await inbox.receive(sms(completed, body, f"c{n}"))
    await inbox.receive(sms(opted_out, "stop", "o1"))
    old_input = now - timedelta(hours=2, minutes=30)
    await backdate(
        engine, S, old_input, S.c.citizen_id.in_([who[partial], who[completed]]), column="updated_at"
    )

    assert await plan_switch(engine, inquiry_id, now, redis=redis) == 2
    campaign, planned = await switch_rows(engine, "voice")
    assert planned == {silent, partial}  # partial: the call resumes at the first unanswered question
    assert campaign is not None and campaign.id is not None
    assert (campaign.status, campaign.inquiry_id, campaign.audience[SWITCH_KEY]) == (
        "running",
        inquiry_id,
        "sms",
    )
    assert (campaign.quiet_start, campaign.quiet_end, campaign.max_attempts) == ("22:00", "07:30", 3)
    assert await redis.get(f"campaign:{campaign.id}:status") == b"running"

    assert await plan_switch(engine, inquiry_id, now) == 0  # idempotent
    # three hours on: the recent one and the one contacted later are due too, in the same campaign
    assert await plan_switches(engine, now + timedelta(hours=3)) == {inquiry_id: 2}
    again, planned = await switch_rows(engine, "voice")
    assert again is not None and again.id == campaign.id
    assert planned == {silent, partial, partial_recent, too_recent}


async def test_voice_non_responders_get_an_sms_once_their_retries_are_over(
    engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    now = datetime.now(UTC)
    inquiry_id = await switching_inquiry(engine, to="sms", hours=1)
    gave_up, retrying = await make_citizens(engine, 2)
    voice = await invite(engine, inquiry_id, [gave_up, retrying])
    who = await ids_of(engine, [gave_up, retrying])
    async with engine.begin() as conn:
        await conn.execute(update(K).where(K.c.id == voice).values(channel="voice"))
        await conn.execute(
            update(D)
            .where(D.c.campaign_id == voice)
            .values(sent_at=now - timedelta(hours=5), attempts=4, status="failed", outcome="no_answer")
        )
        await conn.execute(
            update(D)
            .where(D.c.citizen_id == who[retrying])
            .values(status="pending", attempts=2, outcome="busy")
        )
    assert await plan_switch(engine, inquiry_id, now, redis=redis) == 1
    campaign, planned = await switch_rows(engine, "sms")
    assert planned == {gave_up} and campaign is not None and campaign.audience[SWITCH_KEY] == "voice"


async def test_a_late_sms_reply_during_the_switch_call_is_recorded_once(
    engine: AsyncEngine, inbox: Inbox, redis: aioredis.Redis, settings: Settings
) -> None:
    """SMS was sent two hours ago; the switch call to ``late`` is ringing when their SMS answer
    to q1 arrives (twice: a repeated webhook), and a second one (q2) arrives during the call.
    The stand-in IVR re-reads the shared session before each question, as the IVR does.
    ``done`` completes by SMS after the switch was planned: the dialer skips them."""
    now = datetime.now(UTC)
    inquiry_id = await switching_inquiry(engine, to="voice", hours=1)
    late, done = await make_citizens(engine, 2)
    await invite(engine, inquiry_id, [late, done])
    await backdate(engine, D, now - timedelta(hours=2))
    assert await plan_switch(engine, inquiry_id, now, redis=redis) == 2
    for n, body in enumerate(("5", "لا", "3")):
        await inbox.receive(sms(done, body, f"d{n}"))
    who = await ids_of(engine, [late, done])

    asked: list[str | None] = []
    replied = asyncio.Event()

    async def next_question() -> str | None:
        async with engine.connect() as conn:
            answered = (
                await conn.execute(
                    select(S.c.answered).where(S.c.inquiry_id == inquiry_id, S.c.citizen_id == who[late])
                )
            ).scalar()
        return next((q for q in QUESTIONS if q not in (answered or {})), None)

    async def ivr(call: AgiChannel, variables: dict[str, str | None]) -> None:
        assert variables[names.VAR_CITIZEN] == late
        asked.append(await next_question())  # what the call asks first
        await asyncio.wait_for(replied.wait(), 10)
        asked.append(await next_question())  # and after the SMS that came in meanwhile

    citizens = CitizenModel(default=Outcome("answer", 800))  # rings for 0.8 s
    settings = settings.model_copy(update={"voice_dial_template": "PJSIP/{number}@trunk"})
    async with sim_rig(settings, engine, redis, citizens, stub=StubOutbound(engine, hook=ivr)) as rig:
        rig.start()
        await wait_for(lambda: len(rig.probe.calls) == 1)
        assert rig.probe.active == 1 and not asked  # ringing
        first = await inbox.handle(sms(late, "4", "late-1"))
        again = await inbox.handle(sms(late, "4", "late-1"))  # the gateway repeats its webhook
        assert (first.answer_recorded, again.event) == (True, "duplicate")
        await wait_for(lambda: len(asked) == 1)
        second = await inbox.handle(sms(late, "نعم", "late-2"))
        assert second.answer_recorded
        replied.set()
        await wait_for(lambda: len(asked) == 2)
        await wait_for(lambda: rig.probe.active == 0)
        await rig.stop()
    assert asked == ["q2", "q3"]  # the call never asks what SMS answered
    async with engine.connect() as conn:
        answers = (
            await conn.execute(
                select(A.c.value, A.c.channel, func.count())
                .where(A.c.citizen_id == who[late])
                .group_by(A.c.value, A.c.channel)
            )
        ).all()
        session = (await conn.execute(select(S).where(S.c.citizen_id == who[late]))).one()
        states = dict(
            (
                await conn.execute(
                    select(D.c.citizen_id, D.c.status)
                    .select_from(D.join(K, K.c.id == D.c.campaign_id))
                    .where(K.c.channel == "voice")
                )
            ).all()
        )
        skipped = (
            await conn.execute(select(D.c.error).where(D.c.citizen_id == who[done], D.c.status == "skipped"))
        ).scalar()
    assert sorted(tuple(a) for a in answers) == [("4", "sms", 1), ("yes", "sms", 1)]
    assert session.answered == {"q1": "4", "q2": "yes"} and session.status == "active"
    assert states == {who[late]: "delivered", who[done]: "skipped"}
    assert skipped == dial_rules.COMPLETED
    assert [call.number for call in rig.probe.calls] == [late]
    assert await plan_switch(engine, inquiry_id, now + timedelta(hours=5)) == 0


async def wait_for(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)
