"""SMS campaigns on the real databases and Redis: the outbox, lanes, retries, pause/cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, time

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.campaigns.quiet import quiet_until
from callcenter.campaigns.ratelimit import TokenBucket
from callcenter.campaigns.sender import Sender
from callcenter.campaigns.service import Audience, counts, create_campaign, move, plan
from callcenter.errors import InvalidTransition
from callcenter.settings import Settings
from callcenter.sms.gateways.base import OutboundSms, SendResult
from callcenter.sms.gateways.loopback import LoopbackGateway, read_outbox
from tests.factories import THREE_QUESTIONS, make_citizens, make_inquiry

D, C = models.Delivery.__table__, models.Citizen.__table__


class ScriptedGateway:
    """A gateway whose answers the test decides; records every hand-over."""

    name = "scripted"

    def __init__(self, outcome: str = "ok", *, delay: float = 0.0) -> None:
        self.outcome = outcome
        self.delay = delay
        self.handed: list[OutboundSms] = []

    async def send_many(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.handed.extend(messages)
        if self.outcome == "ok":
            return [SendResult(m.ref, gateway_id=f"gw-{m.ref}") for m in messages]
        temporary = self.outcome == "temporary"
        return [SendResult(m.ref, error=f"{self.outcome} failure", temporary=temporary) for m in messages]

    async def aclose(self) -> None:
        return None


async def new_campaign(
    engine: AsyncEngine, redis: aioredis.Redis, audience: Audience = Audience(), **kw: object
) -> int:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(session, inquiry="three", audience=audience, actor="test", **kw)  # type: ignore[arg-type]
    assert campaign.id is not None
    await plan(engine, campaign.id)
    await move(engine, redis, campaign.id, "running", actor="test")
    return campaign.id


async def test_every_citizen_gets_one_message_through_the_loopback_gateway(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    phones = await make_citizens(engine, 120)
    await make_citizens(engine, 30, start=1000, language="en")
    campaign_id = await new_campaign(engine, redis)
    sender = Sender(engine, redis, LoopbackGateway(redis), settings)
    results = await asyncio.gather(*(sender.run_lane(campaign_id, batch_size=25) for _ in range(3)))
    assert sum(r.sent for r in results) == 150
    assert await counts(engine, campaign_id) == {"sent": 150}
    out, _ = await read_outbox(redis, "0", 1000)
    assert sorted(sms.to for _, sms, _ in out) == sorted(
        phones + [f"+21891{1000 + i:07d}" for i in range(30)]
    )
    arabic = next(sms for _, sms, _ in out if sms.to == phones[0])
    assert "السؤال الأول" in arabic.body and "توقف" in arabic.body
    async with engine.connect() as conn:
        row = (await conn.execute(select(D.c.encoding, D.c.segments, D.c.gateway_id).limit(1))).one()
    assert row.encoding in ("ucs2", "gsm7") and row.segments >= 1 and row.gateway_id
    async with engine.connect() as conn:
        status = (await conn.execute(select(models.Campaign.__table__.c.status))).scalar_one()
    assert status == "done"


async def test_opted_out_citizens_are_never_messaged(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    phones = await make_citizens(engine, 10)
    async with engine.begin() as conn:
        await conn.execute(update(C).where(C.c.phone == phones[0]).values(opted_out_at=datetime.now(UTC)))
    campaign_id = await new_campaign(engine, redis)
    async with engine.begin() as conn:  # opts out after planning, before sending
        await conn.execute(update(C).where(C.c.phone == phones[1]).values(opted_out_at=datetime.now(UTC)))
    gateway = ScriptedGateway()
    await Sender(engine, redis, gateway, settings).run_lane(campaign_id)
    handed = {m.to for m in gateway.handed}
    assert phones[0] not in handed and phones[1] not in handed and len(handed) == 8
    assert await counts(engine, campaign_id) == {"sent": 8, "skipped": 1}


async def test_audience_by_municipality_and_language(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    await make_citizens(engine, 5, municipality="tripoli")
    await make_citizens(engine, 4, start=100, municipality="benghazi")
    await make_citizens(engine, 3, start=200, municipality="tripoli", language="en")
    campaign_id = await new_campaign(engine, redis, Audience(("tripoli",), ("ar",)))
    assert sum((await counts(engine, campaign_id)).values()) == 5


async def test_temporary_failures_are_retried_and_permanent_ones_are_not(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    await make_citizens(engine, 4)
    campaign_id = await new_campaign(engine, redis, max_attempts=2)
    flaky = ScriptedGateway("temporary")
    first = await Sender(engine, redis, flaky, settings).run_lane(campaign_id)
    assert first.retried == 4 and first.resume_at is not None
    assert await counts(engine, campaign_id) == {"pending": 4}
    async with engine.begin() as conn:  # the back-off has passed
        await conn.execute(update(D).values(next_attempt_at=None))
    second = await Sender(engine, redis, flaky, settings).run_lane(campaign_id)
    assert second.failed == 4  # max_attempts reached
    assert await counts(engine, campaign_id) == {"failed": 4}

    await make_citizens(engine, 3, start=50)
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        c2 = await create_campaign(session, inquiry="three", audience=Audience(), actor="t")
    assert c2.id is not None
    await plan(engine, c2.id)
    await move(engine, redis, c2.id, "running", actor="test")
    hard = ScriptedGateway("permanent")
    result = await Sender(engine, redis, hard, settings).run_lane(c2.id)
    assert result.failed == 7 and result.retried == 0
    assert len(hard.handed) == 7


async def test_pause_and_cancel_stop_sending_within_a_second(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    await make_citizens(engine, 400)
    campaign_id = await new_campaign(engine, redis, rate_per_s=100.0)
    gateway = ScriptedGateway()
    lane = asyncio.create_task(Sender(engine, redis, gateway, settings).run_lane(campaign_id, batch_size=400))
    await asyncio.sleep(0.5)
    paused_at = asyncio.get_running_loop().time()
    await move(engine, redis, campaign_id, "paused", actor="test")
    result = await asyncio.wait_for(lane, 5)
    stopped_after = asyncio.get_running_loop().time() - paused_at
    handed = len(gateway.handed)
    assert result.stopped == "paused" and stopped_after < 1.0
    assert 0 < handed < 400
    progress = await counts(engine, campaign_id)
    assert progress == {"sent": handed, "pending": 400 - handed}  # nothing left "sending"

    await move(engine, redis, campaign_id, "running", actor="test")
    await move(engine, redis, campaign_id, "cancelled", actor="test")
    after = await Sender(engine, redis, gateway, settings).run_lane(campaign_id)
    assert after.stopped == "cancelled" and len(gateway.handed) == handed
    assert await counts(engine, campaign_id) == {"sent": handed, "cancelled": 400 - handed}
    with pytest.raises(InvalidTransition):
        await move(engine, redis, campaign_id, "running", actor="test")


async def test_quiet_hours_defer_sending(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    await make_citizens(engine, 3)
    campaign_id = await new_campaign(engine, redis, quiet_start="00:00", quiet_end="23:59")
    gateway = ScriptedGateway()
    result = await Sender(engine, redis, gateway, settings).run_lane(campaign_id)
    now = datetime.now(UTC)
    if quiet_until(now, time(0, 0), time(23, 59)) is not None:
        assert result.resume_at is not None and result.resume_at > now
        assert gateway.handed == []


def test_quiet_window_across_midnight_in_tripoli() -> None:
    start, end = time(21, 0), time(8, 0)
    # 20:30 UTC is 22:30 in Tripoli (UTC+2): quiet until 08:00 local = 06:00 UTC next day
    until = quiet_until(datetime(2026, 11, 25, 20, 30, tzinfo=UTC), start, end)
    assert until is not None and until.astimezone(UTC) == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 11, 25, 10, 0, tzinfo=UTC), start, end) is None
    early = quiet_until(datetime(2026, 11, 25, 4, 0, tzinfo=UTC), start, end)  # 06:00 local
    assert early is not None and early.astimezone(UTC) == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 11, 25, 4, 0, tzinfo=UTC), None, end) is None


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
async def test_token_bucket_holds_the_rate_across_competing_takers(
    redis: aioredis.Redis, engine: AsyncEngine
) -> None:
    bucket_a = TokenBucket(redis, "test", rate=40, burst=4)
    bucket_b = TokenBucket(redis, "test", rate=40, burst=4)
    taken = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.5

    async def taker(bucket: TokenBucket) -> None:
        nonlocal taken
        while loop.time() < end:
            got = await bucket.take(3)  # (not `taken += await ...`: that loses updates)
            taken += got

    await asyncio.gather(taker(bucket_a), taker(bucket_b))
    assert 40 * 1.5 - 8 <= taken <= 40 * 1.5 + 4 + 2  # rate x time, plus one burst
    with pytest.raises(ValueError):
        TokenBucket(redis, "x", rate=0)


async def test_a_citizen_who_completed_on_another_channel_gets_no_sms(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    phones = await make_citizens(engine, 3)
    campaign_id = await new_campaign(engine, redis)
    S = models.table(models.InquirySession)
    async with engine.begin() as conn:  # the first citizen finished by voice after planning
        citizen = (await conn.execute(select(C.c.id).where(C.c.phone == phones[0]))).scalar_one()
        inquiry = (await conn.execute(select(models.table(models.Inquiry).c.id))).scalar_one()
        await conn.execute(
            S.insert().values(inquiry_id=inquiry, citizen_id=citizen, channel="voice", status="completed")
        )
    gateway = ScriptedGateway()
    await Sender(engine, redis, gateway, settings).run_lane(campaign_id)
    assert {m.to for m in gateway.handed} == set(phones[1:])
    assert await counts(engine, campaign_id) == {"sent": 2, "skipped": 1}


async def test_the_contact_cap_counts_every_channel(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    phones = await make_citizens(engine, 2)
    inquiry_id = await make_inquiry(
        engine, yaml_text=THREE_QUESTIONS.replace("slug: three", "slug: three\nmax_contacts: 1")
    )
    async with engine.begin() as conn:  # the first citizen was already called once
        K = models.table(models.Campaign)
        voice = (
            await conn.execute(
                K.insert().values(inquiry_id=inquiry_id, channel="voice", audience={}).returning(K.c.id)
            )
        ).scalar_one()
        citizen = (await conn.execute(select(C.c.id).where(C.c.phone == phones[0]))).scalar_one()
        await conn.execute(
            D.insert().values(campaign_id=voice, citizen_id=citizen, status="sent", sent_at=datetime.now(UTC))
        )
    async with AsyncSession(engine) as session, session.begin():
        campaign = await create_campaign(session, inquiry="three", audience=Audience(), actor="t")
        campaign_id = campaign.id
    assert campaign_id is not None
    await plan(engine, campaign_id)
    await move(engine, redis, campaign_id, "running", actor="test")
    gateway = ScriptedGateway()
    await Sender(engine, redis, gateway, settings).run_lane(campaign_id)
    assert [m.to for m in gateway.handed] == [phones[1]]


class OvertakingGateway(ScriptedGateway):
    """A gateway whose delivery report arrives before the sender has recorded the hand-over."""

    def __init__(self, engine: AsyncEngine, settings: Settings, *, own_ids: bool) -> None:
        super().__init__()
        self.engine, self.settings, self.own_ids = engine, settings, own_ids

    async def send_many(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        from callcenter.sms.gateways.base import StatusReport
        from callcenter.sms.inbox import Inbox

        self.handed.extend(messages)
        inbox = Inbox(self.engine, self.settings)
        try:
            for m in messages:
                await inbox.status(StatusReport(gateway="x", state="delivered", ref=m.ref))
        finally:
            await inbox.aclose()
        return [SendResult(m.ref, gateway_id=f"gw-{m.ref}" if self.own_ids else None) for m in messages]


@pytest.mark.parametrize("own_ids", [True, False])
async def test_a_delivery_report_that_overtakes_the_recording_is_kept(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings, own_ids: bool
) -> None:
    await make_citizens(engine, 3)
    campaign_id = await new_campaign(engine, redis)
    gateway = OvertakingGateway(engine, settings, own_ids=own_ids)
    result = await Sender(engine, redis, gateway, settings).run_lane(campaign_id)
    assert result.sent == 3
    assert await counts(engine, campaign_id) == {"delivered": 3}
    async with engine.connect() as conn:
        segments = (await conn.execute(select(D.c.segments))).scalars().all()
    assert all(s is not None and s >= 1 for s in segments)  # still recorded
