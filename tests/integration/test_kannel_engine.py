"""The whole SMS loop through a real Kannel: a campaign's Arabic invitation goes out through
bearerbox/smsbox to the fake SMSC, the DLR marks it delivered, a citizen's Arabic reply comes in
through the sms-service get-url into the real engine (PostgreSQL), the answer is recorded once,
and the next question goes back out to the phone."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.campaigns.sender import Sender
from callcenter.campaigns.service import Audience, counts, create_campaign, move, plan
from callcenter.settings import Settings
from callcenter.sms.gateways.kannel import KannelGateway
from callcenter.sms.kannel_webhooks import sms_service_get_url
from callcenter.testing.kannel import KannelLab
from callcenter.web.app import create_app
from tests.factories import THREE_QUESTIONS, make_citizens, make_inquiry
from tests.integration.test_kannel import require_kannel

pytestmark = pytest.mark.kannel
A = models.table(models.Answer)


async def eventually(check: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check() if asyncio.iscoroutinefunction(check) else not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def served(
    pg: AsyncEngine, settings: Settings, redis: aioredis.Redis
) -> AsyncIterator[tuple[Settings, KannelLab]]:
    require_kannel()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    engine_settings = settings.model_copy(
        update={"database_url": pg.url.render_as_string(hide_password=False), "public_base_url": base}
    )
    async with KannelLab(get_url=sms_service_get_url(base, engine_settings.kannel_secret)) as lab:
        engine_settings = lab.settings(engine_settings)
        server = uvicorn.Server(
            uvicorn.Config(create_app(engine_settings), log_level="warning", timeout_graceful_shutdown=1)
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.02)
        try:
            yield engine_settings, lab
        finally:
            server.should_exit = True
            await task
            sock.close()


async def test_an_inquiry_goes_out_and_comes_back_through_a_real_kannel(
    pg: AsyncEngine, redis: aioredis.Redis, served: tuple[Settings, KannelLab]
) -> None:
    settings, lab = served
    await make_inquiry(pg, yaml_text=THREE_QUESTIONS)
    phones = await make_citizens(pg, 2)
    async with AsyncSession(pg, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(
            session, inquiry="three", audience=Audience(), actor="t", gateway="kannel"
        )
    assert campaign.id is not None
    await plan(pg, campaign.id)
    await move(pg, redis, campaign.id, "running", actor="test")
    gateway = KannelGateway(settings)
    try:
        result = await Sender(pg, redis, gateway, settings).run_lane(campaign.id)
    finally:
        await gateway.aclose()
    assert result.sent == 2

    invitations = await lab.wait_received(2, timeout_s=60)
    first = next(m for m in invitations if m.to == phones[0])
    assert "السؤال الأول" in first.text and first.coding in ("ucs-2", "udh")

    async def delivered() -> bool:
        return (await counts(pg, campaign.id or 0)).get("delivered") == 2

    await eventually(delivered, "the DLRs")

    await lab.inject(phones[0], "٤")

    async def answered() -> bool:
        async with pg.connect() as conn:
            return (await conn.execute(select(A.c.value))).scalars().all() == ["4"]

    await eventually(answered, "the answer")
    second = await lab.wait_received(
        1, where=lambda m: m.to == phones[0] and "السؤال الثاني" in m.text, timeout_s=60
    )
    assert second
    await lab.inject(phones[0], "نعم")

    async def both() -> bool:
        async with pg.connect() as conn:
            return (await conn.execute(select(A.c.value).order_by(A.c.id))).scalars().all() == ["4", "yes"]

    await eventually(both, "the second answer")
    third = await lab.wait_received(
        1, where=lambda m: m.to == phones[0] and "السؤال الثالث" in m.text, timeout_s=60
    )
    assert third
