"""Send lanes arq holds in progress that nobody runs (a worker killed, a Redis failover) are
replaced by the reconciler under a new epoch; a lane that beats is left alone. A campaign's
planning job left the same way is run again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import default_queue_name, in_progress_key_prefix
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.campaigns.lanes import alive_key, heartbeat, lane_job_id, stale_lanes
from callcenter.campaigns.progress import plan_job_id
from callcenter.campaigns.service import Audience, create_campaign, epoch_key
from callcenter.jobs import LANES, Runtime, enqueue_lanes, release_stale_plans
from tests.conftest import REDIS_URL, make_settings
from tests.factories import THREE_QUESTIONS, make_citizens, make_inquiry


@pytest.fixture
async def arq(redis_db: int) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(f"{REDIS_URL}/{redis_db}"))
    await pool.flushdb()
    yield pool
    await pool.flushdb()
    await pool.aclose()


async def _held(arq: ArqRedis, campaign_id: int, epoch: int) -> None:
    """What a dead worker leaves: its lanes queued and marked in progress for a day."""
    await arq.set(epoch_key(campaign_id), epoch)
    assert await enqueue_lanes(arq, campaign_id) == LANES
    for lane in range(LANES):
        await arq.set(in_progress_key_prefix + lane_job_id(campaign_id, epoch, lane), b"1", ex=86_400)


async def test_lanes_held_in_progress_without_a_heartbeat_are_started_again_under_a_new_epoch(
    arq: ArqRedis,
) -> None:
    await _held(arq, 7, epoch=3)
    assert len(await stale_lanes(arq, 7, 3, LANES)) == LANES
    assert await enqueue_lanes(arq, 7) == LANES  # new job ids: arq accepts them
    assert int(await arq.get(epoch_key(7)) or 0) == 4
    assert await enqueue_lanes(arq, 7) == 0  # and only once


async def test_lanes_that_beat_are_not_replaced(arq: ArqRedis) -> None:
    await _held(arq, 8, epoch=1)
    beats = [heartbeat(arq, lane_job_id(8, 1, lane), ttl_s=5) for lane in range(LANES)]
    for beat in beats:
        await beat.__aenter__()
    try:
        assert await arq.exists(alive_key(lane_job_id(8, 1, 0)))
        assert await stale_lanes(arq, 8, 1, LANES) == []
        assert await enqueue_lanes(arq, 8) == 0  # duplicates of the running lanes: refused
        assert int(await arq.get(epoch_key(8)) or 0) == 1
    finally:
        for beat in beats:
            await beat.__aexit__(None, None, None)


async def test_a_start_whose_planning_worker_died_is_planned_again_and_a_live_one_is_left_alone(
    arq: ArqRedis, pg: AsyncEngine, tmp_path: Path, redis_db: int
) -> None:
    """kill -9 of the worker while it plans: arq would hold the start for a day."""
    await make_inquiry(pg, yaml_text=THREE_QUESTIONS)
    await make_citizens(pg, 3)
    async with AsyncSession(pg, expire_on_commit=False) as session, session.begin():
        dead = await create_campaign(session, inquiry="three", audience=Audience(), actor="t")
        live = await create_campaign(session, inquiry="three", audience=Audience(), actor="t")
    assert dead.id is not None and live.id is not None
    for campaign in (dead.id, live.id):  # started by someone, taken by a worker
        await arq.enqueue_job("plan_campaign", campaign, "t", _job_id=plan_job_id(campaign))
        await arq.set(in_progress_key_prefix + plan_job_id(campaign), b"1", ex=86_400)
    rt = await Runtime.start(
        make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db), arq
    )
    try:
        async with heartbeat(arq, plan_job_id(live.id), ttl_s=5):  # still planning, alive
            assert await release_stale_plans(rt) == [dead.id]
            assert not await arq.exists(in_progress_key_prefix + plan_job_id(dead.id))
            assert await arq.exists(in_progress_key_prefix + plan_job_id(live.id))
            assert await arq.zscore(default_queue_name, plan_job_id(dead.id)) is not None  # runs again
    finally:
        await rt.close()
