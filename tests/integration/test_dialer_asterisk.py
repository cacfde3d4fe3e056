"""The dialer against a real Asterisk 22 on the project's dialplans: a small voice campaign
whose calls go out through ``Local/<n>@campaign-dial`` to the ``trunk`` endpoint, where a SIPp
UAS answers (and keys), is busy (486), does not answer, or hangs up mid-question.

The trunk has one far end at a time, so the test opens one delivery at a time (its
``next_attempt_at``) after starting the matching SIPp. Answered calls reach a small FastAGI
``outbound`` handler (the IVR's own tests cover the inquiry itself).

Skipped without the Asterisk/SIPp builds (../shared/asterisk or CALLCENTER_ASTERISK_DIR),
except under CI (``CI=true``), where their absence fails.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.campaigns.service import Audience, create_campaign, move, plan
from callcenter.settings import Settings
from callcenter.telephony import names
from callcenter.telephony.agi import AgiChannel, AgiHangup, AgiServer
from callcenter.telephony.ami import AmiClient
from callcenter.testing.asterisk import (
    AsteriskInstance,
    Toolchain,
    UasBehaviour,
)
from callcenter.voice.dialer import Dialer
from tests.conftest import make_settings
from tests.factories import THREE_QUESTIONS, make_citizens, make_inquiry

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(60)]

D, C, CALL = models.table(models.Delivery), models.table(models.Citizen), models.table(models.Call)


@pytest.fixture
def silence(tmp_path: Path) -> str:
    """A 0.3 s prompt (absolute path, no extension): Asterisk has no sound files here."""
    path = tmp_path / "silence"
    with wave.open(str(path.with_suffix(".wav")), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 2400)
    return str(path)


@pytest.fixture
async def calls_cleared(pg: AsyncEngine) -> AsyncIterator[None]:
    yield
    async with pg.begin() as conn:
        await conn.execute(delete(CALL))


async def test_a_voice_campaign_through_campaign_dial_and_the_trunk(
    tools: Toolchain,
    tmp_path: Path,
    pg: AsyncEngine,
    redis: aioredis.Redis,
    redis_db: int,
    silence: str,
    calls_cleared: None,
) -> None:
    seen: dict[str, dict[str, Any]] = {}

    async def outbound(call: AgiChannel) -> None:
        phone = await call.get_variable(names.VAR_CITIZEN) or "?"
        entry: dict[str, Any] = {"delivery": await call.get_variable(names.VAR_DELIVERY)}
        seen[phone] = entry
        try:
            entry["key"] = await call.get_data(silence, 4000, 1)
            entry["second"] = await call.get_data(silence, 1500, 1)  # the hang-up citizen leaves here
        except AgiHangup:
            entry["hung_up"] = True

    answer, busy, unanswered, leaves = phones = await make_citizens(pg, 4)
    settings: Settings = make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db)
    settings = settings.model_copy(
        update={
            "originate_timeout_s": 2.5,  # how long an unanswered call rings
            "voice_channels": 1,
            "voice_cps": 5.0,
            "voice_retry_after_s": 3600.0,
        }
    )
    assert settings.voice_dial_template == "Local/{number}@campaign-dial"
    campaign_id = await voice_campaign(pg, redis)
    later = datetime.now(UTC) + timedelta(days=1)
    async with pg.begin() as conn:  # nobody is due until the test opens them one by one
        await conn.execute(update(D).where(D.c.campaign_id == campaign_id).values(next_attempt_at=later))

    server = AgiServer("127.0.0.1", 0, close_timeout=2)
    server.register(names.AGI_OUTBOUND, outbound)
    async with server, AsteriskInstance(tools, tmp_path / "pbx", agi_port=server.port, robots=False) as pbx:
        ami = AmiClient("127.0.0.1", pbx.ami_port, pbx.ami_username, pbx.ami_secret, ping_interval=None)
        dialer = Dialer(settings, pg, redis, ami, switch_every_s=None)
        stop = asyncio.Event()
        running = asyncio.create_task(dialer.run(stop))
        try:
            phases: list[tuple[str, UasBehaviour, dict[str, Any]]] = [
                (answer, UasBehaviour.ANSWER, {"keys": "4", "delay_ms": 600}),
                (busy, UasBehaviour.BUSY, {}),
                (unanswered, UasBehaviour.NO_ANSWER, {}),
                (leaves, UasBehaviour.HANGUP, {"keys": "7", "delay_ms": 600, "hangup_after_ms": 600}),
            ]
            for phone, behaviour, options in phases:
                uas = await pbx.sipp_uas(behaviour, timeout_s=20, **options)
                async with pg.begin() as conn:
                    await conn.execute(
                        update(D)
                        .where(D.c.citizen_id == await citizen_id(pg, phone))
                        .values(next_attempt_at=None)
                    )
                await until(lambda phone=phone: outcome_of(pg, phone), what=f"{behaviour} outcome")
                result = await uas.wait()
                assert result.ok, f"{behaviour}: {result}\n{result.errors}\n{pbx.log_tail()}"
                await until(lambda: book_empty(dialer), what=f"{behaviour}: the channel freed")
        finally:
            stop.set()
            await running
            await ami.close()

    got = await deliveries(pg, campaign_id)
    assert {p: (r["status"], r["outcome"], r["attempts"]) for p, r in got.items()} == {
        answer: ("delivered", "answered", 1),
        busy: ("pending", "busy", 1),  # retried in half an hour
        unanswered: ("pending", "no_answer", 1),  # retried in an hour
        leaves: ("delivered", "answered", 1),  # hung up mid-question: answered, partial
    }
    retry_busy, retry_unanswered = got[busy]["next_attempt_at"], got[unanswered]["next_attempt_at"]
    assert isinstance(retry_busy, datetime) and isinstance(retry_unanswered, datetime)
    assert timedelta(minutes=25) < retry_busy - datetime.now(UTC) < timedelta(minutes=31)
    assert timedelta(minutes=55) < retry_unanswered - datetime.now(UTC) < timedelta(minutes=61)
    assert seen[answer] == {"delivery": str(got[answer]["id"]), "key": "4", "second": ""}
    assert seen[leaves] == {"delivery": str(got[leaves]["id"]), "key": "7", "hung_up": True}
    assert set(seen) == {answer, leaves}
    async with pg.connect() as conn:
        records = (await conn.execute(select(CALL.c.delivery_id, CALL.c.outcome, CALL.c.channel))).all()
    assert sorted((r.delivery_id, r.outcome) for r in records) == sorted(
        [(got[busy]["id"], "busy"), (got[unanswered]["id"], "no_answer")]
    )
    assert all(r.channel.startswith("Local/+218") and r.channel.endswith("@campaign-dial") for r in records)
    assert set(phones) == set(got)


async def voice_campaign(engine: AsyncEngine, redis: aioredis.Redis) -> int:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(
            session, inquiry="three", audience=Audience(), actor="test", channel="voice"
        )
    assert campaign.id is not None
    await plan(engine, campaign.id)
    await move(engine, redis, campaign.id, "running", actor="test")
    return campaign.id


async def citizen_id(engine: AsyncEngine, phone: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(C.c.id).where(C.c.phone == phone))).scalar_one())


async def outcome_of(engine: AsyncEngine, phone: str) -> bool:
    async with engine.connect() as conn:
        outcome = (
            await conn.execute(
                select(D.c.outcome).select_from(D.join(C, C.c.id == D.c.citizen_id)).where(C.c.phone == phone)
            )
        ).scalar()
    return outcome is not None


async def book_empty(dialer: Dialer) -> bool:
    return dialer.book.in_progress == 0


async def deliveries(engine: AsyncEngine, campaign_id: int) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(D, C.c.phone)
            .select_from(D.join(C, C.c.id == D.c.citizen_id))
            .where(D.c.campaign_id == campaign_id)
        )
        return {r.phone: dict(r._mapping) for r in result}


async def until(check: Any, *, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
