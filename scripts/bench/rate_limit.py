"""The shared send rate: W worker processes, one token bucket in Redis, a real campaign.

    python scripts/bench/rate_limit.py --rate 50 --workers 2 --seconds 30

Hand-over times come from the loopback stream's entry ids (Redis' millisecond clock).
Prints one JSON object: target_per_s, measured_per_s (over the whole steady window),
max_in_any_second (sliding one-second windows), burst.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from contextlib import AsyncExitStack
from typing import Any

import _common
from _campaign import new_campaign, seed_citizens, start_workers, stop_workers, worker_env
from arq.connections import RedisSettings, create_pool

from callcenter.campaigns.ratelimit import default_burst


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(_common.scratch_database(args.database_url, keep=args.keep))
        engine = await stack.enter_async_context(_common.engine_for(url))
        redis = await create_pool(RedisSettings.from_dsn(args.redis_url))
        await redis.flushdb()
        citizens = int(args.rate * (args.seconds + 10) * 1.2) + 10
        await seed_citizens(engine, citizens)
        campaign_id = await new_campaign(engine, rate=args.rate, gateway="loopback")
        workers = start_workers(args.workers, worker_env(url, args.redis_url))
        try:
            await asyncio.sleep(1.5)
            await redis.enqueue_job("plan_campaign", campaign_id, "bench", _job_id=f"plan:{campaign_id}")
            deadline = time.monotonic() + 120  # bounded: a worker that never sends ends the run
            while not await redis.xlen("loopback:outbox"):
                if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                    raise SystemExit("rate_limit: the workers sent nothing (see their stderr)")
                await asyncio.sleep(0.01)
            await asyncio.sleep(args.seconds + 0.5)
        finally:
            stop_workers(workers)
        entries = await redis.xrange("loopback:outbox")
        await redis.aclose()
    stamps = sorted(int(entry_id.split(b"-")[0]) for entry_id, _ in entries)
    first = stamps[0]
    window = [t for t in stamps if first <= t < first + int(args.seconds * 1000)]
    # the densest one-second window, sliding over every hand-over
    densest, j = 0, 0
    for i, t in enumerate(window):
        while window[j] <= t - 1000:
            j += 1
        densest = max(densest, i - j + 1)
    measured = len(window) / args.seconds
    burst = default_burst(args.rate)
    return {
        "target_per_s": args.rate,
        "measured_per_s": round(measured, 2),
        "error_pct": round(100 * (measured - args.rate) / args.rate, 2),
        "max_in_any_second": densest,
        "burst": burst,
        "within_one_burst": densest <= math.ceil(args.rate) + burst,
        "workers": args.workers,
        "seconds": args.seconds,
        "messages": len(window),
        "clock": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


if __name__ == "__main__":
    arguments = _common.parse_args(__doc__ or "", options)
    _common.emit(asyncio.run(main(arguments)))
