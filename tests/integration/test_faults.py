"""Every role lives through the faults an operator meets, on the real processes: a private
PostgreSQL restarted or crashed under the worker, the dialer and the IVR; a private Redis
restarted or flushed mid-campaign; ``serve``, ``worker`` and ``agi`` killed with SIGKILL in the
middle of their work. Nothing given is lost, nothing is counted twice, no process exits for an
outage, and what goes out twice is at most the chunk that was in flight (see
``callcenter/testing/fault_lab.py``; ``scripts/bench/faults.py`` runs them all at scale)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from callcenter.testing.fault_lab import FaultLab, migrated_template
from callcenter.testing.postgres import PostgresUnavailable, PrivatePostgres
from callcenter.testing.redis_sentinel import SentinelUnavailable
from callcenter.testing.redis_server import PrivateRedis
from callcenter.testing.roles import RoleName
from tests.conftest import unavailable

BATCH = 25  # a lane's claim: the most that can be in flight when a fault strikes


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    """One private PostgreSQL for the module (each test gets its own database in it)."""
    try:
        pg = PrivatePostgres()
    except PostgresUnavailable as exc:
        unavailable(str(exc))
    with pg:
        yield pg


@pytest.fixture(scope="module")
async def template(cluster: PrivatePostgres) -> str:
    return await migrated_template(cluster)


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    try:
        server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    except SentinelUnavailable as exc:
        unavailable(str(exc))
    with server:
        yield server


@pytest.fixture
def lab(cluster: PrivatePostgres, template: str, private_redis: PrivateRedis, tmp_path: Path) -> Any:
    """``lab(roles, sms=, voice=, env=)``: a FaultLab on this module's services, a fresh
    database and an empty Redis (a test that failed mid-outage leaves both running again)."""

    @asynccontextmanager
    async def running(roles: tuple[RoleName, ...], **kwargs: Any) -> AsyncIterator[FaultLab]:
        if not cluster.running:
            cluster.start()
        if not private_redis.running:
            private_redis.start()
        from redis import Redis

        with Redis.from_url(private_redis.url(0)) as admin:
            admin.flushall()
        env = {"CALLCENTER_SMS_BATCH_SIZE": str(BATCH), **kwargs.pop("env", {})}
        async with FaultLab.running(
            tmp_path, roles=roles, pg=cluster, redis=private_redis, template=template,
            database=f"faults_{uuid.uuid4().hex[:8]}", env=env, **kwargs,
        ) as running_lab:  # fmt: skip
            yield running_lab

    return running


async def sent_at_least(lab: FaultLab, campaign: int, n: int, *, timeout_s: float = 30) -> None:
    await lab.until(lambda: _sent(lab, campaign, n), f"{n} invitations sent", timeout_s=timeout_s)


async def _sent(lab: FaultLab, campaign: int, n: int) -> bool:
    return (await lab.progress(campaign)).get("sent", 0) >= n


# -- PostgreSQL ---------------------------------------------------------------------------------


async def test_postgres_restarted_under_a_sending_worker_loses_nobody_and_sends_nobody_twice(
    lab: Any,
) -> None:
    async with lab(("worker",), sms_citizens=400) as fl:
        campaign = await fl.sms_campaign(rate_per_s=100)  # four seconds of sending
        await sent_at_least(fl, campaign, 100)
        await fl.restart_postgres(down_s=2.0, mode="fast")
        assert fl.role("worker").alive
        recovered = await fl.until(lambda: fl.finished(campaign), "the campaign to finish", timeout_s=40)
        assert await fl.progress(campaign) == {"sent": 400}
        assert len({item.to for item in fl.tail.items}) == 400
        # the chunk the gateway had taken when the database went away was recorded once it
        # answered again, not sent a second time by the reconciler
        assert fl.tail.invitations_twice() == 0
        worker_log = fl.role("worker").log(200_000)
        assert "unreachable" in worker_log and "Traceback" not in worker_log
        assert recovered < 30


async def test_a_worker_started_while_postgres_is_down_waits_for_it_and_then_runs_the_campaign(
    lab: Any,
) -> None:
    async with lab(("worker",), sms_citizens=200, start=False) as fl:
        campaign = await fl.sms_campaign()  # the "start" is queued: the worker will find it
        fl.pg.stop(mode="fast")
        worker = fl.role("worker")
        worker.start()
        await worker.wait_ready(30, path="/healthz")
        await asyncio.sleep(3)
        assert worker.alive, worker.log()  # no crash, so no crash loop under systemd
        fl.pg.start()
        await fl.until(lambda: fl.finished(campaign), "the campaign to finish", timeout_s=40)
        assert await fl.progress(campaign) == {"sent": 200}
        assert fl.tail.invitations_twice() == 0


async def test_postgres_crashing_under_the_dialer_and_the_ivr_keeps_every_answer_given(lab: Any) -> None:
    async with lab(("agi",), voice_citizens=80, time_scale=0.05) as fl:
        campaign = await fl.voice_campaign()
        await fl.until(lambda: _answers_at_least(fl, 45), "some calls answered", timeout_s=30)
        await fl.restart_postgres(down_s=2.0, mode="immediate")  # calls in progress
        assert fl.role("agi").alive
        await fl.until(lambda: fl.calls_over(campaign), "every citizen called", timeout_s=40)
        counted = await fl.recount()
        assert counted.lost == 0, counted.lost_examples
        assert counted.duplicated == 0, counted.duplicated_examples
        # the calls in progress waited for the database: every citizen finished the inquiry
        assert counted.sessions_completed == 80
        assert fl.dialled_twice() == 0
        assert "Traceback" not in fl.role("agi").log(200_000)


async def test_an_agi_started_while_postgres_is_down_does_not_exit_and_dials_once_it_is_back(
    lab: Any,
) -> None:
    async with lab(("agi",), voice_citizens=40, start=False) as fl:
        campaign = await fl.voice_campaign()
        fl.pg.stop(mode="fast")
        agi = fl.role("agi")
        agi.start()
        await agi.wait_ready(30, path="/healthz")
        await asyncio.sleep(3)  # the AMI session is up, the dialer waits for the database
        assert agi.alive, agi.log()
        fl.pg.start()
        await fl.until(lambda: fl.calls_over(campaign), "every citizen called", timeout_s=40)
        counted = await fl.recount()
        assert counted.sessions_completed == 40 and counted.lost == 0


async def _answers_at_least(fl: FaultLab, n: int) -> bool:
    return (await fl.recount()).answers_recorded >= n


# -- Redis --------------------------------------------------------------------------------------


async def test_redis_restarted_then_flushed_mid_campaign_the_work_is_rebuilt_from_the_outbox(
    lab: Any,
) -> None:
    env = {"CALLCENTER_SMS_RETRY_BASE_S": "1", "CALLCENTER_RECONCILE_AFTER_S": "3"}
    async with lab(("worker",), sms_citizens=400, env=env) as fl:
        campaign = await fl.sms_campaign(rate_per_s=100)
        await sent_at_least(fl, campaign, 60)
        await fl.restart_redis(down_s=2.0)
        # the worker restarts its arq loop; the lanes it ran are still marked in progress in the
        # Redis saved at shutdown, so they come back through the reconciler once their heartbeats
        # are found missing (RECONCILE_AFTER, 3 s here, then its next pass)
        await sent_at_least(fl, campaign, 200, timeout_s=60)
        await fl.flush_redis()  # every job, lane, bucket and cached status gone
        assert fl.role("worker").alive
        await fl.until(lambda: fl.finished(campaign), "the campaign to finish", timeout_s=50)
        assert await fl.progress(campaign) == {"sent": 400}
        assert len({item.to for item in fl.tail.items}) == 400
        # at most the chunks in flight when Redis went (the gateway's own Redis writes failed)
        assert fl.tail.invitations_twice() <= 4 * BATCH


# -- SIGKILL ------------------------------------------------------------------------------------


async def test_serve_killed_with_replies_in_its_spool_stores_each_once_after_the_restart(lab: Any) -> None:
    async with lab(("serve", "worker"), sms_citizens=60) as fl:
        campaign = await fl.sms_campaign()
        await fl.until(lambda: fl.finished(campaign), "every invitation sent", timeout_s=30)
        fl.pg.stop(mode="fast")
        sms = fl.answer_by_sms(concurrency=16)  # their first answers go to the spool
        await fl.until(lambda: _acked(sms, 60), "60 replies spooled", timeout_s=30)
        serve = fl.role("serve")
        serve.kill()  # with the spool undrained
        fl.pg.start()
        serve.start()
        await serve.wait_ready(60)
        await fl.until(lambda: _acked(sms, 180), "every citizen through all three questions", timeout_s=50)
        await sms.settle(10)
        counted = await fl.recount()
        assert counted.lost == 0, counted.lost_examples
        assert counted.duplicated == 0, counted.duplicated_examples
        assert counted.answers_recorded == 180 and counted.messages_stored == 180


async def _acked(sms: Any, n: int) -> bool:
    return bool(sms.sent >= n)


async def test_serve_killed_mid_replies_the_retried_replies_are_stored_once(lab: Any) -> None:
    async with lab(("serve", "worker"), sms_citizens=100) as fl:
        campaign = await fl.sms_campaign()
        await fl.until(lambda: fl.finished(campaign), "every invitation sent", timeout_s=30)
        sms = fl.answer_by_sms(concurrency=32)
        await fl.until(lambda: _acked(sms, 120), "replies flowing", timeout_s=30)
        await fl.kill("serve", down_s=0.5)  # requests in flight: reset, then retried
        await fl.until(lambda: _acked(sms, 300), "every citizen through all three questions", timeout_s=50)
        await sms.settle(10)
        counted = await fl.recount()
        assert counted.lost == 0, counted.lost_examples
        assert counted.duplicated == 0, counted.duplicated_examples
        assert counted.answers_recorded == 300


async def test_a_worker_killed_mid_campaign_is_replaced_and_resends_at_most_its_chunks_in_flight(
    lab: Any,
) -> None:
    async with lab(("worker",), sms_citizens=400, env={"CALLCENTER_RECONCILE_AFTER_S": "3"}) as fl:
        campaign = await fl.sms_campaign(rate_per_s=100)
        await sent_at_least(fl, campaign, 100)
        await fl.kill("worker")
        await fl.until(lambda: fl.finished(campaign), "the campaign to finish", timeout_s=45)
        assert await fl.progress(campaign) == {"sent": 400}
        assert len({item.to for item in fl.tail.items}) == 400
        assert fl.tail.invitations_twice() <= 4 * BATCH  # four lanes, one claim each


async def test_agi_killed_mid_calls_keeps_the_answers_given_and_the_next_process_dials_on(lab: Any) -> None:
    async with lab(("agi",), voice_citizens=80, time_scale=0.05) as fl:
        campaign = await fl.voice_campaign()
        await fl.until(lambda: _answers_at_least(fl, 45), "calls under way", timeout_s=30)
        before = await fl.recount()
        await fl.kill("agi")
        await fl.until(
            lambda: _answers_at_least(fl, before.answers_recorded + 45), "calls again", timeout_s=30
        )
        counted = await fl.recount()
        assert counted.lost == 0, counted.lost_examples
        assert counted.duplicated == 0, counted.duplicated_examples
        assert fl.dialled_twice() == 0
        assert (await fl.progress(campaign)).get("delivered", 0) > before.sessions_completed


async def test_a_worker_stopped_with_sigterm_mid_campaign_gives_its_claimed_rows_back_at_once(
    lab: Any,
) -> None:
    """systemd's stop: before, SIGTERM killed the worker outright and its claimed rows waited
    for the reconciler's deadline."""
    async with lab(("worker",), sms_citizens=400, env={"CALLCENTER_RECONCILE_AFTER_S": "600"}) as fl:
        campaign = await fl.sms_campaign(rate_per_s=50)
        await sent_at_least(fl, campaign, 50)
        assert fl.role("worker").stop(grace_s=20) == 0
        progress = await fl.progress(campaign)
        assert "sending" not in progress and progress.get("sent", 0) + progress.get("pending", 0) == 400
