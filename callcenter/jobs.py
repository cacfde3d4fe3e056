"""arq jobs: plan a campaign, run its send lanes, reconcile what a crash or a lost Redis left.

Redis only carries work: every job can be lost and the reconciler rebuilds it from the
database (stuck ``sending`` rows back to ``pending``, lanes of running campaigns re-queued,
stored inbound messages that were never processed run through the engine again).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from arq import Retry, cron
from arq.connections import ArqRedis, create_pool
from arq.constants import in_progress_key_prefix
from arq.worker import Worker, func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError as RedisWatchError
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor
from callcenter.campaigns.lanes import heartbeat, lane_job_id, stale_jobs, stale_lanes
from callcenter.campaigns.progress import plan_job_id
from callcenter.campaigns.sender import Sender
from callcenter.campaigns.service import epoch_key, move, plan
from callcenter.db import make_engine
from callcenter.inquiries import set_status
from callcenter.inquiry.definition import InquiryStatus
from callcenter.outages import OutageLog, unavailable
from callcenter.redis_conn import arq_settings
from callcenter.settings import Settings, get_settings
from callcenter.sms.gateways import make_gateway
from callcenter.sms.gateways.base import Gateway
from callcenter.sms.inbox import Inbox
from callcenter.sms.replies import ReplyOutbox

log = logging.getLogger(__name__)

D = models.table(models.Delivery)
K = models.table(models.Campaign)
LANES = 4


@dataclass
class Runtime:
    """What every job needs, built once per worker process."""

    settings: Settings
    engine: AsyncEngine
    redis: ArqRedis
    gateway: Gateway
    sender: Sender
    inbox: Inbox

    @classmethod
    async def start(
        cls, settings: Settings, redis: ArqRedis | None = None, gateway: Gateway | None = None
    ) -> Runtime:
        engine = make_engine(settings)
        redis = redis or await create_pool(arq_settings(settings))
        gateway = gateway or make_gateway(settings, redis)
        return cls(
            settings,
            engine,
            redis,
            gateway,
            Sender(engine, redis, gateway, settings),
            Inbox(engine, settings, redis=redis),
        )

    async def close(self) -> None:
        await self.inbox.aclose()
        await self.gateway.aclose()
        await self.engine.dispose()


async def enqueue_lanes(redis: ArqRedis, campaign_id: int, lanes: int = LANES) -> int:
    """Queue the campaign's send lanes for the current epoch (duplicates are refused by arq);
    lanes arq holds in progress that nobody runs (a worker killed, a Redis failover) are
    replaced under a new epoch (see ``callcenter.campaigns.lanes``)."""
    epoch = int(await redis.get(epoch_key(campaign_id)) or 0)
    stale = await stale_lanes(redis, campaign_id, epoch, lanes)
    if stale:
        epoch = int(await redis.incr(epoch_key(campaign_id)))
        log.warning("lanes %s are held but not running; starting the lanes of epoch %s", stale, epoch)
    queued = 0
    for lane in range(lanes):
        job = await redis.enqueue_job("send_lane", campaign_id, _job_id=lane_job_id(campaign_id, epoch, lane))
        queued += job is not None
    return queued


async def start_campaign(rt: Runtime, campaign_id: int, *, actor: str | Actor) -> int:
    """Plan the outbox, mark the campaign running and queue its lanes; returns planned rows."""
    planned = await plan(rt.engine, campaign_id)
    campaign = await move(rt.engine, rt.redis, campaign_id, "running", actor=actor)
    if campaign.channel == "sms":  # voice campaigns are dialled by the telephony process
        await enqueue_lanes(rt.redis, campaign_id)
    await rt.sender.progress.changed(campaign_id)  # planned and running, on the staff pages
    return planned


# -- job functions ------------------------------------------------------------------------


async def send_lane(ctx: dict[str, Any], campaign_id: int) -> dict[str, Any]:
    rt: Runtime = ctx["rt"]
    try:
        async with heartbeat(rt.redis, ctx.get("job_id"), rt.settings.reconcile_after_s):
            result = await rt.sender.run_lane(campaign_id)
    except Exception as exc:
        # PostgreSQL or Redis restarting: the lane comes back by itself, sooner than the
        # reconciler's next round would bring it, and backs off while the outage lasts
        _retry_after_outage(ctx, exc, f"send lane of campaign {campaign_id}")
        raise
    if result.resume_at is not None and result.stopped is None:
        wait = max(0.5, (result.resume_at - datetime.now(UTC)).total_seconds())
        raise Retry(defer=timedelta(seconds=wait))
    return {"sent": result.sent, "failed": result.failed, "stopped": result.stopped}


async def plan_campaign(ctx: dict[str, Any], campaign_id: int, actor: str | Actor = "system") -> int:
    """Start a campaign (every step is idempotent, so an outage midway is tried again; a
    worker killed midway leaves it to the reconciler, see ``release_stale_plans``)."""
    rt: Runtime = ctx["rt"]
    try:
        async with heartbeat(rt.redis, ctx.get("job_id"), rt.settings.reconcile_after_s):
            return await start_campaign(rt, campaign_id, actor=actor)
    except Exception as exc:
        _retry_after_outage(ctx, exc, f"starting campaign {campaign_id}")
        raise


def _retry_after_outage(ctx: dict[str, Any], exc: Exception, what: str) -> None:
    """An outage ends the job with arq's ``Retry``, later by the tries already made (0.5 s
    doubling to 10 s); any other error is left to the caller to raise (a bug: no retry)."""
    if not unavailable(exc):
        return
    wait = min(10.0, 0.5 * 2 ** max(0, int(ctx.get("job_try") or 1) - 1))
    log.warning(
        "%s: database or Redis unreachable (%s: %s); again in %.1fs", what, type(exc).__name__, exc, wait
    )
    raise Retry(defer=timedelta(seconds=wait)) from exc


async def reconcile(ctx: dict[str, Any]) -> dict[str, int]:
    """The reconciler's round (every 15 s); during an outage it waits for the next round."""
    try:
        done = await reconcile_once(ctx["rt"])
    except Exception as exc:
        if not unavailable(exc):
            raise
        _RECONCILER_OUTAGE.failed(exc, 15.0)
        return {}
    _RECONCILER_OUTAGE.recovered()
    return done


#: one line when the reconciler's rounds start failing for an outage, one when they work again
#: (arq gives each job a fresh ctx: the log lives here)
_RECONCILER_OUTAGE = OutageLog(log, "reconciler")


async def export_results(ctx: dict[str, Any], job_id: str) -> None:
    """An analyst's large export (analysis/export_jobs.py): the file, with its progress."""
    from callcenter.analysis import export_jobs

    rt: Runtime = ctx["rt"]
    await export_jobs.run(rt.engine, rt.redis, rt.settings, job_id)


async def delete_old_recordings(ctx: dict[str, Any]) -> int:
    """Hourly: call recordings past ``CALLCENTER_RECORDING_RETENTION_DAYS`` are deleted (audited)."""
    from callcenter.desk.recordings import delete_expired

    rt: Runtime = ctx["rt"]
    return len(await delete_expired(rt.engine, rt.settings))


async def apply_retention(ctx: dict[str, Any]) -> dict[str, int]:
    """Daily: answers of inquiries closed past their retention keep only the pseudonym, and
    numbers unused past CALLCENTER_CITIZEN_INACTIVE_DAYS are erased (callcenter.retention)."""
    from callcenter.retention import run

    rt: Runtime = ctx["rt"]
    report = await run(rt.engine, rt.redis, rt.settings)
    return {"inquiries": len(report.inquiries), "erased": report.inactive.citizens}


async def recompute_requests(ctx: dict[str, Any]) -> int:
    """Hourly: every open service request's SLA state (due soon, overdue) is brought up to
    date, so the officers' queues and the supervisors' escalations follow the clock; returns
    how many became overdue in this pass (logged: the ministry's supervisors see them)."""
    from callcenter.requests.recompute import recompute_sla
    from callcenter.requests.store import load_calendar

    rt: Runtime = ctx["rt"]
    calendar = await load_calendar(rt.engine, rt.settings)
    done = await recompute_sla(rt.engine, calendar, due_soon_share=rt.settings.request_due_soon_share)
    if done.newly_breached:
        log.warning("%s service request(s) became overdue and are escalated", len(done.newly_breached))
    return len(done.newly_breached)


async def reconcile_once(rt: Runtime) -> dict[str, int]:
    """Rebuild lost work from the database (safe to run any time, in any number of workers)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=rt.settings.reconcile_after_s)
    async with rt.engine.begin() as conn:
        # SMS rows only: a voice row whose Originate may have gone out is settled by the
        # dialer, never simply re-queued (that could ring a citizen twice)
        sms = select(K.c.id).where(K.c.channel == "sms")
        released = (
            await conn.execute(
                update(D)
                .where(D.c.status == "sending", D.c.claimed_at < cutoff, D.c.campaign_id.in_(sms))
                .values(status="pending", claimed_at=None)
            )
        ).rowcount
        running_sms = select(K.c.id).where(K.c.status == "running", K.c.channel == "sms")
        running = [int(cid) for cid in (await conn.execute(running_sms)).scalars()]
    await start_scheduled(rt)
    await release_stale_plans(rt)
    lanes = 0
    for campaign_id in running:
        await rt.redis.set(f"campaign:{campaign_id}:status", "running")
        lanes += await enqueue_lanes(rt.redis, campaign_id)
    # stored messages a crash left unprocessed: their replies go out as queued reply messages,
    # as the spool drainer's do, so a message both recover is answered once
    recovered = [
        message_id for message_id, _, outcome in await rt.inbox.reprocess_stuck(cutoff) if outcome.reply
    ]
    outbox = ReplyOutbox(rt.engine, rt.gateway)
    replies = (await outbox.send(await outbox.queue_messages(recovered))).sent if recovered else 0
    if released or replies:
        log.warning("reconciled: %s deliveries released, %s replies recovered", released, replies)
    return {"released": int(released or 0), "lanes": lanes, "replies": replies}


async def release_stale_plans(rt: Runtime) -> list[int]:
    """Draft campaigns whose start was asked for but whose planning job arq holds in progress
    with no heartbeat (its worker was killed): the in-progress mark goes, so the job, still
    queued, runs again at the next poll (planning is idempotent); returns their ids. Without
    this a start would wait for arq's day-long job timeout."""
    async with rt.engine.connect() as conn:
        drafts = [int(i) for i in (await conn.execute(select(K.c.id).where(K.c.status == "draft"))).scalars()]
    stale = await stale_jobs(rt.redis, [plan_job_id(i) for i in drafts])
    if stale:
        await rt.redis.delete(*(in_progress_key_prefix + job_id for job_id in stale))
        log.warning("planning jobs %s were held by a worker that is gone; planning them again", stale)
    return [i for i in drafts if plan_job_id(i) in stale]


async def start_scheduled(rt: Runtime, now: datetime | None = None) -> list[int]:
    """Scheduled inquiries whose time has come start running, with their draft SMS campaigns."""
    now = now or datetime.now(UTC)
    inquiries = models.table(models.Inquiry)
    async with rt.engine.connect() as conn:
        due = (
            (
                await conn.execute(
                    select(inquiries.c.id).where(
                        inquiries.c.status == "scheduled", inquiries.c.scheduled_at <= now
                    )
                )
            )
            .scalars()
            .all()
        )
        drafts = (
            (await conn.execute(select(K.c.id).where(K.c.inquiry_id.in_(due), K.c.status == "draft")))
            .scalars()
            .all()
            if due
            else []
        )
    for inquiry_id in due:
        async with AsyncSession(rt.engine, expire_on_commit=False) as session, session.begin():
            await set_status(session, int(inquiry_id), InquiryStatus.RUNNING, actor="scheduler")
    for campaign_id in drafts:
        await start_campaign(rt, int(campaign_id), actor="scheduler")
    return [int(i) for i in due]


# -- the worker ---------------------------------------------------------------------------


async def _startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    ctx["rt"] = await Runtime.start(settings, ctx["redis"], ctx.get("gateway"))
    # a worker started while PostgreSQL is away runs all the same: its lanes back off until
    # the database answers, and the reconciler's next round does what this one could not
    await reconcile(ctx)


async def _shutdown(ctx: dict[str, Any]) -> None:
    if "rt" in ctx:
        await ctx["rt"].close()


def make_worker(
    settings: Settings, *, burst: bool = False, max_jobs: int = 16, gateway: Gateway | None = None
) -> Worker:
    return Worker(
        functions=[
            func(send_lane, max_tries=100_000, keep_result=0, timeout=24 * 3600),
            # tries spent waiting out an outage count: enough for some minutes of them
            func(plan_campaign, max_tries=60, keep_result=0),
            func(reconcile, keep_result=0),
            func(export_results, max_tries=1, keep_result=0, timeout=3600),
        ],
        cron_jobs=[
            cron(reconcile, second=set(range(0, 60, 15)), run_at_startup=False, keep_result=0),
            cron(delete_old_recordings, minute={17}, second={0}, run_at_startup=False, keep_result=0),
            cron(recompute_requests, minute={5}, second={0}, run_at_startup=False, keep_result=0),
            cron(
                apply_retention,
                hour={2},
                minute={43},
                second={0},
                run_at_startup=False,
                keep_result=0,
                timeout=6 * 3600,
            ),
        ],
        redis_settings=arq_settings(settings),
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings, "gateway": gateway},
        burst=burst,
        max_jobs=max_jobs,
        poll_delay=0.05,
        handle_signals=False,
        job_timeout=24 * 3600,
    )


async def _wind_down(worker: Worker) -> None:
    """Cancel the jobs in flight and wait until every one has ended, before ``close()`` runs
    ``_shutdown``. arq's own close() gathers its jobs without ``return_exceptions``, so it returns
    at the first cancelled job while others may still be giving their claimed rows back — and
    then the runtime they need is closed under them (a stop that left a chunk ``sending``)."""
    for task in worker.tasks.values():
        if not task.done():
            task.cancel()
    pending = [*worker.tasks.values(), *worker.job_tasks.values()]
    await asyncio.gather(*pending, return_exceptions=True)


async def run_worker(
    settings: Settings, *, stop: asyncio.Event | None = None, gateway: Gateway | None = None
) -> None:
    """Run the worker; if Redis goes away, wait and start again (jobs are rebuilt on start)."""
    stop = stop or asyncio.Event()
    delay = 0.5
    while not stop.is_set():
        worker = make_worker(settings, gateway=gateway)
        runner = asyncio.create_task(worker.async_run())
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                runner.result()
                delay = 0.5
        except Exception as exc:
            # (redis-py turns a connection lost during arq's WATCH into a WatchError); anything
            # else that is not an outage is a bug, which restarting would only repeat
            if not (isinstance(exc, RedisWatchError | OSError) or unavailable(exc)):
                raise
            log.warning("worker lost %s (%s); restarting in %.1fs", _lost(exc), exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        finally:
            stopper.cancel()
            if not runner.done():
                runner.cancel()
            await asyncio.gather(runner, stopper, return_exceptions=True)
            try:
                await _wind_down(worker)
                await worker.close()
            except (RedisConnectionError, RedisTimeoutError, OSError):
                log.debug("closing a worker whose Redis is gone")
            except asyncio.CancelledError:
                # arq's close() cancels the running jobs and gathers them, which re-raises
                # their cancellation here; only our own cancellation is propagated
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                log.debug("jobs in flight were cancelled as the worker closed")


def _lost(error: BaseException) -> str:
    """Which service an outage error came from, for the log ("Redis", "PostgreSQL")."""
    if isinstance(error, RedisConnectionError | RedisTimeoutError | RedisWatchError):
        return "Redis"
    if isinstance(error, sa_exc.SQLAlchemyError):
        return "PostgreSQL"
    tb = error.__traceback__
    while tb is not None:  # a bare OSError: whose connection was being made
        path = tb.tb_frame.f_code.co_filename
        if "/asyncpg/" in path or "/sqlalchemy/" in path:
            return "PostgreSQL"
        if "/redis/" in path:
            return "Redis"
        tb = tb.tb_next
    return "PostgreSQL or Redis"
