"""Asterisk failing under the engine, on a real Asterisk 22 with SIPp citizens: Asterisk killed
and started again with calls in progress, the AMI connection cut, the FastAGI connection cut.

Each test runs the real IVR (``make_agi_server``) on silent prompts and the real dialer; SIPp
UASes behind the ``trunk`` endpoint answer campaign calls and key their answers (RFC 2833),
a SIPp UAC calls 1415. The links are cut by :class:`~callcenter.testing.tcp_proxy.TcpProxy`
(a reset, both ways), Asterisk by SIGKILL (:meth:`AsteriskInstance.crash`).

Skipped without the Asterisk/SIPp builds (../shared/asterisk or CALLCENTER_ASTERISK_DIR),
except under CI (``CI=true``), where their absence fails.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import metrics, models
from callcenter.campaigns.service import Audience, create_campaign, move, plan
from callcenter.health import ami_check, check_all, database_check, redis_check
from callcenter.settings import Settings
from callcenter.telephony.agi import AgiServer
from callcenter.telephony.ami import AmiClient
from callcenter.testing.asterisk import AsteriskInstance, Toolchain, UasBehaviour
from callcenter.testing.tcp_proxy import TcpProxy
from callcenter.voice.dialer import Dialer
from callcenter.voice.ivr import LINK_LOST, make_agi_server
from callcenter.voice.ivr_prompts import write_silent_prompts
from callcenter.voice.ivr_store import VoiceStore
from tests.conftest import make_settings
from tests.factories import THREE_QUESTIONS, make_citizens, make_inquiry

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(90)]

D, C, CALL = models.table(models.Delivery), models.table(models.Citizen), models.table(models.Call)
A, Q = models.table(models.Answer), models.table(models.Question)
INBOUND_CALLER = "0912345678"
INBOUND_PHONE = "+218912345678"


async def test_asterisk_killed_mid_calls_keeps_the_answers_ends_the_sessions_and_the_dialer_dials_on(
    tools: Toolchain, tmp_path: Path, pg: AsyncEngine, redis: aioredis.Redis, redis_db: int
) -> None:
    """Three campaign calls and one 1415 caller have answered q1 and wait on q2 when Asterisk
    is killed. Their answers stay (once each), every session and Call row ends, the dialer
    logs in again and resynchronises (its three lost calls no longer hold the channels), and it
    dials the rest of the campaign as soon as Asterisk is back — not while it is still booting,
    when an Originate would be refused and cost the citizen an attempt."""
    campaign_id, phones = await held_campaign(pg, redis, citizens=6)
    before, after = phones[:3], phones[3:]
    settings = await voice_settings(tmp_path, pg, redis_db, voice_channels=3)
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0)
    async with server, AsteriskInstance(tools, tmp_path / "pbx", agi_port=server.port) as pbx:
        # the dialer logs in again as soon as AMI opens: into Asterisk's boot, reliably
        ami = AmiClient("127.0.0.1", pbx.ami_port, pbx.ami_username, pbx.ami_secret,
                        ping_interval=None, reconnect_delay=0.05, reconnect_max_delay=0.1)  # fmt: skip
        dialer = Dialer(settings, pg, redis, ami, switch_every_s=None)
        async with running(dialer) as stopped:
            uas = await pbx.sipp_uas(UasBehaviour.ANSWER, calls=3, keys="4", delay_ms=2000, timeout_s=60)
            caller = asyncio.create_task(pbx.sipp_uac(keys="1w4", caller=INBOUND_CALLER, timeout_s=60))
            await open_deliveries(pg, before)
            await until(lambda: answered_q1(pg, 4), what="q1 answered on all four calls")
            assert server.active_calls == 4 and dialer.book.in_progress == 3

            await pbx.crash()
            await until(lambda: no_calls(server), what="the IVR sessions ended")
            assert await open_call_rows(pg) == 0
            await pbx.stop_sipps()  # their calls died with Asterisk; they wait for a BYE
            assert uas.returncode is not None and not (await caller).ok
            # the rest of the campaign is due while Asterisk is away, and comes back to it
            uas = await pbx.sipp_uas(UasBehaviour.ANSWER, calls=3, keys="4w1w2", delay_ms=2000, timeout_s=60)
            await open_deliveries(pg, after)
            await pbx.start()

            async def rest_answered() -> bool:
                assert dialer.stats.refused == 0, "an Originate went to an Asterisk still booting"
                return await completed(pg, after)

            await until(rest_answered, timeout=30, what="the rest answered every question")
            await until(lambda: settled(pg, campaign_id), what="every delivery settled")
            await until(lambda: no_calls(server), what="the IVR sessions of the second round ended")
            result = await uas.wait()
            assert result.ok, f"{result}\n{result.errors}\n{pbx.log_tail()}"
            await until(lambda: book_empty(dialer), what="the dialer's book emptied")
        assert stopped.done() and stopped.exception() is None
        await ami.close()

    assert ami.reconnects == 1 and dialer.stats.resyncs >= 1 and dialer.stats.refused == 0
    got = await deliveries(pg, campaign_id)
    assert {p: (r["status"], r["outcome"], r["attempts"]) for p, r in got.items()} == dict.fromkeys(
        phones, ("delivered", "answered", 1)
    )
    answers = await answers_by_phone(pg)
    assert answers == {
        **{phone: {"q1": "4"} for phone in before},
        INBOUND_PHONE: {"q1": "4"},
        **{phone: {"q1": "4", "q2": "yes", "q3": "2"} for phone in after},
    }
    rows = await call_rows(pg)  # the crash failed the calls: no citizen hung up
    assert sorted(
        (r["caller"], r["direction"], r["outcome"], r["hangup_cause"] or "") for r in rows
    ) == sorted(
        [(phone, "out", "failed", LINK_LOST) for phone in before]
        + [(INBOUND_PHONE, "in", "failed", LINK_LOST)]
        + [(phone, "out", "completed", "") for phone in after]
    )


async def test_a_cut_ami_link_shows_in_readiness_and_metrics_and_nobody_is_rung_twice(
    tools: Toolchain, tmp_path: Path, pg: AsyncEngine, redis: aioredis.Redis, redis_db: int
) -> None:
    """The AMI link is cut just after an Originate reached Asterisk, before its response came
    back (Asterisk rings the citizen; the dialer cannot know). While the link is down, readiness
    names AMI, the metric says so, and nobody else is dialled. Meanwhile a call dialled before
    ends unseen, and the tripped one is answered. After the link returns the dialer resyncs:
    the ended call frees its channel, the tripped call is found on its channel and recorded
    answered, never dialled again; the rest of the campaign is dialled."""
    campaign_id, phones = await held_campaign(pg, redis, citizens=4)
    first, tripped, *rest = phones
    settings = await voice_settings(tmp_path, pg, redis_db, voice_channels=3)
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0)
    async with (
        server,
        AsteriskInstance(tools, tmp_path / "pbx", agi_port=server.port) as pbx,
        TcpProxy(pbx.ami_port) as proxy,
    ):
        ami = AmiClient("127.0.0.1", proxy.port, pbx.ami_username, pbx.ami_secret,
                        ping_interval=None, reconnect_delay=0.2, reconnect_max_delay=0.4)  # fmt: skip
        dialer = Dialer(settings, pg, redis, ami, switch_every_s=None)
        checks = {
            "database": database_check(lambda: pg),
            "redis": redis_check(lambda: redis),
            "ami": ami_check(lambda: ami.connected),
        }
        try:
            async with scraped(ami, dialer, server), running(dialer):
                uas = await pbx.sipp_uas(
                    UasBehaviour.ANSWER, calls=4, keys="4w1w2", delay_ms=2000, timeout_s=60
                )
                await until(lambda: is_up(ami), what="AMI logged in")
                assert (await check_all(checks)).ready and (await scrape())["callcenter_ami_connected"] == 1
                await open_deliveries(pg, [first])
                await until(lambda: answered(pg, first, "q1"), what="the first citizen answering q1")

                cut = proxy.trip(b"Action: Originate")
                await open_deliveries(pg, [tripped])
                await asyncio.wait_for(cut.wait(), 10)
                await open_deliveries(pg, rest)  # due now, but not dialled while AMI is away
                ready = await check_all(checks)
                assert ready.failed == ("ami",) and ready.checks["ami"] == "AmiDisconnected"
                figures = await scrape()
                assert figures["callcenter_ami_connected"] == 0
                assert figures['callcenter_calls_in_progress{kind="outbound"}'] == 2
                await until(lambda: call_ended(pg, first), what="the first call ending, unseen")
                assert not await call_ended(pg, tripped), "the tripped call is still on"
                assert [
                    r["attempts"] for p, r in (await deliveries(pg, campaign_id)).items() if p in rest
                ] == [0, 0]

                await proxy.restore()
                await until(lambda: is_up(ami), what="AMI logged in again")
                assert (await check_all(checks)).ready
                figures = await scrape()
                assert (
                    figures["callcenter_ami_connected"] == 1
                    and figures["callcenter_ami_reconnects_total"] == 1
                )
                await until(lambda: completed(pg, phones), timeout=30, what="every citizen answering")
                await until(lambda: settled(pg, campaign_id), what="every delivery settled")
                await until(lambda: book_empty(dialer), what="the dialer's book emptied")
                await until(lambda: no_calls(server), what="the IVR sessions ended")
                result = await uas.wait()
                assert result.ok and result.successful == 4, f"{result}\n{result.errors}"
                figures = await scrape()
                assert figures['callcenter_calls_in_progress{kind="outbound"}'] == 0
                assert figures['callcenter_calls_in_progress{kind="agi"}'] == 0
        finally:
            await ami.close()

    assert dialer.stats.unconfirmed == 1 and dialer.stats.refused == 0
    got = await deliveries(pg, campaign_id)
    assert {p: (r["status"], r["outcome"], r["attempts"]) for p, r in got.items()} == dict.fromkeys(
        phones, ("delivered", "answered", 1)
    )
    rows = await call_rows(pg)
    assert sorted(r["delivery_id"] for r in rows) == sorted(r["id"] for r in got.values())  # one each
    assert {r["outcome"] for r in rows} == {"completed"}


async def test_a_cut_fastagi_link_ends_the_sessions_keeps_the_answers_and_the_server_serves_on(
    tools: Toolchain, tmp_path: Path, pg: AsyncEngine, redis: aioredis.Redis, redis_db: int
) -> None:
    """A campaign call and a 1415 caller have answered q1 when their FastAGI connections are
    reset. Both sessions end (nothing left running, their Call rows closed as failed on our
    side, not abandoned by the citizen), q1 stays, Asterisk hangs both calls up, the dialer
    sees it and frees the channel. The server takes the next calls: the campaign goes on, and
    the caller who calls back goes on at q2."""
    campaign_id, (cut_off, later) = await held_campaign(pg, redis, citizens=2)
    settings = await voice_settings(tmp_path, pg, redis_db, voice_channels=2)
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0)
    async with (
        server,
        TcpProxy(server.port) as proxy,
        AsteriskInstance(tools, tmp_path / "pbx", agi_port=proxy.port) as pbx,
    ):
        ami = AmiClient("127.0.0.1", pbx.ami_port, pbx.ami_username, pbx.ami_secret, ping_interval=None)
        dialer = Dialer(settings, pg, redis, ami, switch_every_s=None)
        async with running(dialer):
            uas = await pbx.sipp_uas(UasBehaviour.ANSWER, calls=1, keys="4", delay_ms=2000, timeout_s=40)
            caller = asyncio.create_task(pbx.sipp_uac(keys="1w4", caller=INBOUND_CALLER, timeout_s=40))
            await open_deliveries(pg, [cut_off])
            await until(lambda: answered_q1(pg, 2), what="q1 answered on both calls")
            assert server.active_calls == 2 and proxy.open_connections == 2

            await proxy.reset_open()
            await until(lambda: no_calls(server), what="both IVR sessions ended")
            assert await open_call_rows(pg) == 0
            for result in (await caller, await uas.wait()):  # Asterisk hung up on both (BYE)
                assert result.ok, f"{result}\n{result.errors}\n{pbx.log_tail()}"
            await until(lambda: book_empty(dialer), what="the dialer freeing the channel")

            uas = await pbx.sipp_uas(UasBehaviour.ANSWER, calls=1, keys="4w1w2", delay_ms=2000, timeout_s=40)
            await open_deliveries(pg, [later])
            again = await pbx.sipp_uac(keys="1w1w2", caller=INBOUND_CALLER, timeout_s=40)
            assert again.ok, f"{again}\n{again.errors}\n{pbx.log_tail()}"
            assert (await uas.wait()).ok
            await until(lambda: completed(pg, [later, INBOUND_PHONE]), what="the next calls answering")
            await until(lambda: no_calls(server), what="the next IVR sessions ended")
            await until(lambda: book_empty(dialer), what="the dialer's book emptied")
        await ami.close()

    got = await deliveries(pg, campaign_id)
    assert {p: (r["status"], r["outcome"], r["attempts"]) for p, r in got.items()} == {
        cut_off: ("delivered", "answered", 1),
        later: ("delivered", "answered", 1),
    }
    assert await answers_by_phone(pg) == {
        cut_off: {"q1": "4"},
        later: {"q1": "4", "q2": "yes", "q3": "2"},
        INBOUND_PHONE: {"q1": "4", "q2": "yes", "q3": "2"},
    }
    rows = await call_rows(pg)
    assert sorted(
        (r["caller"], r["direction"], r["outcome"], r["hangup_cause"] or "") for r in rows
    ) == sorted(
        [
            (cut_off, "out", "failed", LINK_LOST),
            (INBOUND_PHONE, "in", "failed", LINK_LOST),
            (later, "out", "completed", ""),
            (INBOUND_PHONE, "in", "completed", ""),
        ]
    )


# -- helpers ----------------------------------------------------------------------------------


async def voice_settings(tmp_path: Path, pg: AsyncEngine, redis_db: int, **extra: object) -> Settings:
    """Settings on silent prompts for every inquiry in the database."""
    prompts = tmp_path / "prompts"
    store = VoiceStore(pg)
    async with pg.connect() as conn:
        ids = list((await conn.execute(select(models.table(models.Inquiry).c.id))).scalars())
    write_silent_prompts(prompts, [await store.definition(i) for i in ids])
    values: dict[str, object] = {
        "prompts_dir": prompts,
        "originate_timeout_s": 10.0,
        "voice_cps": 10.0,
        "voice_retry_after_s": 3600.0,
        **extra,
    }
    return make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db, **values)


async def held_campaign(pg: AsyncEngine, redis: aioredis.Redis, *, citizens: int) -> tuple[int, list[str]]:
    """A running voice campaign of the three-question inquiry whose deliveries are all held
    (due tomorrow) until :func:`open_deliveries`: the test decides who is rung when."""
    await make_inquiry(pg, yaml_text=THREE_QUESTIONS)
    phones = await make_citizens(pg, citizens)
    async with AsyncSession(pg, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(
            session, inquiry="three", audience=Audience(), actor="test", channel="voice"
        )
    assert campaign.id is not None
    await plan(pg, campaign.id)
    async with pg.begin() as conn:
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        await conn.execute(update(D).where(D.c.campaign_id == campaign.id).values(next_attempt_at=tomorrow))
    await move(pg, redis, campaign.id, "running", actor="test")
    return campaign.id, phones


async def open_deliveries(pg: AsyncEngine, phones: Sequence[str]) -> None:
    citizens = select(C.c.id).where(C.c.phone.in_(phones))
    async with pg.begin() as conn:
        await conn.execute(update(D).where(D.c.citizen_id.in_(citizens)).values(next_attempt_at=None))


@asynccontextmanager
async def running(dialer: Dialer) -> AsyncIterator[asyncio.Task[None]]:
    """The dialer runs inside; stopped after (its task is done once the block is left)."""
    stop = asyncio.Event()
    task = asyncio.create_task(dialer.run(stop), name="test-dialer")
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait({task}, timeout=30)


@asynccontextmanager
async def scraped(ami: AmiClient, dialer: Dialer, server: AgiServer) -> AsyncIterator[None]:
    """Registered for the metrics as the ``agi`` process registers its own (and only these:
    objects of earlier tests that are garbage but not yet collected would count too)."""
    gc.collect()
    assert not (list(metrics.LIVE.amis) or list(metrics.LIVE.dialers) or list(metrics.LIVE.agi_servers)), (
        "objects of another test are still registered for the metrics"
    )
    metrics.LIVE.amis.add(ami)
    metrics.LIVE.dialers.add(dialer)
    metrics.LIVE.agi_servers.add(server)
    try:
        yield
    finally:
        metrics.LIVE.amis.discard(ami)
        metrics.LIVE.dialers.discard(dialer)
        metrics.LIVE.agi_servers.discard(server)


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def answered_q1(pg: AsyncEngine, n: int) -> bool:
    async with pg.connect() as conn:
        count = (
            await conn.execute(select(A.c.id).join(Q, Q.c.id == A.c.question_id).where(Q.c.key == "q1"))
        ).all()
    return len(count) >= n


async def is_up(ami: AmiClient) -> bool:
    return ami.connected


async def answered(pg: AsyncEngine, phone: str, key: str) -> bool:
    return key in (await answers_by_phone(pg)).get(phone, {})


async def call_ended(pg: AsyncEngine, phone: str) -> bool:
    """The IVR closed the Call row of ``phone``'s campaign call."""
    rows = [r for r in await call_rows(pg) if r["caller"] == phone]
    return bool(rows) and all(r["ended_at"] is not None for r in rows)


async def scrape() -> dict[str, float]:
    """The process's metrics as ``/metrics`` shows them: ``name{label="v"}`` -> value."""
    text, _ = await metrics.exposition()
    return {
        sample.name
        + (
            "{" + ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items())) + "}"
            if sample.labels
            else ""
        ): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


async def no_calls(server: AgiServer) -> bool:
    return server.active_calls == 0


async def book_empty(dialer: Dialer) -> bool:
    return dialer.book.in_progress == 0


async def open_call_rows(pg: AsyncEngine) -> int:
    return sum(1 for row in await call_rows(pg) if row["ended_at"] is None or row["outcome"] is None)


async def settled(pg: AsyncEngine, campaign_id: int) -> bool:
    """Every delivery dialled and its try written (none ``sending``, none without an outcome)."""
    rows = (await deliveries(pg, campaign_id)).values()
    return all(r["status"] != "sending" and r["outcome"] is not None for r in rows)


async def completed(pg: AsyncEngine, phones: Sequence[str]) -> bool:
    """Each of ``phones`` answered all three questions."""
    got = await answers_by_phone(pg)
    return all(len(got.get(phone, {})) == 3 for phone in phones)


async def deliveries(pg: AsyncEngine, campaign_id: int) -> dict[str, dict[str, Any]]:
    async with pg.connect() as conn:
        result = await conn.execute(
            select(D, C.c.phone)
            .select_from(D.join(C, C.c.id == D.c.citizen_id))
            .where(D.c.campaign_id == campaign_id)
        )
        return {r.phone: dict(r._mapping) for r in result}


async def answers_by_phone(pg: AsyncEngine) -> dict[str, dict[str, str]]:
    async with pg.connect() as conn:
        rows = (
            await conn.execute(
                select(C.c.phone, Q.c.key, A.c.value)
                .select_from(A.join(Q, Q.c.id == A.c.question_id).join(C, C.c.id == A.c.citizen_id))
                .order_by(A.c.id)
            )
        ).all()
    got: dict[str, dict[str, str]] = {}
    for phone, key, value in rows:
        assert key not in got.get(phone, {}), f"{phone} answered {key} twice"
        got.setdefault(phone, {})[key] = value
    return got


async def call_rows(pg: AsyncEngine) -> list[dict[str, Any]]:
    async with pg.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(CALL))]
