"""Reply ingest: Twilio-signed SMS replies over HTTP into one ``callcenter serve`` process.

    python scripts/bench/reply_ingest.py --replies 20000 --concurrency 64

Citizens answer a three-question inquiry, each conversation in order (the next reply only
after the previous answer), ``--concurrency`` conversations at a time. Every request carries a
real X-Twilio-Signature; the server validates it, stores the message, runs the engine and
answers with TwiML. Prints one JSON object: replies, answers_recorded (recounted from the
database), replies_per_s, p50_ms, p99_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import _common
import aiohttp
from _campaign import seed_citizens
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.request_validator import RequestValidator

from callcenter import models
from callcenter.inquiries import create_inquiry, set_status
from callcenter.inquiry.definition import InquiryStatus
from callcenter.inquiry.schema import parse_inquiry_yaml

TOKEN = "bench-auth-token"
INQUIRY = """
slug: ingest
title: {ar: قياس, en: Ingest}
questions:
  - {key: q1, kind: rating, text: {ar: السؤال الأول, en: First}}
  - {key: q2, kind: yes_no, text: {ar: السؤال الثاني, en: Second}}
  - {key: q3, kind: rating, min: 1, max: 3, text: {ar: السؤال الثالث, en: Third}}
"""
ANSWERS = ("٣", "نعم", "2")
FORM = "application/x-www-form-urlencoded"


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replies", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def prepare(engine: Any, citizens: int) -> list[str]:
    await seed_citizens(engine, citizens)
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        row = await create_inquiry(session, parse_inquiry_yaml(INQUIRY), actor="bench")
        await set_status(session, "ingest", InquiryStatus.RUNNING, actor="bench")
    async with engine.begin() as conn:
        campaign = (
            await conn.execute(
                text(
                    "INSERT INTO campaign (inquiry_id, channel, gateway, audience, status, max_attempts, "
                    "planned, created_at) VALUES (:i, 'sms', 'twilio', '{}', 'running', 4, 0, now()) "
                    "RETURNING id"
                ),
                {"i": row.id},
            )
        ).scalar_one()
        await conn.execute(
            text(
                "INSERT INTO delivery (campaign_id, citizen_id, status, attempts, sent_at) "
                "SELECT :c, id, 'sent', 1, now() FROM citizen"
            ),
            {"c": campaign},
        )
        phones = (
            (
                await conn.execute(
                    select(models.Citizen.__table__.c.phone).order_by(models.Citizen.__table__.c.id)
                )
            )
            .scalars()
            .all()
        )
    return list(phones)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    citizens = -(-args.replies // len(ANSWERS))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    path = "/sms/twilio/inbound"
    validator = RequestValidator(TOKEN)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(_common.scratch_database(args.database_url, keep=args.keep))
        engine = await stack.enter_async_context(_common.engine_for(url))
        phones = await prepare(engine, citizens)
        # every request prepared (and signed) before the clock starts
        plan: list[list[tuple[bytes, str]]] = []
        left = args.replies
        for n, phone in enumerate(phones):
            convo = []
            for k, body in enumerate(ANSWERS[: min(len(ANSWERS), left)]):
                params = {
                    "MessageSid": f"SM{n:010d}{k}",
                    "AccountSid": "AC" + "0" * 32,
                    "From": phone,
                    "To": "1415",
                    "Body": body,
                    "NumMedia": "0",
                }
                signature = validator.compute_signature(base + path, params)
                convo.append((urlencode(params).encode(), signature))
            left -= len(convo)
            plan.append(convo)
        env = {
            **os.environ,
            "CALLCENTER_ENV": "test",
            "CALLCENTER_DATABASE_URL": url,
            "CALLCENTER_REDIS_URL": args.redis_url,
            "CALLCENTER_SMS_GATEWAY": "twilio",
            "CALLCENTER_TWILIO_AUTH_TOKEN": TOKEN,
            "CALLCENTER_PUBLIC_BASE_URL": base,
            "CALLCENTER_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(_common.ROOT),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "serve", "--port", str(port)],
            env=env,
            cwd=_common.ROOT,
        )
        try:
            latencies: list[float] = []
            trace: list[tuple[float, float, int]] = []
            failures = 0
            connector = aiohttp.TCPConnector(limit=args.concurrency)
            async with aiohttp.ClientSession(connector=connector) as http:
                await _common.wait_healthy(http, base, tries=200)
                queue: asyncio.Queue[list[tuple[bytes, str]]] = asyncio.Queue()
                for convo in plan:
                    queue.put_nowait(convo)

                async def client() -> None:
                    nonlocal failures
                    while not queue.empty():
                        for k, (body, signature) in enumerate(queue.get_nowait()):
                            t0 = time.perf_counter()
                            headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
                            async with http.post(target, data=body, headers=headers) as r:
                                await r.read()
                                failures += r.status != 200
                            latencies.append(time.perf_counter() - t0)
                            trace.append((t0, latencies[-1], k))

                target = base + path
                started = time.perf_counter()
                await asyncio.gather(*(client() for _ in range(args.concurrency)))
                seconds = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(20)
        async with engine.connect() as conn:
            answers = (
                await conn.execute(select(func.count()).select_from(models.Answer.__table__))
            ).scalar_one()
            stored = (
                await conn.execute(select(func.count()).select_from(models.Message.__table__))
            ).scalar_one()
    latencies.sort()
    if os.environ.get("BENCH_TRACE"):
        import json as _json

        Path(os.environ["BENCH_TRACE"]).write_text(_json.dumps(trace))

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    return {
        "replies": len(latencies),
        "answers_recorded": int(answers),
        "messages_stored": int(stored),
        "failures": failures,
        "concurrency": args.concurrency,
        "seconds": round(seconds, 3),
        "replies_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    arguments = _common.parse_args(__doc__ or "", options)
    _common.emit(asyncio.run(main(arguments)))
