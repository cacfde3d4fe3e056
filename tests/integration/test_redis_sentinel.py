"""Every role reaching Redis through a real Sentinel (a primary, a replica, one sentinel, all on
loopback ports): the primary killed mid-campaign is replaced and the campaign carries on with
every citizen sent to and nothing lost; a sentinel that names no primary for a while makes the
worker wait and retry, not crash; the routing store's synchronous twin follows the primary too."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.campaigns.service import Audience, counts, create_campaign
from callcenter.jobs import Runtime, run_worker, start_campaign
from callcenter.redis_conn import connect
from callcenter.routing.store import _sync_twin
from callcenter.settings import Settings
from callcenter.sms.gateways.base import OutboundSms, SendResult
from callcenter.sms.gateways.loopback import LoopbackGateway
from callcenter.testing.redis_sentinel import SentinelLab, SentinelUnavailable, redis_binary
from tests.conftest import make_settings, unavailable
from tests.factories import THREE_QUESTIONS, make_citizens, make_inquiry

CITIZENS = 400
BATCH = 20  # a lane's claim: what can be in flight when Redis goes


def _lab(directory: Path, *, monitor: bool = True) -> SentinelLab:
    try:
        redis_binary()
    except SentinelUnavailable as exc:
        unavailable(str(exc))
    return SentinelLab(directory, monitor=monitor)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[SentinelLab]:
    with _lab(tmp_path / "sentinel") as running:
        yield running


class Recording:
    """The loopback gateway (its stream on the Sentinel-managed Redis), noting every message it
    accepted: what a citizen would have received."""

    name = "loopback"

    def __init__(self, settings: Settings) -> None:
        self.inner = LoopbackGateway(connect(settings))
        self.handed: list[str] = []

    async def send_many(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        results = await self.inner.send_many(messages)
        self.handed.extend(m.to for m, r in zip(messages, results, strict=True) if r.ok)
        return results

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _campaign(pg: AsyncEngine) -> int:
    await make_inquiry(pg, yaml_text=THREE_QUESTIONS)
    await make_citizens(pg, CITIZENS)
    async with AsyncSession(pg, expire_on_commit=False) as session, session.begin():
        row = await create_campaign(
            session, inquiry="three", audience=Audience(), actor="t", rate_per_s=100, max_attempts=50
        )
    assert row.id is not None
    return row.id


def _settings(tmp_path: Path, pg: AsyncEngine, redis_db: int) -> Settings:
    return make_settings(
        tmp_path,
        pg.url.render_as_string(hide_password=False),
        redis_db,
        reconcile_after_s=1.0,
        sms_retry_base_s=0.2,
        sms_batch_size=BATCH,
    )


async def _until_sent(pg: AsyncEngine, campaign: int, seconds: float) -> dict[str, int]:
    deadline = time.monotonic() + seconds
    while (progress := await counts(pg, campaign)) != {"sent": CITIZENS} and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return progress


async def test_killing_the_primary_mid_campaign_fails_over_and_every_citizen_is_sent_to(
    pg: AsyncEngine, lab: SentinelLab, redis_db: int, tmp_path: Path
) -> None:
    campaign = await _campaign(pg)
    settings = lab.settings(_settings(tmp_path, pg, redis_db))
    gateway = Recording(settings)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, gateway=gateway))
    rt = await Runtime.start(settings, gateway=gateway)
    try:
        await start_campaign(rt, campaign, actor="test")
        while (await counts(pg, campaign)).get("sent", 0) < 60:
            await asyncio.sleep(0.05)
        lab.kill_primary()  # SIGKILL, mid-campaign
        failover_s = await asyncio.to_thread(lab.wait_promoted)
        assert (await counts(pg, campaign)).get("sent", 0) < CITIZENS
        progress = await _until_sent(pg, campaign, 90)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
        await rt.close()
    assert progress == {"sent": CITIZENS}  # the outbox, the truth: nobody left out
    handed = Counter(gateway.handed)
    assert len(handed) == CITIZENS  # every citizen received the invitation
    twice = sum(n - 1 for n in handed.values())
    # at most the claims in flight when the primary died went out again (4 lanes)
    assert twice <= 4 * BATCH, (twice, failover_s)
    logging.getLogger(__name__).warning("failover %.1f s, %d sent twice", failover_s, twice)


async def test_a_sentinel_that_names_no_primary_for_a_while_makes_the_worker_wait_not_crash(
    pg: AsyncEngine, redis_db: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    campaign = await _campaign(pg)
    plain = _settings(tmp_path, pg, redis_db)
    starter = await Runtime.start(plain)  # planned and running in the database; its jobs are
    try:  # in another Redis: the worker rebuilds them from the outbox (the reconciler)
        await start_campaign(starter, campaign, actor="test")
    finally:
        await starter.close()
    with _lab(tmp_path / "sentinel", monitor=False) as lab:
        assert lab.primary_now() is None
        settings = lab.settings(plain)
        gateway = Recording(settings)
        stop = asyncio.Event()
        caplog.set_level(logging.WARNING)
        worker = asyncio.create_task(run_worker(settings, stop=stop, gateway=gateway))
        try:
            await asyncio.sleep(6)  # no primary all this time
            assert not worker.done()  # waiting, not crashed
            tries = [r for r in caplog.records if "redis connection error" in r.getMessage()]
            restarts = [r for r in caplog.records if "worker lost Redis" in r.getMessage()]
            assert 2 <= len(tries) <= 8  # about one try a second, not a tight loop
            assert len(restarts) <= 2
            assert await counts(pg, campaign) == {"pending": CITIZENS}
            lab.monitor()  # the sentinel finds the primary
            progress = await _until_sent(pg, campaign, 60)
        finally:
            stop.set()
            await asyncio.wait_for(worker, 30)
    assert progress == {"sent": CITIZENS}
    assert Counter(gateway.handed) == Counter({f"+21891{i:07d}": 1 for i in range(CITIZENS)})


async def test_the_routing_store_s_sync_twin_follows_the_primary_after_a_failover(lab: SentinelLab) -> None:
    """The routing store changes state through a synchronous twin of its client: behind
    Sentinel the twin asks the sentinels too, so after a failover both talk to the new primary."""
    client = connect(lab.settings(Settings(env="test")))
    twin = _sync_twin(client)
    try:
        await client.set("acd:probe", "before")
        assert twin.get("acd:probe") == b"before"
        lab.kill_primary()
        await asyncio.to_thread(lab.wait_promoted)
        await _retried(lambda: twin.set("acd:probe", "after"))  # the first meets the dead socket
        assert await _retried(lambda: client.get("acd:probe")) == b"after"
        assert int(twin.config_get("port")["port"]) == lab.replica_port
    finally:
        twin.close()
        await client.aclose()


async def _retried(command: Callable[[], Any]) -> Any:
    for _ in range(50):
        try:
            result = command()
            return await result if inspect.isawaitable(result) else result
        except RedisConnectionError:
            await asyncio.sleep(0.2)
    raise AssertionError("Redis did not come back through the sentinel")
