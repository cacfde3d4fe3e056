"""The dialer on the Asterisk simulator, PostgreSQL / SQLite and Redis: pacing, every call
outcome and its retries, quiet hours, pause / resume / cancel, a dropped AMI connection, a
refused Originate, a refused login, and who must not be called.

Answered calls reach a stand-in for the IVR's ``outbound`` script (``StubOutbound``: it opens
the Call row as the IVR does); the simulator decides per number on ``PJSIP/<n>@trunk``.
"""

from __future__ import annotations

import asyncio
import time as clock
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.campaigns.service import Audience, create_campaign, move, plan
from callcenter.settings import Settings
from callcenter.sim import CitizenModel, Outcome
from callcenter.telephony.ami import AmiLoginError
from callcenter.voice import dial_rules
from callcenter.voice.dial_lab import StubOutbound, sim_rig
from tests.factories import SAMPLE, THREE_QUESTIONS, invite, make_citizens, make_inquiry

D, C, K = models.table(models.Delivery), models.table(models.Citizen), models.table(models.Campaign)
S, CALL = models.table(models.InquirySession), models.table(models.Call)
I = models.table(models.Inquiry)  # noqa: E741

pytestmark = pytest.mark.timeout(90)

FINAL = ("delivered", "sent", "failed", "skipped", "cancelled")


@pytest.fixture(autouse=True)
async def _no_call_rows(sqlite_engine: AsyncEngine) -> AsyncIterator[None]:
    """The shared fixtures do not empty ``call`` (and SQLite enforces its foreign keys)."""

    async def clear() -> None:
        async with sqlite_engine.begin() as conn:
            await conn.execute(delete(models.table(models.Ticket)))
            await conn.execute(delete(CALL))

    await clear()
    yield
    await clear()


def voice_settings(settings: Settings, **extra: object) -> Settings:
    values: dict[str, object] = {
        "voice_dial_template": "PJSIP/{number}@trunk",
        "originate_timeout_s": 1.0,
        "voice_channels": 10,
        "voice_cps": 50.0,
        "voice_retry_after_s": 0.4,
    }
    return settings.model_copy(update=values | extra)


async def voice_campaign(
    engine: AsyncEngine,
    redis: aioredis.Redis,
    *,
    inquiry: str = "three",
    audience: Audience = Audience(),
    start: bool = True,
    **kw: object,
) -> int:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        if (await session.execute(select(I.c.id).where(I.c.slug == inquiry))).first() is None:
            await session.rollback()
            await make_inquiry(engine, yaml_text=THREE_QUESTIONS if inquiry == "three" else None)
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(
            session,
            inquiry=inquiry,
            audience=audience,
            actor="test",
            channel="voice",
            **kw,  # type: ignore[arg-type]
        )
    assert campaign.id is not None
    await plan(engine, campaign.id)
    if start:
        await move(engine, redis, campaign.id, "running", actor="test")
    return campaign.id


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, what: str = "") -> None:
    deadline = clock.monotonic() + timeout
    while not await check():
        if clock.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


async def rows(engine: AsyncEngine, campaign_id: int) -> dict[str, dict[str, object]]:
    """The campaign's deliveries by citizen phone."""
    query = (
        select(D, C.c.phone)
        .select_from(D.join(C, C.c.id == D.c.citizen_id))
        .where(D.c.campaign_id == campaign_id)
    )
    async with engine.connect() as conn:
        return {r.phone: dict(r._mapping) for r in await conn.execute(query)}


async def settled(engine: AsyncEngine, campaign_id: int) -> bool:
    async with engine.connect() as conn:
        open_rows = (
            await conn.execute(
                select(func.count()).where(
                    D.c.campaign_id == campaign_id, D.c.status.in_(("pending", "sending"))
                )
            )
        ).scalar_one()
    return int(open_rows) == 0


async def campaign_status(engine: AsyncEngine, campaign_id: int) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(select(K.c.status).where(K.c.id == campaign_id))).scalar_one())


async def cdr(engine: AsyncEngine) -> list[tuple[int | None, str | None]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(CALL.c.delivery_id, CALL.c.outcome).order_by(CALL.c.id))
        return [(r.delivery_id, r.outcome) for r in result]


# -- outcomes and retries -------------------------------------------------------------------------


async def test_every_outcome_is_recorded_and_retried_as_its_rule_says(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    phones = await make_citizens(engine, 6)
    answer, busy, noanswer, congestion, failed, machine = phones
    citizens = CitizenModel(
        {
            answer: Outcome("answer", 100),
            busy: Outcome("busy", 100),
            noanswer: Outcome("noanswer"),
            congestion: Outcome("congestion", 50),
            failed: Outcome("failed"),
            machine: Outcome("answer", 100),
        }
    )
    campaign_id = await voice_campaign(engine, redis, max_attempts=2)
    stub = StubOutbound(engine, talk_s=0.3, machines=frozenset({machine}))
    async with sim_rig(voice_settings(settings), engine, redis, citizens, stub=stub) as rig:
        rig.start()
        await until(lambda: settled(engine, campaign_id), what="every delivery final")
        await until(lambda: campaign_status_is(engine, campaign_id, "done"), what="campaign done")
        await rig.stop()
    got = await rows(engine, campaign_id)
    summary = {phone: (r["status"], r["outcome"], r["attempts"]) for phone, r in got.items()}
    assert summary == {
        answer: ("delivered", "answered", 1),
        machine: ("sent", "machine", 1),
        busy: ("failed", "busy", 2),
        noanswer: ("failed", "no_answer", 2),
        congestion: ("failed", "congestion", 2),
        failed: ("failed", "failed", 2),  # a failure is tried once more only
    }
    assert all(r["sent_at"] is not None and r["claimed_at"] is None for r in got.values())
    assert got[answer]["delivered_at"] is not None
    # the answered call carried the campaign, the delivery and the citizen to the IVR
    assert stub.seen == [
        {
            "CC_CAMPAIGN_ID": str(campaign_id),
            "CC_DELIVERY_ID": str(got[answer]["id"]),
            "CC_CITIZEN_PHONE": answer,
        }
    ]
    # retried at the rule's interval: busy after half the retry delay, no answer after all of it
    tries = rig.probe.by_delivery()
    for phone, wait in ((busy, 0.2), (noanswer, 0.4), (congestion, 0.1)):
        first, second = tries[int(got[phone]["id"])]  # type: ignore[call-overload]
        assert first.ended is not None and second.started - first.ended >= wait - 0.05
    assert rig.probe.dialled_twice() == []
    # the dialer's own call records: every try the IVR never saw (answered: the IVR's row)
    records = await cdr(engine)
    ids = {phone: int(r["id"]) for phone, r in got.items()}  # type: ignore[call-overload]
    for phone, outcome, n in (
        (busy, "busy", 2),
        (noanswer, "no_answer", 2),
        (congestion, "congestion", 2),
        (failed, "failed", 2),
        (machine, "machine", 1),
        (answer, "answered", 1),
    ):
        assert records.count((ids[phone], outcome)) == n, (phone, records)


async def campaign_status_is(engine: AsyncEngine, campaign_id: int, status: str) -> bool:
    return await campaign_status(engine, campaign_id) == status


# -- pacing ---------------------------------------------------------------------------------------


async def test_never_more_calls_in_progress_than_channels(
    pg: AsyncEngine, redis: aioredis.Redis, tmp_path: object, redis_db: int
) -> None:
    settings = pg_settings(pg, redis_db, tmp_path, voice_channels=5, voice_cps=100.0)
    await make_citizens(pg, 20)
    campaign_id = await voice_campaign(pg, redis)
    citizens = CitizenModel(default=Outcome("answer", 100))
    async with sim_rig(settings, pg, redis, citizens, stub=StubOutbound(pg, talk_s=1.0)) as rig:
        rig.start()
        await until(lambda: settled(pg, campaign_id), what="every delivery final")
        await rig.stop()
    assert len(rig.probe.calls) == 20
    assert rig.probe.max_active == 5  # the limit, and used to the full
    assert rig.dialer.stats.max_in_progress == 5


async def test_calls_start_at_the_configured_rate(
    pg: AsyncEngine, redis: aioredis.Redis, tmp_path: object, redis_db: int
) -> None:
    settings = pg_settings(pg, redis_db, tmp_path, voice_channels=50, voice_cps=10.0)
    await make_citizens(pg, 41)
    campaign_id = await voice_campaign(pg, redis)
    citizens = CitizenModel(default=Outcome("answer", 50))
    async with sim_rig(settings, pg, redis, citizens, stub=StubOutbound(pg, talk_s=0.1)) as rig:
        rig.start()
        await until(lambda: settled(pg, campaign_id), what="every delivery final")
        await rig.stop()
    rate, starts, seconds = rig.probe.start_rate()
    assert starts == 41 and seconds > 3.5
    # never faster than the trunk allows; on a loaded machine it may run slower, but not stall
    # (the figure itself is measured by scripts/bench/dialer_pacing.py)
    assert 5.0 < rate <= 10.0 * 1.06


def pg_settings(pg: AsyncEngine, redis_db: int, tmp_path: object, **extra: object) -> Settings:
    from tests.conftest import make_settings

    base = make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db)  # type: ignore[arg-type]
    return voice_settings(base, **extra)


# -- quiet hours ----------------------------------------------------------------------------------


async def test_quiet_hours_defer_calls_and_retries(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    local = datetime.now(ZoneInfo("Africa/Tripoli"))

    def hhmm(at: datetime) -> str:
        return at.strftime("%H:%M")

    quiet_now = await make_citizens(engine, 3, municipality="now")
    [soon] = await make_citizens(engine, 1, start=100, municipality="soon")
    # a campaign in its quiet hours, and one whose quiet hours begin in a minute or two
    silent = await voice_campaign(
        engine,
        redis,
        audience=Audience(municipalities=("now",)),
        quiet_start=hhmm(local - timedelta(hours=1)),
        quiet_end=hhmm(local + timedelta(hours=1)),
    )
    end = local + timedelta(hours=3)
    later = await voice_campaign(
        engine,
        redis,
        audience=Audience(municipalities=("soon",)),
        quiet_start=hhmm(local + timedelta(minutes=2)),
        quiet_end=hhmm(end),
    )
    citizens = CitizenModel(default=Outcome("busy", 50))
    # a busy citizen is tried again after 300 s: inside the quiet hours, so at their end
    async with sim_rig(voice_settings(settings, voice_retry_after_s=600.0), engine, redis, citizens) as rig:
        rig.start()
        await until(lambda: has_outcome(engine, later), what="the busy outcome")
        await asyncio.sleep(1.0)
        await rig.stop()
    assert [call.number for call in rig.probe.calls] == [soon]
    quiet = await rows(engine, silent)
    assert {(r["status"], r["attempts"], r["claimed_at"]) for r in quiet.values()} == {("pending", 0, None)}
    assert set(quiet) == set(quiet_now)
    retry = (await rows(engine, later))[soon]
    assert (retry["status"], retry["outcome"], retry["attempts"]) == ("pending", "busy", 1)
    at = retry["next_attempt_at"]
    assert isinstance(at, datetime)
    at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(ZoneInfo("Africa/Tripoli"))
    assert hhmm(at) == hhmm(end) and at > local + timedelta(minutes=5)
    assert await campaign_status(engine, silent) == "running"


async def has_outcome(engine: AsyncEngine, campaign_id: int) -> bool:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(D.c.id).where(D.c.campaign_id == campaign_id, D.c.outcome.is_not(None))
        )
        return found.first() is not None


# -- pause, resume, cancel ------------------------------------------------------------------------


async def test_pause_resume_and_cancel_take_effect_within_a_second(
    pg: AsyncEngine, redis: aioredis.Redis, tmp_path: object, redis_db: int
) -> None:
    settings = pg_settings(pg, redis_db, tmp_path, voice_channels=6, voice_cps=20.0)
    await make_citizens(pg, 80)
    campaign_id = await voice_campaign(pg, redis)
    citizens = CitizenModel(default=Outcome("answer", 100))
    async with sim_rig(settings, pg, redis, citizens, stub=StubOutbound(pg, talk_s=0.3)) as rig:
        probe = rig.probe
        rig.start()

        async def started(n: int) -> None:
            await until(lambda: _true(len(probe.calls) >= n), what=f"{n} calls")

        await started(8)
        paused_at = clock.monotonic()
        await move(pg, redis, campaign_id, "paused", actor="test")
        await asyncio.sleep(1.5)
        assert max(call.started for call in probe.calls) < paused_at + 1.0
        dialled = len(probe.calls)
        await until(lambda: _true(not rig.dialer.book.calls), what="calls in progress to end")
        counts = await status_counts(pg, campaign_id)
        assert "sending" not in counts  # claimed rows went back to the outbox
        assert counts == {"delivered": dialled, "pending": 80 - dialled}
        assert await undialled_attempts(pg, campaign_id) == {0}

        resumed_at = clock.monotonic()
        await move(pg, redis, campaign_id, "running", actor="test")
        await started(dialled + 1)
        assert probe.calls[dialled].started < resumed_at + 1.0

        await started(dialled + 8)
        cancelled_at = clock.monotonic()
        await move(pg, redis, campaign_id, "cancelled", actor="test")
        await asyncio.sleep(1.5)
        assert max(call.started for call in probe.calls) < cancelled_at + 1.0
        await until(lambda: settled(pg, campaign_id), what="nothing open")
        await until(lambda: _true(not rig.dialer.book.calls), what="calls in progress to end")
        await rig.stop()
    counts = await status_counts(pg, campaign_id)
    assert set(counts) <= {"delivered", "cancelled"}
    assert counts["cancelled"] >= 80 - len(probe.calls)
    assert probe.dialled_twice() == []
    assert await campaign_status(pg, campaign_id) == "cancelled"


def _true(value: bool) -> Awaitable[bool]:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


async def status_counts(engine: AsyncEngine, campaign_id: int) -> dict[str, int]:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(D.c.status, func.count()).where(D.c.campaign_id == campaign_id).group_by(D.c.status)
        )
        return {str(status): int(n) for status, n in result}


async def undialled_attempts(engine: AsyncEngine, campaign_id: int) -> set[int]:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(D.c.attempts).where(D.c.campaign_id == campaign_id, D.c.status == "pending").distinct()
        )
        return {int(n) for n in result.scalars()}


# -- the AMI connection drops mid-campaign --------------------------------------------------------


async def test_a_dropped_ami_connection_loses_no_call_and_rings_nobody_twice(
    pg: AsyncEngine, redis: aioredis.Redis, tmp_path: object, redis_db: int
) -> None:
    settings = pg_settings(pg, redis_db, tmp_path, voice_channels=12, voice_cps=25.0)
    phones = await make_citizens(pg, 90)
    kinds = {
        phone: ("answer", "answer", "answer", "busy", "noanswer")[i % 5] for i, phone in enumerate(phones)
    }
    citizens = CitizenModel(rule=lambda number: Outcome(kinds[number], 200))  # type: ignore[arg-type]
    campaign_id = await voice_campaign(pg, redis, max_attempts=3)
    async with sim_rig(settings, pg, redis, citizens, stub=StubOutbound(pg, talk_s=0.6)) as rig:
        probe = rig.probe
        rig.start()
        for n in (20, 50, 80):  # three drops, at different moments of the campaign
            await until(lambda n=n: _true(len(probe.calls) >= n), what=f"{n} calls")  # type: ignore[misc]
            rig.sim.drop_ami_connections()
        await until(lambda: settled(pg, campaign_id), timeout=60, what="every delivery final")
        await until(lambda: _true(not rig.dialer.book.calls), what="the book to empty")
        await rig.stop()
    assert rig.ami.reconnects == 3
    assert rig.dialer.stats.resyncs >= 3
    assert probe.dialled_twice() == []
    assert probe.max_active <= 12
    got = await rows(pg, campaign_id)
    tries = probe.by_delivery()
    for phone, row in got.items():
        n = len(tries.get(int(row["id"]), []))  # type: ignore[call-overload]
        if kinds[phone] == "answer":
            assert (row["status"], row["outcome"], n) == ("delivered", "answered", 1), (phone, row)
        else:
            assert (row["status"], row["attempts"]) == ("failed", 3), (phone, row)
        # every try that reached Asterisk is counted (an unconfirmed Originate counts too)
        assert int(row["attempts"]) >= n  # type: ignore[call-overload]


async def test_an_originate_whose_response_is_lost_is_never_dialled_twice(
    pg: AsyncEngine, redis: aioredis.Redis, tmp_path: object, redis_db: int
) -> None:
    settings = pg_settings(pg, redis_db, tmp_path, voice_channels=4, voice_cps=20.0, voice_retry_after_s=0.3)
    phones = await make_citizens(pg, 8)
    talker, unanswered = phones[2], phones[5]
    citizens = CitizenModel({unanswered: Outcome("noanswer")}, default=Outcome("answer", 100))
    campaign_id = await voice_campaign(pg, redis, max_attempts=2)
    async with sim_rig(settings, pg, redis, citizens, stub=StubOutbound(pg, talk_s=1.5)) as rig:
        original = rig.sim.ami._action_originate
        cut: list[str] = []

        async def connection_drops_before_the_response(session: Any, request: Any) -> None:
            channel = next(value for key, value in request if key == "Channel")
            if any(phone in channel for phone in (talker, unanswered)) and channel not in cut:
                cut.append(channel)
                session.writer.transport.abort()  # Asterisk got it and places the call anyway
            await original(session, request)

        rig.sim.ami._action_originate = connection_drops_before_the_response  # type: ignore[method-assign]
        rig.start()
        await until(lambda: settled(pg, campaign_id), timeout=40, what="every delivery final")
        await until(lambda: _true(not rig.dialer.book.in_progress), what="no call in progress")
        await rig.stop()
    assert len(cut) == 2 and rig.dialer.stats.unconfirmed == 2
    assert rig.probe.dialled_twice() == []
    assert rig.probe.max_active <= 4
    got = await rows(pg, campaign_id)
    tries = rig.probe.by_delivery()
    # answered while nobody listened: the IVR's Call row says so; one call only
    assert (got[talker]["status"], got[talker]["outcome"]) == ("delivered", "answered")
    assert len(tries[int(got[talker]["id"])]) == 1  # type: ignore[call-overload]
    # rang unanswered while nobody listened: settled as a missed outcome, then retried
    assert (got[unanswered]["status"], got[unanswered]["attempts"]) == ("failed", 2)
    assert len(tries[int(got[unanswered]["id"])]) == 2  # type: ignore[call-overload]
    assert all(r["status"] == "delivered" for p, r in got.items() if p != unanswered)


# -- Asterisk says no -----------------------------------------------------------------------------


async def test_a_refused_originate_is_a_failed_try_that_rings_nobody(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    await make_citizens(engine, 3)
    campaign_id = await voice_campaign(engine, redis)
    bad = voice_settings(
        settings, voice_dial_template="{number}", voice_retry_after_s=0.2
    )  # "Invalid channel"
    async with sim_rig(bad, engine, redis, CitizenModel()) as rig:
        rig.start()
        await until(lambda: settled(engine, campaign_id), what="every delivery final")
        await rig.stop()
    got = await rows(engine, campaign_id)
    assert {(r["status"], r["outcome"], r["attempts"], r["sent_at"]) for r in got.values()} == {
        ("failed", "failed", 2, None)
    }
    assert all("Invalid channel" in str(r["error"]) for r in got.values())
    assert rig.probe.calls == [] and rig.dialer.stats.refused == 6
    assert await cdr(engine) == []  # nobody was called
    assert rig.dialer.book.in_progress == 0


async def test_a_refused_login_stops_the_dialer_before_it_claims_anything(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    await make_citizens(engine, 2)
    campaign_id = await voice_campaign(engine, redis)
    async with sim_rig(voice_settings(settings), engine, redis, CitizenModel(), secret="wrong") as rig:
        with pytest.raises(AmiLoginError):
            await rig.dialer.run(asyncio.Event())
    got = await rows(engine, campaign_id)
    assert {(r["status"], r["attempts"], r["claimed_at"]) for r in got.values()} == {("pending", 0, None)}


# -- who must not be called -----------------------------------------------------------------------


async def test_completed_opted_out_and_capped_citizens_are_not_called(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    phones = await make_citizens(engine, 5)
    normal, completed, opted_out, capped, retry = phones
    inquiry_id = await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    async with engine.begin() as conn:
        await conn.execute(update(I).where(I.c.id == inquiry_id).values(max_contacts=2))
    sms_campaign = await invite(engine, inquiry_id, [capped, retry])  # one contact each
    campaign_id = await voice_campaign(engine, redis, start=False)
    ids = await citizen_ids(engine, phones)
    async with engine.begin() as conn:
        # after planning: one completes the inquiry by SMS, one opts out, one asks a callback
        await conn.execute(
            insert(S).values(
                inquiry_id=inquiry_id, citizen_id=ids[completed], status="completed", answered={}
            )
        )
        await conn.execute(update(C).where(C.c.id == ids[opted_out]).values(opted_out_at=func.now()))
        await conn.execute(
            insert(CALL).values(
                direction="out", citizen_id=ids[capped], campaign_id=sms_campaign, outcome="callback"
            )
        )
        # a retry of a call already placed is not a new contact
        await conn.execute(
            update(D)
            .where(D.c.campaign_id == campaign_id, D.c.citizen_id == ids[retry])
            .values(attempts=1, sent_at=func.now(), outcome="no_answer")
        )
    await move(engine, redis, campaign_id, "running", actor="test")
    async with sim_rig(
        voice_settings(settings), engine, redis, CitizenModel(default=Outcome("answer", 50))
    ) as rig:
        rig.start()
        await until(lambda: settled(engine, campaign_id), what="every delivery final")
        await rig.stop()
    assert sorted(call.number for call in rig.probe.calls) == sorted([normal, retry])
    got = await rows(engine, campaign_id)
    summary = {phone: (r["status"], r["error"], r["attempts"]) for phone, r in got.items()}
    assert summary == {
        normal: ("delivered", None, 1),
        retry: ("delivered", None, 2),
        completed: ("skipped", dial_rules.COMPLETED, 0),
        opted_out: ("skipped", dial_rules.OPTED_OUT, 0),
        capped: ("skipped", dial_rules.MAX_CONTACTS, 0),
    }


async def citizen_ids(engine: AsyncEngine, phones: list[str]) -> dict[str, int]:
    async with engine.connect() as conn:
        result = await conn.execute(select(C.c.phone, C.c.id).where(C.c.phone.in_(phones)))
        return {str(phone): int(cid) for phone, cid in result}


async def test_a_citizen_in_two_campaigns_is_never_rung_twice_at_once(
    pg: AsyncEngine, redis: aioredis.Redis, tmp_path: object, redis_db: int
) -> None:
    settings = pg_settings(pg, redis_db, tmp_path)
    [phone] = await make_citizens(pg, 1)
    await make_inquiry(pg)  # the sample inquiry, besides "three"
    slug = await _sample_slug()
    first = await voice_campaign(pg, redis)
    second = await voice_campaign(pg, redis, inquiry=slug)
    async with sim_rig(settings, pg, redis, CitizenModel(), stub=StubOutbound(pg, talk_s=1.0)) as rig:
        rig.start()
        await until(lambda: _true(len(rig.probe.calls) == 2), timeout=20, what="both calls")
        await until(lambda: settled(pg, first), what="first final")
        await until(lambda: settled(pg, second), what="second final")
        await rig.stop()
    one, two = rig.probe.calls
    assert one.number == two.number == phone
    assert one.ended is not None and two.started >= one.ended
    assert rig.dialer.stats.skipped_busy >= 1


async def _sample_slug() -> str:
    from callcenter.inquiry.schema import parse_inquiry_yaml

    return parse_inquiry_yaml(SAMPLE.read_text(encoding="utf-8")).slug


# -- a dialer that died -----------------------------------------------------------------------------


async def test_rows_left_by_a_dead_dialer_are_settled_without_ringing_twice(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    phones = await make_citizens(engine, 3)
    campaign_id = await voice_campaign(engine, redis, max_attempts=3)
    ids = await citizen_ids(engine, phones)
    old = datetime.now(UTC) - timedelta(minutes=10)
    async with engine.begin() as conn:
        # dialled (an ActionID was written) by a dialer that then died, and claimed but never dialled
        await conn.execute(
            update(D)
            .where(D.c.campaign_id == campaign_id, D.c.citizen_id == ids[phones[0]])
            .values(status="sending", claimed_at=old, attempts=1, sent_at=old, gateway_id="cc-dead")
        )
        await conn.execute(
            update(D)
            .where(D.c.campaign_id == campaign_id, D.c.citizen_id == ids[phones[1]])
            .values(status="sending", claimed_at=old)
        )
    lazy = voice_settings(settings, voice_retry_after_s=3600.0)
    async with sim_rig(lazy, engine, redis, CitizenModel(default=Outcome("answer", 50))) as rig:
        rig.start()
        await until(lambda: _true(len(rig.probe.calls) == 2), what="two calls")
        await asyncio.sleep(0.5)
        await rig.stop()
    got = await rows(engine, campaign_id)
    dead = got[phones[0]]
    assert (dead["status"], dead["outcome"], dead["attempts"]) == ("pending", "no_answer", 1)
    assert isinstance(dead["next_attempt_at"], datetime)
    assert sorted(call.number for call in rig.probe.calls) == sorted(phones[1:])
    assert got[phones[1]]["status"] == "delivered"
