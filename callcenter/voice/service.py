"""The telephony process (``callcenter agi``): the FastAGI IVR and the outbound dialer.

Both face Asterisk, so they live in one process per Asterisk server; state stays in the
database and Redis, so a second process can serve a second Asterisk. The IVR serves at once;
the dialer waits for AMI (Asterisk may boot after us), retrying with back-off, and stops for
good on a refused login: a wrong secret is a configuration error, not a transient fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.db import make_engine
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
    server = make_agi_server(settings, engine)
    try:
        async with server:
            log.warning("FastAGI IVR listening on %s:%s", server.host, server.port)
            if dial:
                await _dial(settings, engine, stop)
            await stop.wait()
    finally:
        await engine.dispose()


async def _dial(settings: Settings, engine: AsyncEngine, stop: asyncio.Event) -> None:
    from callcenter.voice.dialer import Dialer

    ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret)
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
        await Dialer(settings, engine, redis, ami).run(stop)
    finally:
        await ami.close()
        await redis.aclose()
