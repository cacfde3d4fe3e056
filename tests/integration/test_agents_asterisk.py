"""Callers to agents on a real Asterisk 22 over real SIP: a SIPp caller dials 1415 and keys 0,
the engine rings agent phone 101 (a SIPp UAS where the phone's contact is) with ``EXEC Dial``
and the ``U(agent-answered^...)`` gosub, the agent answers and later hangs up, and the caller
rates the call with an RFC 2833 key; an agent that does not answer is missed and the next rung.

Skipped without the Asterisk/SIPp builds, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.routing import AgentState
from callcenter.settings import Settings
from callcenter.testing.asterisk import Toolchain, UasBehaviour, free_port
from callcenter.testing.asterisk_agents import AgentPhones
from callcenter.voice.ivr import make_agi_server
from callcenter.voice.ivr_prompts import write_silent_prompts
from tests.agentlab import make_line

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(90)]


async def events(engine: AsyncEngine, kind: str) -> list[Any]:
    E = models.table(models.RoutingEvent)
    async with engine.connect() as conn:
        return list(await conn.execute(select(E).where(E.c.kind == kind).order_by(E.c.id)))


async def test_a_sip_caller_keys_0_is_put_through_to_a_sip_agent_and_rates_the_call(
    tools: Toolchain, pg: AsyncEngine, redis: aioredis.Redis, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts"
    write_silent_prompts(prompts, [])
    settings = Settings(
        env="test", data_dir=tmp_path, database_url=pg.url.render_as_string(hide_password=False),
        prompts_dir=prompts,
    )  # fmt: skip
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
    CALL = models.table(models.Call)
    async with pg.connect() as conn:
        rows = list(await conn.execute(select(CALL.c.outcome, CALL.c.caller)))
    assert rows == [("connected", "+218912345678")]
