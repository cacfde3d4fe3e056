"""The IVR when its FastAGI connection is cut (simulated Asterisk, the link through a
:class:`~callcenter.testing.tcp_proxy.TcpProxy`, PostgreSQL and SQLite): mid-inquiry, the
answers already given stay, the Call row is closed as failed on our side (not abandoned by the
citizen), and the server takes the next call, where the citizen goes on at the question left;
while waiting for an agent, the caller leaves the line, not counted as an abandonment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.settings import Settings
from callcenter.sim import Caller, SimConfig, Simulator, engine_dialplan
from callcenter.telephony.agi import AgiServer
from callcenter.testing.tcp_proxy import TcpProxy
from callcenter.voice.ivr import LINK_LOST, make_agi_server
from tests.agentlab import Citizen, Lab, agent_lab
from tests.factories import THREE_QUESTIONS, make_inquiry

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def server(engine: AsyncEngine, settings: Settings) -> AsyncIterator[AgiServer]:
    agi = make_agi_server(settings, engine, host="127.0.0.1", port=0)
    async with agi:
        yield agi
    async with engine.begin() as conn:  # conftest's TABLES does not know it
        await conn.execute(delete(models.table(models.Call)))


async def test_a_cut_link_keeps_the_answers_closes_the_call_as_failed_and_the_next_call_goes_on(
    engine: AsyncEngine, server: AgiServer
) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    async with TcpProxy(server.port) as proxy:
        config = SimConfig(agi_port=proxy.port, time_scale=0, dialplan=engine_dialplan())
        async with Simulator(config) as sim:
            # Asterisk's reply to q1 (key 4, ASCII 52, during its prompt) reaches the engine;
            # the link dies under the engine's next command
            cut = proxy.trip(b"200 result=52 ")
            await sim.call(Caller.keys("1", "4", "1", "2"))
            await asyncio.wait_for(cut.wait(), 5)
            await sim.wait_idle()
            async with asyncio.timeout(5):  # the engine's session ends on the reset
                while server.active_calls:
                    await asyncio.sleep(0.01)
            assert await answers(engine) == {"q1": "4"}
            [row] = await call_rows(engine)
            assert (row["outcome"], row["hangup_cause"]) == ("failed", LINK_LOST)
            assert row["ended_at"] is not None

            await proxy.restore()
            again = await sim.call(Caller.keys("1", "1", "2"))  # q2 yes, q3 2
            assert any(line.startswith("HANGUP") for line in again.commands)
    assert await answers(engine) == {"q1": "4", "q2": "yes", "q3": "2"}
    assert [(r["outcome"], r["hangup_cause"]) for r in await call_rows(engine)] == [
        ("failed", LINK_LOST),
        ("completed", None),
    ]


async def test_a_caller_waiting_for_an_agent_whose_link_is_cut_leaves_the_line_unabandoned(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    """The wallboard counts as abandoned only callers who hung up: a caller Asterisk lost (or
    whose link failed) leaves the line as ``failed``; nothing of the entry stays behind."""
    build: Callable[..., Awaitable[Lab]]
    async with agent_lab(engine, redis, settings) as build:
        line = await build(endpoints=[])
        async with TcpProxy(line.port) as proxy:
            cut = proxy.trip(b"hold-music", from_upstream=True)  # the engine's first hold piece
            session, _ = line.session(Citizen({"greeting": "0"}))
            await session.run("127.0.0.1", proxy.port)
            await asyncio.wait_for(cut.wait(), 5)

        async def left() -> bool:
            return bool(await line.events("entry.left"))

        async with asyncio.timeout(5):
            while not await left():
                await asyncio.sleep(0.01)
        [event] = await line.events("entry.left")
        assert event.data["reason"] == "failed"
        assert (await line.acd.store.snapshot()).entries == {}
        async with asyncio.timeout(5):
            while not (rows := await call_rows(engine)) or rows[0]["ended_at"] is None:
                await asyncio.sleep(0.01)
        assert [(r["outcome"], r["hangup_cause"]) for r in rows] == [("failed", LINK_LOST)]


async def answers(engine: AsyncEngine) -> dict[str, str]:
    A, Q = models.table(models.Answer), models.table(models.Question)
    async with engine.connect() as conn:
        rows = await conn.execute(select(Q.c.key, A.c.value).join(Q, Q.c.id == A.c.question_id))
        return {r.key: r.value for r in rows}


async def call_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    CALL = models.table(models.Call)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(CALL).order_by(CALL.c.id))]
