"""A transfer and a recording on a real Asterisk 22 over real SIP: a SIPp caller keys 0, agent
phone 101 (a SIPp UAS) answers, and while they talk the desk's transfer sends an AMI
``Redirect`` of the caller's channel to ``[agent-transfer]`` over the engine's own short-lived
AMI connection. Asterisk ends the Dial (101's leg gets its BYE), the old FastAGI session hears
``HANGUP``, the ``transfer`` AGI puts the caller in the other queue at the kept place, and
phone 102 answers. With ``CALLCENTER_RECORD_CALLS`` the caller's channel carries
``MixMonitor`` from before the first ring to the hangup, across the Redirect: one WAV, named
by the first entry, for both conversations (SIPp's phones send no voice, so the file holds a
header only: what is checked is that Asterisk wrote it and when the monitor ran).

Skipped without the Asterisk/SIPp builds, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import asyncio
import socket
import time
import wave
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.desk.call_control import ami_opener, transfer, waited_before
from callcenter.routing import AgentState, Entry
from callcenter.routing.store import Caller as Waiter
from callcenter.settings import Settings
from callcenter.testing.asterisk import Toolchain, UasBehaviour, free_port
from callcenter.testing.asterisk_agents import AgentPhones
from callcenter.voice.ivr import make_agi_server
from callcenter.voice.ivr_prompts import write_silent_prompts
from tests.agentlab import make_line
from tests.integration.test_agents_asterisk import events

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(120)]


async def test_a_sip_caller_is_transferred_by_ami_redirect_to_another_queue_and_recorded(
    tools: Toolchain, pg: AsyncEngine, redis: aioredis.Redis, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts"
    write_silent_prompts(prompts, [])
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    settings = Settings(
        env="test", data_dir=tmp_path, database_url=pg.url.render_as_string(hide_password=False),
        prompts_dir=prompts, record_calls=True, recordings_dir=recordings, call_rating=False,
    )  # fmt: skip
    queues = {"general": {"ring_timeout_s": 8}, "services": {"ring_timeout_s": 8}}
    agents = await make_line(pg, queues, ["PJSIP/101", "PJSIP/102"])
    first, second = agents["PJSIP/101"], agents["PJSIP/102"]
    acd = Acd(pg, redis)
    await acd.load()
    await acd.agent_state(first, AgentState.READY)
    phones = {"101": free_port(socket.SOCK_DGRAM), "102": free_port(socket.SOCK_DGRAM)}
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0, acd=acd)
    async with server, AgentPhones(tools, tmp_path / "ast", agi_port=server.port, phones=phones) as pbx:
        desk = settings.model_copy(
            update={"ami_port": pbx.ami_port, "ami_username": pbx.ami_username, "ami_secret": pbx.ami_secret}
        )
        # 101 answers and talks until Asterisk hangs it up (the transfer); 102 talks 3 s
        talks = await pbx.sipp_uas(UasBehaviour.ANSWER, port=phones["101"], delay_ms=0, timeout_s=60)
        takes = await pbx.sipp_uas(
            UasBehaviour.HANGUP, port=phones["102"], delay_ms=0, hangup_after_ms=3000, timeout_s=60
        )
        caller = asyncio.create_task(pbx.sipp_uac(keys="0", caller="0912345678", timeout_s=60))

        async with asyncio.timeout(30):  # 101 on the call
            while (
                record := await acd.store.agent(first)
            ) is None or record.agent.state is not AgentState.ON_CALL:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # a second of conversation (recorded)
        assert record.entry is not None
        waited = await waited_before(pg, record.entry)
        pending = await transfer(acd, ami_opener(desk), agent_id=first, to_queue="services", waited=waited)
        await acd.agent_state(second, AgentState.READY)

        called = await caller
        assert called.ok, f"{called}\n{called.errors}\n{pbx.log_tail()}"
        for phone in (talks, takes):
            result = await phone.wait()
            assert result.ok, f"{result}\n{result.errors}\n{pbx.log_tail()}"
        log = pbx.messages_log.read_text(errors="replace")

    assert "agent-transfer" in log and pending.id in log  # the Redirect landed in the context
    [transferred] = await events(pg, "entry.transferred")
    assert (transferred.entry, transferred.data["to"]) == (pending.entry, "services")
    connected = {e.entry: e for e in await events(pg, "entry.connected")}
    assert connected[pending.entry].agent == first and connected[pending.id].agent == second
    assert connected[pending.id].queue == "services"
    assert connected[pending.id].data["waited"] >= connected[pending.entry].data["waited"]
    queued = [e for e in await events(pg, "entry.queued") if e.entry == pending.id]
    assert [e.data["enqueued_at"] for e in queued] == [pending.enqueued_at]
    assert [e.entry for e in await events(pg, "entry.ended")] == [pending.entry, pending.id]  # each once
    assert await events(pg, "entry.left") == []
    snap = await acd.store.snapshot()
    assert snap.agents[first].agent.state is AgentState.WRAP_UP
    assert snap.agents[second].agent.state is AgentState.WRAP_UP

    recorded = await events(pg, "call.recording")
    assert [(e.entry, e.data["file"]) for e in recorded] == [
        (pending.entry, f"{pending.entry}.wav"),
        (pending.id, f"{pending.entry}.wav"),
    ]
    files = sorted(p.name for p in recordings.iterdir())
    assert files == [f"{pending.entry}.wav"], files
    with wave.open(str(recordings / files[0])) as audio:  # a WAV Asterisk wrote (SIPp sends no voice)
        assert (audio.getframerate(), audio.getsampwidth()) == (8000, 2)
    # one monitor from just before the first ring to the caller's hangup, across the Redirect
    lines = log.splitlines()
    began = [i for i, line in enumerate(lines) if "Begin MixMonitor Recording PJSIP/citizen" in line]
    ended = [i for i, line in enumerate(lines) if "End MixMonitor Recording PJSIP/citizen" in line]
    redirected = next(i for i, line in enumerate(lines) if f"{pending.id}@agent-transfer:1" in line)
    second_bridge = max(i for i, line in enumerate(lines) if "PJSIP/102-" in line and "left" in line)
    assert len(began) == 1 and len(ended) == 1
    assert began[0] < redirected < second_bridge < ended[0]
    CALL = models.table(models.Call)
    async with pg.connect() as conn:
        rows = list(await conn.execute(select(CALL.c.outcome, CALL.c.caller)))
    assert rows == [("connected", "+218912345678")]  # one call, one row


async def test_a_supervisor_listens_by_chanspy_and_the_agent_calls_the_citizen_back_on_real_asterisk(
    tools: Toolchain, pg: AsyncEngine, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """The wallboard's listen (an Originate of the supervisor's phone into ``ChanSpy`` on the
    agent's channel) and the desk's call back (an Originate of the agent's phone into ``Dial``
    of the citizen through ``CALLCENTER_VOICE_DIAL_TEMPLATE``), both over the engine's own
    short-lived AMI connection to the real Asterisk, with real SIP phones."""
    from callcenter.desk.call_control import call_back
    from callcenter.desk.supervise import SpyMode, spy

    prompts = tmp_path / "prompts"
    write_silent_prompts(prompts, [])
    settings = Settings(
        env="test", data_dir=tmp_path, database_url=pg.url.render_as_string(hide_password=False),
        prompts_dir=prompts, call_rating=False,
    )  # fmt: skip
    agents = await make_line(pg, {"general": {"ring_timeout_s": 8}}, ["PJSIP/101"])
    agent = agents["PJSIP/101"]
    acd = Acd(pg, redis)
    await acd.load()
    await acd.agent_state(agent, AgentState.READY)
    phones = {"101": free_port(socket.SOCK_DGRAM), "102": free_port(socket.SOCK_DGRAM)}
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0, acd=acd)
    async with server, AgentPhones(tools, tmp_path / "ast", agi_port=server.port, phones=phones) as pbx:
        desk = settings.model_copy(
            update={"ami_port": pbx.ami_port, "ami_username": pbx.ami_username, "ami_secret": pbx.ami_secret}
        )
        # 101 takes the caller (4 s) and then its own call back (4 s); 102 is the supervisor's
        # phone; the trunk's far end is the citizen called back
        agent_phone = await pbx.sipp_uas(
            UasBehaviour.HANGUP, calls=2, port=phones["101"], delay_ms=0, hangup_after_ms=4000, timeout_s=60
        )
        supervisor_phone = await pbx.sipp_uas(
            UasBehaviour.ANSWER, port=phones["102"], delay_ms=0, timeout_s=60
        )
        citizen = await pbx.sipp_uas(UasBehaviour.ANSWER, delay_ms=0, timeout_s=60)
        caller = asyncio.create_task(pbx.sipp_uac(keys="0", caller="0912345678", timeout_s=60))

        async with asyncio.timeout(30):
            while (
                record := await acd.store.agent(agent)
            ) is None or record.agent.state is not AgentState.ON_CALL:
                await asyncio.sleep(0.1)
        async with ami_opener(desk)() as ami:
            await spy(ami, acd.store, agent_id=agent, supervisor_endpoint="PJSIP/102", mode=SpyMode.LISTEN)
        called = await caller
        assert called.ok, f"{called}\n{called.errors}\n{pbx.log_tail()}"
        async with asyncio.timeout(10):
            while (
                record := await acd.store.agent(agent)
            ) is None or record.agent.state is not AgentState.WRAP_UP:
                await asyncio.sleep(0.1)
        await call_back(ami_opener(desk), desk, record)
        for phone in (agent_phone, supervisor_phone, citizen):
            result = await phone.wait()
            assert result.ok, f"{result}\n{result.errors}\n{pbx.log_tail()}"
        log = pbx.messages_log.read_text(errors="replace")

    # the supervisor's phone (102) answered and ChanSpy attached to the agent's channel; it
    # stopped by itself when the call ended (the E option)
    assert "Attaching spy channel PJSIP/102-" in log and "Spying on channel PJSIP/101-" in log
    assert "Stopped spying due to the spied-on channel hanging up." in log
    # the call back: 101 rang twice (its SIPp took 2 calls), then the template's Local channel
    # dialled the citizen on the trunk, whose far end answered
    assert "[+218912345678@campaign-dial:1] Dial(" in log
    assert "PJSIP/+218912345678@trunk" in log  # through the dial template to the trunk


async def test_a_supervisor_who_listens_as_the_call_ends_is_hung_up_not_left_in_silence(
    tools: Toolchain, pg: AsyncEngine, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """The wallboard still shows 101 on a call, but on Asterisk the call has just ended (its
    channel is gone before the engine hears of it): the supervisor's phone rings, is answered,
    and ChanSpy finds nothing to spy on. It must end there (``S``), not wait in silence until
    the agent's next call and join that one unasked."""
    from callcenter.desk.supervise import SpyMode, spy

    agents = await make_line(pg, {"general": {}}, ["PJSIP/101"])
    agent = agents["PJSIP/101"]
    acd = Acd(pg, redis)
    await acd.load()
    now = (await acd.store.snapshot()).now
    await acd.enqueue(Entry("ended-on-asterisk", "general", now), Waiter(phone="+218912345678"))
    await acd.agent_state(agent, AgentState.READY)
    await acd.round()
    await acd.connected("ended-on-asterisk", agent)  # on call for the engine; no channel exists
    phones = {"101": free_port(socket.SOCK_DGRAM), "102": free_port(socket.SOCK_DGRAM)}
    async with AgentPhones(tools, tmp_path / "ast", agi_port=free_port(), phones=phones) as pbx:
        desk = Settings(
            env="test", data_dir=tmp_path, ami_port=pbx.ami_port, ami_username=pbx.ami_username,
            ami_secret=pbx.ami_secret,
        )  # fmt: skip
        supervisor_phone = await pbx.sipp_uas(
            UasBehaviour.ANSWER, port=phones["102"], delay_ms=0, timeout_s=15
        )
        started = time.monotonic()
        async with ami_opener(desk)() as ami:
            await spy(ami, acd.store, agent_id=agent, supervisor_endpoint="PJSIP/102", mode=SpyMode.LISTEN)
        result = await supervisor_phone.wait()  # Asterisk's BYE, well before SIPp's 15 s
        assert time.monotonic() - started < 5
        assert result.ok, f"{result}\n{result.errors}\n{pbx.log_tail()}"
        log = pbx.messages_log.read_text(errors="replace")
    assert "app_chanspy.c: Stopped spying" in log and "Spying on channel" not in log
