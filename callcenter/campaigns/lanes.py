"""Which send lanes are really running: a heartbeat per lane job, and the lanes arq thinks are in
progress that nobody runs any more.

arq marks a job in progress with a key that lives as long as the job's timeout (a day for a
lane). A worker that dies without a word (``kill -9``), or a Redis primary replaced by its replica
(Sentinel: the replica has the key, the worker that held it lost its connection mid-job), leaves
that key behind: arq would not run the lane again for a day, and enqueueing it again is refused
as a duplicate. A running lane therefore refreshes a short-lived key of its own; a lane in
progress without it is stale, and the reconciler starts the campaign's lanes afresh under a new
epoch (new job ids). Running one lane too many is harmless (claims skip locked rows, the rate is
shared); a campaign stalled for a day is not.

A campaign's planning job (``plan:<id>``: the start someone asked for) beats the same way; held
without a beat, arq's in-progress mark is removed, so that the next worker plans it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from redis.exceptions import RedisError


def lane_job_id(campaign_id: int, epoch: int, lane: int) -> str:
    return f"send:{campaign_id}:{epoch}:{lane}"


def alive_key(job_id: str) -> str:
    return f"alive:{job_id}"


@contextlib.asynccontextmanager
async def heartbeat(redis: Redis, job_id: str | None, ttl_s: float) -> AsyncIterator[None]:
    """While the block runs, ``alive:<job id>`` exists (refreshed every third of ``ttl_s``). A
    Redis that does not answer skips a beat: the lane's own Redis errors are the lane's business."""
    if job_id is None:
        yield
        return
    key, ttl_ms = alive_key(job_id), max(1, int(ttl_s * 1000))

    async def beat_once() -> None:
        with contextlib.suppress(RedisError, OSError):
            await redis.set(key, b"1", px=ttl_ms)

    async def beat() -> None:
        while True:
            await asyncio.sleep(ttl_s / 3)
            await beat_once()

    await beat_once()  # alive from the first moment: a reconciler may look at once
    task = asyncio.create_task(beat(), name=f"heartbeat {job_id}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def stale_lanes(redis: Redis, campaign_id: int, epoch: int, lanes: int) -> list[str]:
    """The campaign's lane jobs of ``epoch`` that arq holds in progress without a heartbeat."""
    return await stale_jobs(redis, [lane_job_id(campaign_id, epoch, lane) for lane in range(lanes)])


async def stale_jobs(redis: Redis, ids: list[str]) -> list[str]:
    """Of the jobs ``ids`` (run under :func:`heartbeat`), those arq holds in progress without one."""
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.exists(in_progress_key_prefix + job_id)
            pipe.exists(alive_key(job_id))
        found = await pipe.execute()
    return [
        job_id for job_id, held, alive in zip(ids, found[::2], found[1::2], strict=True) if held and not alive
    ]
