"""Queues and agents from YAML (``callcenter acd load``): the sample loads, bad files are refused
whole with the item named, a reload updates rather than duplicates, and the router gets them."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.desk.setup import AcdFileError, load, parse
from callcenter.routing import AgentState

SAMPLE = Path(__file__).parents[2] / "callcenter" / "samples" / "acd.yaml"


async def make_agents(engine: AsyncEngine, *emails: str) -> dict[str, int]:
    u = models.table(models.User)
    async with engine.begin() as conn:
        for email in emails:
            await conn.execute(insert(u).values(email=email, name=email.split("@")[0], role="agent",
                                                language="ar", created_at=models.utcnow()))  # fmt: skip
        rows = await conn.execute(select(u.c.email, u.c.id))
        return {email: user_id for email, user_id in rows}


async def count(engine: AsyncEngine, model: type) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(models.table(model)))).scalar_one())


async def test_the_sample_loads_and_the_router_serves_its_queues(
    engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    ids = await make_agents(engine, "agent1@1415.local", "agent2@1415.local")

    loaded = await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    again = await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")

    assert (loaded.queues, loaded.agents) == (2, 2) == (again.queues, again.agents)
    assert await count(engine, models.ServiceQueue) == 2
    assert await count(engine, models.AgentProfile) == 2
    acd = Acd(engine, redis)
    queues = await acd.load()
    assert [q.queue.id for q in queues] == ["general", "services"]
    snap = await acd.store.snapshot()
    agent1 = snap.agents[str(ids["agent1@1415.local"])]
    assert agent1.endpoint == "PJSIP/101" and agent1.agent.state is AgentState.OFFLINE
    async with engine.connect() as conn:
        actions = (await conn.execute(select(models.table(models.AuditLog).c.action))).scalars().all()
    assert actions.count("acd.load") == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("queues: [ {key: a", "not YAML"),
        ("rooms: []", "two lists"),
        ("queues: [{key: a}]", "queue 1: a key and a service"),
        ("queues: [{key: a, service: s, steps: [[10, 1]]}]", "first step starts at 0"),
        ("queues: [{key: a, service: s, colour: red}]", "unknown queue settings: colour"),
        ("queues: [{key: a, service: s}, {key: a, service: t}]", "same key"),
        ("agents: [{email: x@y.ly, endpoint: 'PJSIP/a;rm -rf'}]", "dial string"),
        ("agents: [{email: x@y.ly, endpoint: PJSIP/a1, skills: [[colour, red, 1]]}]", "unknown skill kind"),
        ("agents: [{email: x@y.ly, endpoint: PJSIP/a1, skills: [[service, s, 7]]}]", "level"),
    ],
)
def test_a_bad_file_is_refused_with_the_item_named(text: str, says: str) -> None:
    with pytest.raises(AcdFileError) as refused:
        parse(text)
    assert says in str(refused.value)


async def test_an_agent_without_a_staff_account_changes_nothing(engine: AsyncEngine) -> None:
    text = "queues: [{key: a, service: s}]\nagents: [{email: ghost@1415.local, endpoint: PJSIP/a1}]"
    with pytest.raises(AcdFileError, match=r"ghost@1415\.local"):
        await load(engine, text, actor="test")
    assert await count(engine, models.ServiceQueue) == 0
