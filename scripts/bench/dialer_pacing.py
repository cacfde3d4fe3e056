"""Outbound dialer pacing on the Asterisk simulator, PostgreSQL (scratch) and Redis.

    python scripts/bench/dialer_pacing.py --citizens 10000 --channels 60 --cps 10              # 60 s
    python scripts/bench/dialer_pacing.py --citizens 10000 --channels 60 --cps 10 --seconds 0  # all

A voice campaign to ``--citizens`` citizens is dialled for ``--seconds`` (10,000 calls at 10/s
take 1,000 s: by default the rate is measured over the first 60 s; ``--seconds 0`` dials them
all). The simulated citizens answer (70 %: ring 0.5-2 s, then ``--talk-seconds`` on a stand-in
IVR), are busy (10 %), do not answer (15 %: ring until ``--originate-timeout``), congestion
(3 %) or fail (2 %).

Prints one JSON object, measured on the simulator's side (what Asterisk sees):
``max_in_progress`` (calls up at once: Originate to end of call), ``target_cps``,
``measured_cps`` (starts per second over the window), ``dialled_twice`` (citizens with a new
Originate while their call was up or after they answered: originates per citizen > 1 without
a retry outcome in between), ``calls``, ``seconds`` (the window), and more.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from contextlib import AsyncExitStack
from typing import Any

import _common
import redis.asyncio as aioredis
from _campaign import SAMPLE, seed_citizens
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.campaigns.service import Audience, create_campaign, move, plan
from callcenter.inquiries import create_inquiry
from callcenter.inquiry.schema import parse_inquiry_yaml
from callcenter.settings import Settings
from callcenter.sim import CitizenModel, Outcome
from callcenter.voice.dial_lab import StubOutbound, sim_rig

D, C = models.table(models.Delivery), models.table(models.Citizen)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--citizens", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=60, help="calls in progress at most")
    parser.add_argument("--cps", type=float, default=10.0, help="calls started per second at most")
    parser.add_argument(
        "--seconds",
        "--limit-seconds",
        dest="seconds",
        type=float,
        default=60.0,
        help="how long to dial (0: until every delivery is final)",
    )
    parser.add_argument("--talk-seconds", type=float, default=3.0, help="an answered call's length")
    parser.add_argument("--originate-timeout", type=float, default=6.0, help="ring time of unanswered calls")


def citizen_model(originate_timeout_s: float) -> CitizenModel:
    """Deterministic per number: the last digits pick the behaviour and the ring time."""

    def decide(number: str) -> Outcome:
        n = int(number[-7:]) * 2 + int(number[-8])  # the seeding's index
        share = n % 100
        if share < 70:
            return Outcome("answer", 500 + (n * 37) % 1500)
        if share < 80:
            return Outcome("busy", 800)
        if share < 95:
            return Outcome("noanswer")
        if share < 98:
            return Outcome("congestion", 300)
        return Outcome("failed")

    return CitizenModel(rule=decide)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(_common.scratch_database(args.database_url, keep=args.keep))
        engine = await stack.enter_async_context(_common.engine_for(url))
        redis = aioredis.Redis.from_url(args.redis_url)
        stack.push_async_callback(redis.aclose)
        await redis.flushdb()
        settings = Settings(
            env="test",
            database_url=url,
            redis_url=args.redis_url,
            quiet_start=None,
            quiet_end=None,
            voice_dial_template="PJSIP/{number}@trunk",  # the simulator decides busy etc. on trunks
            voice_channels=args.channels,
            voice_cps=args.cps,
            originate_timeout_s=args.originate_timeout,
        )
        await seed_citizens(engine, args.citizens)
        campaign_id = await new_voice_campaign(engine, redis)
        _common.note(f"planned {args.citizens} deliveries; dialling for {args.seconds or 'ever'} s")
        stub = StubOutbound(engine, talk_s=args.talk_seconds)
        citizens = citizen_model(args.originate_timeout)
        async with sim_rig(settings, engine, redis, citizens, stub=stub) as rig:
            started = time.monotonic()
            rig.start()
            last_note = started
            while True:
                await asyncio.sleep(0.5)
                now = time.monotonic()
                if args.seconds and now - started >= args.seconds:
                    break
                if not args.seconds and await open_rows(engine, campaign_id) == 0:
                    break
                if now - last_note >= 10:
                    last_note = now
                    _common.note(f"  {len(rig.probe.calls)} calls, {rig.probe.active} up")
            window = time.monotonic() - started
            await rig.stop()  # no new calls; the ringing ones end and are written
            elapsed = time.monotonic() - started
            probe, stats = rig.probe, rig.dialer.stats
            rate, counted, measured_s = probe.start_rate()
            outcomes = await outcome_counts(engine, campaign_id)
            mismatched = await attempts_mismatch(engine, campaign_id, probe.by_delivery())
    return {
        "citizens": args.citizens,
        "channels": args.channels,
        "max_in_progress": probe.max_active,
        "target_cps": args.cps,
        "measured_cps": round(rate, 3),
        "rate_error_pct": round(100 * (rate - args.cps) / args.cps, 2) if args.cps else None,
        "dialled_twice": len(probe.dialled_twice()),
        "calls": len(probe.calls),
        "seconds": round(window, 1),
        "measured_over_s": round(measured_s, 1),
        "note": (
            f"rate measured over the {counted} Originates of a {window:.0f} s run (first to last start); "
            "max_in_progress and dialled_twice counted by the simulator"
            + ("" if not args.seconds else f"; --seconds {args.seconds:g} stops early, 0 dials everyone")
        ),
        "dialer_max_in_progress": stats.max_in_progress,
        "attempts_mismatch": mismatched,
        "deliveries": outcomes,
        "elapsed_s": round(elapsed, 1),
    }


async def new_voice_campaign(engine: Any, redis: aioredis.Redis) -> int:
    data = parse_inquiry_yaml(SAMPLE.read_text(encoding="utf-8"))
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        await create_inquiry(session, data, actor="bench")
        campaign = await create_campaign(
            session, inquiry=data.slug, audience=Audience(), actor="bench", channel="voice"
        )
    assert campaign.id is not None
    await plan(engine, campaign.id)
    await move(engine, redis, campaign.id, "running", actor="bench")
    return campaign.id


async def open_rows(engine: Any, campaign_id: int) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).where(
            D.c.campaign_id == campaign_id, D.c.status.in_(("pending", "sending"))
        )
        return int((await conn.execute(query)).scalar_one())


async def outcome_counts(engine: Any, campaign_id: int) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(D.c.status, D.c.outcome, func.count())
            .where(D.c.campaign_id == campaign_id)
            .group_by(D.c.status, D.c.outcome)
        )
        return {f"{status}/{outcome or '-'}": int(n) for status, outcome, n in rows}


async def attempts_mismatch(engine: Any, campaign_id: int, tries: dict[int, list[Any]]) -> int:
    """Deliveries whose counted attempts differ from the Originates the simulator received."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(D.c.id, D.c.attempts).where(D.c.campaign_id == campaign_id, D.c.attempts > 0)
        )
        attempts = {int(i): int(n) for i, n in rows}
    ids = set(attempts) | set(tries)
    return sum(attempts.get(i, 0) != len(tries.get(i, [])) for i in ids)


if __name__ == "__main__":
    arguments = _common.parse_args(__doc__ or "", options)
    _common.emit(asyncio.run(main(arguments)))
