"""Shared pieces of the campaign benchmarks: seed citizens, start a campaign, run workers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, note
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.campaigns.service import Audience, counts, create_campaign
from callcenter.inquiries import create_inquiry
from callcenter.inquiry.schema import parse_inquiry_yaml

SAMPLE = ROOT / "callcenter" / "samples" / "return-of-life.yaml"


async def seed_citizens(engine: AsyncEngine, n: int) -> None:
    """n citizens with distinct valid Libyan mobile numbers, 80 % Arabic, in one statement."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO citizen (phone, language, created_at) "
                "SELECT '+2189' || (1 + i % 2)::text || lpad((i / 2)::text, 7, '0'), "
                "CASE WHEN i % 5 = 0 THEN 'en' ELSE 'ar' END, now() "
                "FROM generate_series(0, :n - 1) AS i"
            ),
            {"n": n},
        )


async def new_campaign(engine: AsyncEngine, *, rate: float | None, gateway: str) -> int:
    data = parse_inquiry_yaml(SAMPLE.read_text(encoding="utf-8"))
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        await create_inquiry(session, data, actor="bench")
        campaign = await create_campaign(
            session,
            inquiry=data.slug,
            audience=Audience(),
            actor="bench",
            gateway=gateway,
            rate_per_s=rate,
        )
    assert campaign.id is not None
    return campaign.id


def worker_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CALLCENTER_ENV": "test",
        "CALLCENTER_DATABASE_URL": database_url,
        "CALLCENTER_REDIS_URL": redis_url,
        "CALLCENTER_QUIET_START": "",
        "CALLCENTER_QUIET_END": "",
        "CALLCENTER_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.update(extra)
    return env


def start_workers(n: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    """``n`` worker processes that die with this one (a benchmark killed by a timeout leaves
    no worker behind to send a later run's messages)."""
    from callcenter.testing.kannel import _pdeathsig

    cmd = [sys.executable, "-m", "callcenter.cli", "worker"]
    return [subprocess.Popen(cmd, env=env, cwd=ROOT, preexec_fn=_pdeathsig()) for _ in range(n)]


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


async def wait_sent(
    engine: AsyncEngine, campaign_id: int, want: int, timeout: float
) -> tuple[dict[str, int], float]:
    """Poll until ``want`` deliveries are sent (or nothing is left open); returns counts, time."""
    started = time.perf_counter()
    progress: dict[str, int] = {}
    last = -1
    while time.perf_counter() - started < timeout:
        progress = await counts(engine, campaign_id)
        done = progress.get("sent", 0) + progress.get("delivered", 0)
        if done >= want or (
            sum(progress.values()) and not progress.get("pending") and not progress.get("sending")
        ):
            break
        if done != last and done:
            note(f"  {done} sent")
            last = done
        await asyncio.sleep(0.05)
    return progress, time.perf_counter() - started


def path_of(*parts: str) -> Path:
    return ROOT.joinpath(*parts)


def as_int(d: dict[str, Any], key: str) -> int:
    return int(d.get(key, 0))
