"""SMS fan-out: one inquiry pushed to N citizens through real workers on PostgreSQL + Redis.

    python scripts/bench/sms_fanout.py --citizens 100000                  # loopback gateway
    python scripts/bench/sms_fanout.py --citizens 20000 --gateway kannel  # a real Kannel

Prints one JSON object: citizens, handed_to_gateway, seconds, messages_per_s (and, for Kannel,
kannel_raw_per_s: plain concurrent sendsms requests of the same texts to the same Kannel).
``seconds`` runs from "start the campaign" (planning included) to the last delivery recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import _common
from _campaign import (
    new_campaign,
    seed_citizens,
    start_workers,
    stop_workers,
    wait_sent,
    worker_env,
)
from arq.connections import RedisSettings, create_pool

from callcenter.settings import Settings
from callcenter.sms.gateways.base import OutboundSms
from callcenter.sms.gateways.kannel import KannelGateway


@asynccontextmanager
async def dlr_sink() -> AsyncIterator[str]:
    """Where Kannel's delivery reports go during the benchmark: a bare 204 responder, so that
    Kannel does its full work (the engine's DLR route is measured by reply_ingest)."""
    from aiohttp import web

    async def ok(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--citizens", type=int, default=100_000)
    parser.add_argument("--gateway", choices=["loopback", "kannel"], default="loopback")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0 = no limit")
    parser.add_argument("--timeout", type=float, default=600.0)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(_common.scratch_database(args.database_url, keep=args.keep))
        engine = await stack.enter_async_context(_common.engine_for(url))
        redis = await create_pool(RedisSettings.from_dsn(args.redis_url))
        await redis.flushdb()
        extra: dict[str, str] = {"CALLCENTER_SMS_GATEWAY": args.gateway}
        result: dict[str, Any] = {}
        lab = None
        if args.gateway == "kannel":
            from callcenter.testing.kannel import KannelLab, raw_sendsms_rate

            lab = await stack.enter_async_context(KannelLab())
            sink = await stack.enter_async_context(dlr_sink())
            extra |= {
                "CALLCENTER_PUBLIC_BASE_URL": sink,
                "CALLCENTER_KANNEL_SENDSMS_URL": lab.sendsms_url,
                "CALLCENTER_KANNEL_USERNAME": lab.username,
                "CALLCENTER_KANNEL_PASSWORD": lab.password,
            }
        await seed_citizens(engine, args.citizens)
        campaign_id = await new_campaign(engine, rate=args.rate or None, gateway=args.gateway)
        env = worker_env(url, args.redis_url, **extra)
        if lab is not None:  # both measured runs meet a warm Kannel, not just the second one
            auth = f"username={lab.username}&password={lab.password}&from={lab.short_code}"
            warm = [f"to=%2B21893{i:07d}&text=warm-up&{auth}" for i in range(min(2000, args.citizens))]
            await raw_sendsms_rate(lab, [], concurrency=64, queries=warm)
            await asyncio.sleep(1.0)
        workers = start_workers(args.workers, env)
        try:
            await asyncio.sleep(1.5)  # let the workers boot before the clock starts
            started = time.perf_counter()
            await redis.enqueue_job("plan_campaign", campaign_id, "bench", _job_id=f"plan:{campaign_id}")
            progress, _ = await wait_sent(engine, campaign_id, args.citizens, args.timeout)
            seconds = time.perf_counter() - started
        finally:
            stop_workers(workers)
        sent = progress.get("sent", 0) + progress.get("delivered", 0)
        if lab is not None:  # what the fake SMSC actually received
            ours = lambda m: not m.to.startswith("+21893")  # noqa: E731  (not the warm-up)
            handed = len(await lab.wait_received(sent, where=ours, timeout_s=60)) if sent else 0
        else:
            handed = await redis.xlen("loopback:outbox")
        result |= {
            "citizens": args.citizens,
            "gateway": args.gateway,
            "workers": args.workers,
            "handed_to_gateway": int(handed),
            "recorded_sent": int(sent),
            "seconds": round(seconds, 3),
            "messages_per_s": round(sent / seconds, 1) if seconds else 0.0,
            "deliveries": progress,
        }
        if lab is not None:
            from sqlalchemy.ext.asyncio import AsyncSession

            from callcenter.inquiries import load_definition
            from callcenter.inquiry.texts import invitation

            async with AsyncSession(engine) as session:
                inquiry = await load_definition(session, "return-of-life-roads")
            # the same requests the engine made (text, coding, dlr-url), to other numbers
            gateway = KannelGateway(lab.settings(Settings(env="test", public_base_url=sink)))
            text = invitation(inquiry, inquiry.first, "ar")
            queries = [
                gateway.query(OutboundSms(f"+21892{i:07d}", text, f"d{i}")) for i in range(args.citizens)
            ]
            rate = await raw_sendsms_rate(lab, [], concurrency=64, queries=queries)
            result["kannel_raw_per_s"] = round(rate, 1)
            result["share_of_raw"] = round(result["messages_per_s"] / result["kannel_raw_per_s"], 3)
        await redis.aclose()
        return result


if __name__ == "__main__":
    arguments = _common.parse_args(__doc__ or "", options)
    from callcenter.cli_common import run_async  # the same event loop as the worker's

    _common.emit(run_async(main(arguments)))
