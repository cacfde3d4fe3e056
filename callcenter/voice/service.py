"""The telephony process (``callcenter agi``): the FastAGI IVR, the outbound dialer and the
routing rounds.

All face Asterisk, so they live in one process per Asterisk server; state stays in the
database and Redis, so a second process can serve a second Asterisk. The IVR serves at once;
the dialer waits for AMI (Asterisk may boot after us), retrying with back-off, and stops for
good on a refused login: a wrong secret is a configuration error, not a transient fault.
The routing rounds (every second: offers, overflows, announcements, desks that lost contact)
run beside the callers' own rounds between hold pieces, so an agent who becomes ready is
offered a caller even while every caller is mid-piece; several processes may run them (the
routing store locks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import metrics
from callcenter.db import make_engine
from callcenter.desk.acd import Acd
from callcenter.health import ReadinessProbe, ami_check, database_check, redis_check
from callcenter.ops_server import ops_port
from callcenter.redis_conn import connect as connect_redis
from callcenter.settings import Settings
from callcenter.telephony.ami import AmiClient, AmiConnectionError, AmiLoginError
from callcenter.voice.ivr import make_agi_server

log = logging.getLogger(__name__)


async def run_telephony(settings: Settings, stop: asyncio.Event, *, dial: bool = True) -> None:
    engine = make_engine(settings)
    if settings.database_url is None:  # the embedded default migrates itself
        from callcenter.migrate import upgrade

        await upgrade(engine)
    redis = connect_redis(settings)
    acd = Acd(engine, redis)
    loaded = await _load(acd)  # before the first caller: queues known from the start
    server = make_agi_server(settings, engine, acd=acd, on_command=metrics.observe_agi_command)
    metrics.LIVE.agi_servers.add(server)
    amis: list[AmiClient] = []  # the dialers' AMI session, once made (readiness checks it)
    checks = {"database": database_check(lambda: engine), "redis": redis_check(lambda: redis)}
    if dial:
        checks["ami"] = ami_check(lambda: bool(amis) and amis[0].connected)
    rounds = asyncio.create_task(
        routing_rounds(acd, stop, loaded=loaded, default_aht=settings.queue_default_aht_s), name="acd-rounds"
    )
    rounds.add_done_callback(_ended)
    try:
        async with server, ops_port(settings, ReadinessProbe(checks), engine=engine):
            log.warning("FastAGI IVR listening on %s:%s", server.host, server.port)
            if dial:
                await _dial(settings, engine, acd, stop, amis)
            await stop.wait()
    finally:
        metrics.LIVE.agi_servers.discard(server)
        rounds.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rounds
        await redis.aclose()
        await engine.dispose()


async def _load(acd: Acd) -> bool:
    try:
        queues = await acd.load()
    except Exception:
        log.exception("routing: queues and agents not loaded (callers get callback tickets until they are)")
        return False
    log.info("routing: %d queues loaded", len(queues))
    return True


async def routing_rounds(
    acd: Acd, stop: asyncio.Event, *, every_s: float = 1.0, loaded: bool = True, default_aht: float = 240.0
) -> None:
    """Every ``every_s``: a routing round, the sweep of desks that lost contact and, now and
    then, the queues' recent handling times for the wait estimates (and the queues and agents
    loaded first, until that works, unless ``loaded``). A failure is logged
    (the first, then one a minute while they last) and the next round tries again: the loop
    never dies of one."""
    failures = 0
    while not stop.is_set():
        try:
            if not loaded:
                await acd.load()
                loaded = True
                log.warning("routing: queues and agents loaded")
            await acd.round()
            await acd.sweep_contact()
            await acd.refresh_stats(prior_aht=default_aht)
            if failures:
                log.warning("routing rounds work again after %d failures", failures)
            failures = 0
        except Exception:
            failures += 1
            if failures == 1 or failures % max(1, round(60 / every_s)) == 0:
                log.exception("routing round failed (%d in a row)", failures)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


def _ended(task: asyncio.Task[None]) -> None:
    """The rounds end only with the process: say so if they end otherwise."""
    if not task.cancelled() and task.exception() is not None:
        log.error("routing rounds stopped", exc_info=task.exception())


async def _dial(
    settings: Settings, engine: AsyncEngine, acd: Acd, stop: asyncio.Event, amis: list[AmiClient]
) -> None:
    """The campaign dialer and the callback dialer, on one AMI connection (put in ``amis``)."""
    from callcenter.voice.callback_dialer import CallbackDialer
    from callcenter.voice.dialer import Dialer

    ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret)
    amis.append(ami)
    metrics.LIVE.amis.add(ami)
    delay = 1.0
    while not stop.is_set():
        try:
            await ami.connect()
            break
        except AmiLoginError:
            log.error(
                "AMI refused the login of %r: check CALLCENTER_AMI_USERNAME/SECRET and manager.conf",
                settings.ami_username,
            )
            return
        except AmiConnectionError as exc:
            log.warning("no AMI yet (%s); retrying in %.0fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)
    if stop.is_set():
        await ami.close()
        return
    redis = connect_redis(settings)
    try:
        async with asyncio.TaskGroup() as tasks:
            dialer = Dialer(settings, engine, redis, ami)
            metrics.LIVE.dialers.add(dialer)
            tasks.create_task(dialer.run(stop), name="dialer")
            tasks.create_task(CallbackDialer(settings, engine, acd, ami).run(stop), name="callback-dialer")
    finally:
        metrics.LIVE.amis.discard(ami)
        await ami.close()
        await redis.aclose()
