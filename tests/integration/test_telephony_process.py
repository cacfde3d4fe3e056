"""``callcenter agi``: the IVR and the dialer in one process, against the simulator's AMI."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.settings import Settings
from callcenter.sim import Caller, SimConfig, Simulator, engine_dialplan
from callcenter.voice.service import run_telephony
from tests.factories import THREE_QUESTIONS, make_inquiry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
@pytest.mark.parametrize("secret", ["s3cret", "wrong"])
async def test_the_ivr_serves_whether_or_not_the_dialer_may_log_in(
    engine: AsyncEngine, settings: Settings, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    agi_port = free_port()
    config = SimConfig(agi_port=agi_port, time_scale=0, dialplan=engine_dialplan())
    async with Simulator(config) as sim:
        settings = settings.model_copy(
            update={
                "agi_port": agi_port,
                "ami_port": sim.ami_port,
                "ami_username": "engine",
                "ami_secret": secret,
            }
        )
        stop = asyncio.Event()
        with caplog.at_level(logging.INFO):
            process = asyncio.create_task(run_telephony(settings, stop))
            for _ in range(100):
                await asyncio.sleep(0.02)
                try:
                    socket.create_connection(("127.0.0.1", agi_port), timeout=0.1).close()
                    break
                except OSError:
                    pass
            await sim.call(Caller.keys("1", "4", "1", "2"))
            await asyncio.sleep(0.2)
            stop.set()
            await asyncio.wait_for(process, 60)
    A = models.table(models.Answer)
    async with engine.begin() as conn:
        values = (await conn.execute(select(A.c.value).order_by(A.c.id))).scalars().all()
        await conn.execute(delete(models.table(models.Call)))
    assert values == ["4", "yes", "2"]
    refused = "AMI refused the login" in caplog.text
    assert refused == (secret == "wrong")
