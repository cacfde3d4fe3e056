"""Callers to agents on a real Asterisk 22 over real SIP: a SIPp caller dials 1415 and keys 0,
the engine rings agent phone 101 (a SIPp UAS where the phone's contact is) with ``EXEC Dial``
and the ``U(agent-answered^...)`` gosub, the agent answers and later hangs up, and the caller
rates the call with an RFC 2833 key; an agent that does not answer is missed and the next rung;
an agent phone that never registered fails at once and the next is rung; a caller who hangs up
while waiting leaves the line as abandoned; a callback booked by DTMF is completed: the agent
reserved first (the desk's card), then the citizen dialled over AMI, then the agent rung.

Skipped without the Asterisk/SIPp builds, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.routing import AgentState, Entry
from callcenter.routing.store import Caller as Waiter
from callcenter.settings import Settings
from callcenter.telephony.ami import AmiClient
from callcenter.testing.asterisk import Toolchain, UasBehaviour, free_port
from callcenter.testing.asterisk_agents import AgentPhones
from callcenter.voice.callback_dialer import CallbackDialer
from callcenter.voice.ivr import make_agi_server
from callcenter.voice.ivr_prompts import write_silent_prompts
from tests.agentlab import make_line

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(90)]


async def events(engine: AsyncEngine, kind: str) -> list[Any]:
    E = models.table(models.RoutingEvent)
    async with engine.connect() as conn:
        return list(await conn.execute(select(E).where(E.c.kind == kind).order_by(E.c.id)))


async def calls(engine: AsyncEngine) -> list[tuple[str, str]]:
    """Each call's outcome and caller, as the call log keeps them."""
    CALL = models.table(models.Call)
    async with engine.connect() as conn:
        return [(r.outcome, r.caller) for r in await conn.execute(select(CALL.c.outcome, CALL.c.caller))]


def engine_settings(pg: AsyncEngine, tmp_path: Path, **overrides: Any) -> Settings:
    """The engine's settings for one test: its database, and silent prompts (a real Asterisk
    plays files; espeak-ng need not be installed)."""
    prompts = tmp_path / "prompts"
    write_silent_prompts(prompts, [])
    database_url = pg.url.render_as_string(hide_password=False)
    return Settings(
        env="test", data_dir=tmp_path, database_url=database_url, prompts_dir=prompts, **overrides
    )


async def all_events(engine: AsyncEngine) -> list[Any]:
    E = models.table(models.RoutingEvent)
    async with engine.connect() as conn:
        return list(await conn.execute(select(E).order_by(E.c.id)))


async def rows(engine: AsyncEngine, model: type) -> list[Any]:
    table = models.table(model)
    async with engine.connect() as conn:
        return list(await conn.execute(select(table).order_by(table.c.id)))


async def test_a_sip_caller_keys_0_is_put_through_to_a_sip_agent_and_rates_the_call(
    tools: Toolchain, pg: AsyncEngine, redis: aioredis.Redis, tmp_path: Path
) -> None:
    settings = engine_settings(pg, tmp_path)
    agents = await make_line(pg, {"general": {"ring_timeout_s": 8}}, ["PJSIP/101", "PJSIP/102"])
    acd = Acd(pg, redis)
    await acd.load()
    for endpoint in ("PJSIP/101", "PJSIP/102"):  # 101 idle longest: rung first
        await acd.agent_state(agents[endpoint], AgentState.READY)
    phones = {"101": free_port(socket.SOCK_DGRAM), "102": free_port(socket.SOCK_DGRAM)}
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0, acd=acd)
    async with server, AgentPhones(tools, tmp_path / "ast", agi_port=server.port, phones=phones) as pbx:
        # 101 rings out (NOANSWER after the queue's 8 s); 102 answers, talks 2 s, hangs up
        no_answer = await pbx.sipp_uas(UasBehaviour.NO_ANSWER, port=phones["101"], timeout_s=40)
        answers = await pbx.sipp_uas(
            UasBehaviour.HANGUP, port=phones["102"], delay_ms=0, hangup_after_ms=2000, timeout_s=40
        )
        # 0 for an agent at 1.5 s; 101 rings out in 8 s, 102 talks 2 s and hangs up: the rating
        # prompt waits from ~10.5 s to ~16.8 s after the 0, and 4 comes ~13.5 s after it
        caller = await pbx.sipp_uac(keys="0" + "W" * 13 + "4", caller="0912345678", timeout_s=45)
        assert caller.ok, f"{caller}\n{caller.errors}\n{pbx.log_tail()}"
        for phone in (no_answer, answers):
            result = await phone.wait()
            assert result.ok, f"{result}\n{result.errors}\n{pbx.log_tail()}"
        log = pbx.messages_log.read_text(errors="replace")
    [missed] = await events(pg, "entry.missed")
    assert (missed.agent, missed.data["reason"]) == (agents["PJSIP/101"], "NOANSWER")
    [connected] = await events(pg, "entry.connected")
    assert (connected.entry, connected.agent) == (missed.entry, agents["PJSIP/102"])
    [rated] = await events(pg, "call.rated")
    assert (rated.agent, rated.data["rating"]) == (agents["PJSIP/102"], 4)
    assert "agent-answered" in log  # the gosub ran on the agent's channel
    snap = await acd.store.snapshot()
    assert snap.agents[agents["PJSIP/102"]].agent.state is AgentState.WRAP_UP
    assert snap.agents[agents["PJSIP/101"]].agent.state is AgentState.MISSED
    assert await calls(pg) == [("connected", "+218912345678")]


async def test_a_sip_caller_who_hangs_up_while_waiting_abandons_and_leaves_the_line(
    tools: Toolchain, pg: AsyncEngine, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """Agent 101 is busy with a caller and another waits ahead: the SIPp caller keys 0, hears
    that they are second in line and the wait, and hangs up (BYE) while the hold music plays.
    The entry leaves the line as abandoned, the call is recorded so, and nothing is rung."""
    settings = engine_settings(pg, tmp_path)
    agents = await make_line(pg, {"general": {"ring_timeout_s": 8}}, ["PJSIP/101"])
    agent = agents["PJSIP/101"]
    acd = Acd(pg, redis)
    await acd.load()
    now = (await acd.store.snapshot()).now
    await acd.enqueue(Entry("busy", "general", now - 100), Waiter(phone="+218910000001"))
    await acd.agent_state(agent, AgentState.READY)
    await acd.round()  # 101 is reserved for "busy" for the whole test: its phone never rings
    await acd.enqueue(Entry("ahead", "general", now - 99), Waiter(phone="+218910000002"))
    phones = {"101": free_port(socket.SOCK_DGRAM)}
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0, acd=acd)
    async with server, AgentPhones(tools, tmp_path / "ast", agi_port=server.port, phones=phones) as pbx:
        caller = await pbx.sipp_uac(keys="0", caller="0912345678", hangup_after_ms=5000, timeout_s=30)
        assert caller.ok, f"{caller}\n{caller.errors}\n{pbx.log_tail()}"
        async with asyncio.timeout(10):  # the AGI session hears HANGUP and cleans up
            while not await events(pg, "entry.left"):
                await asyncio.sleep(0.1)
        log = pbx.messages_log.read_text(errors="replace")

    [queued] = [e for e in await events(pg, "entry.queued") if e.entry not in ("busy", "ahead")]
    [announced] = await events(pg, "entry.announced")
    assert (announced.entry, announced.data["position"]) == (queued.entry, 2)
    assert announced.data["expected_wait"] > 0
    assert "position-you-are" in log and "wait-expected" in log and "hold-music" in log  # played
    [left] = await events(pg, "entry.left")
    assert (left.entry, left.data["reason"]) == (queued.entry, "abandoned")
    assert [e.entry for e in await events(pg, "entry.offered")] == ["busy"]
    assert "PJSIP/101-" not in log  # the agent's phone never rang
    snap = await acd.store.snapshot()
    assert set(snap.entries) == {"ahead"}  # the caller ahead keeps waiting; ours is gone
    assert snap.agents[agent].agent.state is AgentState.RESERVED and snap.agents[agent].entry == "busy"
    assert await calls(pg) == [("abandoned", "+218912345678")]


async def test_an_agent_phone_that_is_not_registered_is_missed_and_the_next_agent_answers(
    tools: Toolchain, pg: AsyncEngine, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """101 is in pjsip.conf but no phone has registered (its AOR has no contact): Dial fails at
    once with CHANUNAVAIL, 101 goes to missed with that reason and 102, registered, answers."""
    settings = engine_settings(pg, tmp_path, call_rating=False)
    agents = await make_line(pg, {"general": {"ring_timeout_s": 8}}, ["PJSIP/101", "PJSIP/102"])
    acd = Acd(pg, redis)
    await acd.load()
    for endpoint in ("PJSIP/101", "PJSIP/102"):  # 101 idle longest: tried first
        await acd.agent_state(agents[endpoint], AgentState.READY)
    phones = {"102": free_port(socket.SOCK_DGRAM)}  # 101: no contact, as if never registered
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0, acd=acd)
    async with server, AgentPhones(tools, tmp_path / "ast", agi_port=server.port, phones=phones) as pbx:
        answers = await pbx.sipp_uas(
            UasBehaviour.HANGUP, port=phones["102"], delay_ms=0, hangup_after_ms=1000, timeout_s=30
        )
        started = time.monotonic()
        caller = await pbx.sipp_uac(keys="0", caller="0912345678", timeout_s=30)
        seconds = time.monotonic() - started
        assert caller.ok, f"{caller}\n{caller.errors}\n{pbx.log_tail()}"
        result = await answers.wait()
        assert result.ok, f"{result}\n{result.errors}\n{pbx.log_tail()}"

    [missed] = await events(pg, "entry.missed")
    assert (missed.agent, missed.data["reason"]) == (agents["PJSIP/101"], "CHANUNAVAIL")
    [connected] = await events(pg, "entry.connected")
    assert (connected.entry, connected.agent) == (missed.entry, agents["PJSIP/102"])
    assert seconds < 8  # not a ring timeout: the unregistered phone failed at once
    snap = await acd.store.snapshot()
    assert snap.agents[agents["PJSIP/101"]].agent.state is AgentState.MISSED


async def test_a_callback_booked_by_dtmf_is_completed_agent_reserved_first_then_the_citizen(
    tools: Toolchain, pg: AsyncEngine, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """Nobody is ready: the SIPp caller keys 0, is told so and offered a callback that keeps
    the place, and presses 1; the engine books it and hangs up. Agent 101 goes ready: the
    router reserves them for the callback (their desk shows the card), the callback dialer's
    synchronous ``Originate`` over the engine's own AMI client rings the citizen (a SIPp UAS
    at the trunk's far end), who answers; the ``callback`` FastAGI script then rings 101 (a
    SIPp UAS), who answers, talks and hangs up. The callback is done, the agent in wrap-up."""
    settings = engine_settings(pg, tmp_path, call_rating=False)
    agents = await make_line(pg, {"general": {"ring_timeout_s": 8}}, ["PJSIP/101"])
    agent = agents["PJSIP/101"]
    acd = Acd(pg, redis)
    await acd.load()  # 101 offline: nobody staffed, so the callback is offered at once
    phones = {"101": free_port(socket.SOCK_DGRAM)}
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0, acd=acd)
    async with server, AgentPhones(tools, tmp_path / "ast", agi_port=server.port, phones=phones) as pbx:
        # 1 pressed thrice, a second apart, during the 0.3 s hold pieces after the offer: the
        # first one heard books (a key between two AGI commands is not heard by anyone)
        booking = await pbx.sipp_uac(keys="0WWW1W1W1", caller="0912345678", timeout_s=40)
        assert booking.ok, f"{booking}\n{booking.errors}\n{pbx.log_tail()}"
        [callback] = await rows(pg, models.Callback)
        assert (callback.status, callback.phone) == ("pending", "+218912345678")

        await acd.agent_state(agent, AgentState.READY)
        await acd.round()
        record = await acd.store.agent(agent)
        assert record is not None and record.agent.state is AgentState.RESERVED  # the card, first
        assert record.entry == callback.entry

        agent_phone = await pbx.sipp_uas(
            UasBehaviour.HANGUP, port=phones["101"], delay_ms=0, hangup_after_ms=2000, timeout_s=40
        )
        citizen = await pbx.sipp_uas(UasBehaviour.ANSWER, delay_ms=0, timeout_s=40)
        ami = AmiClient("127.0.0.1", pbx.ami_port, pbx.ami_username, pbx.ami_secret)
        await ami.connect()
        try:
            dialer = CallbackDialer(settings, pg, acd, ami)
            noon = datetime.now(ZoneInfo(settings.timezone)).replace(hour=12)  # inside call hours
            assert await dialer.tick(now=noon) == [callback.entry]
            await dialer.wait()
            for phone in (agent_phone, citizen):
                result = await phone.wait()
                assert result.ok, f"{result}\n{result.errors}\n{pbx.log_tail()}"
        finally:
            await ami.close()
        async with asyncio.timeout(10):  # the callback script's session finishes
            while (await rows(pg, models.Callback))[0].status != "done":
                await asyncio.sleep(0.1)
        log = pbx.messages_log.read_text(errors="replace")

    assert "no-agent-now" in log and "callback-keep-place" in log and "callback-booked" in log
    [done] = await rows(pg, models.Callback)
    assert (done.status, done.attempts) == ("done", 1)
    kinds = [e.kind for e in await all_events(pg) if e.entry == callback.entry]
    assert kinds.index("callback.booked") < kinds.index("entry.offered") < kinds.index("entry.connected")
    assert kinds.index("entry.connected") < kinds.index("entry.ended")
    [connected] = await events(pg, "entry.connected")
    assert connected.agent == agent
    # the citizen's phone (the trunk) was rung before the agent's, and only once each
    lines = log.splitlines()
    citizen_rung = [i for i, line in enumerate(lines) if "Called PJSIP/+218912345678@trunk" in line]
    agent_rung = [i for i, line in enumerate(lines) if "Called PJSIP/101" in line]
    assert len(citizen_rung) == 1 and len(agent_rung) == 1 and citizen_rung[0] < agent_rung[0], pbx.log_tail()
    assert (await acd.store.snapshot()).agents[agent].agent.state is AgentState.WRAP_UP
    assert callback.entry not in (await acd.store.snapshot()).entries
