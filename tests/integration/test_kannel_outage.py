"""A citizen's Arabic reply through a real Kannel while PostgreSQL is down: smsbox gets its
200 at once (nothing goes back to the phone), the engine spools it, and when PostgreSQL is
back the reply is stored and the next question goes out through sendsms."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.sms.kannel_webhooks import sms_service_get_url
from callcenter.sms.spool import Spool
from callcenter.testing.kannel import KannelLab
from callcenter.web.app import create_app
from tests.conftest import make_settings
from tests.dbproxy import DbProxy
from tests.factories import THREE_QUESTIONS, invite, make_citizens, make_inquiry
from tests.integration.test_kannel import eventually, require_kannel

pytestmark = pytest.mark.kannel
A = models.table(models.Answer)
SECRET = "outage-kannel-secret"


async def test_a_reply_through_kannel_during_an_outage_is_answered_by_sendsms_later(
    pg: AsyncEngine, tmp_path: Path, redis_db: int, redis: aioredis.Redis
) -> None:
    require_kannel()
    inquiry_id = await make_inquiry(pg, yaml_text=THREE_QUESTIONS)
    [phone] = await make_citizens(pg, 1)
    await invite(pg, inquiry_id, [phone])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with (
        DbProxy(pg.url.port or 5432) as proxy,
        KannelLab(get_url=sms_service_get_url(base, SECRET)) as lab,
    ):
        database_url = proxy.url(pg.url.render_as_string(hide_password=False))
        settings = lab.settings(
            make_settings(
                tmp_path,
                database_url,
                redis_db,
                public_base_url=base,
                kannel_secret=SECRET,
                sms_webhook_db_timeout_s=2.0,
            )
        )
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.02)
            spool: Spool = app.state.inbox.spool
            await proxy.cut()
            await lab.inject(phone, "٤")
            await eventually(spool.has_backlog, "the reply to be spooled", timeout_s=30)
            await asyncio.sleep(1.0)
            assert [m for m in lab.received() if m.to == phone] == []  # no answer while it waits

            await proxy.restore()
            [question] = await lab.wait_received(1, where=lambda m: m.to == phone, timeout_s=60)
            assert "السؤال الثاني" in question.text
            async with pg.connect() as conn:
                assert (await conn.execute(select(A.c.value))).scalars().all() == ["4"]
        finally:
            server.should_exit = True
            await task
            sock.close()
