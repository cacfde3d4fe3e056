"""Staff web pages: logged-in sessions browsing the campaign, inquiry and audit pages of one
``callcenter serve`` process.

    python scripts/bench/web_pages.py --sessions 100

The database holds ``--campaigns`` campaigns (default 1,000) and ``--audit-rows`` audit rows
(default 100,000), analysed after the bulk load as autovacuum would have them on a database in
service. Each session is a real server-side session (an admin's, second factor done) sending
its cookie. Two runs:

* back to back: every session requests its next page as soon as the last one arrived, for
  ``--pages`` pages in all -> ``pages_per_s`` (the most one ``serve`` gives);
* paced: the sessions together send ``--rate`` pages per second (as people click) for
  ``--seconds`` -> ``p50_ms`` and ``p99_ms``.

Prints one JSON object. Every answer must be 200 with the page's heading (``errors`` counts
the others).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import _common
import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.accounts.passwords import hash_password
from callcenter.accounts.sessions import COOKIE, open_session
from callcenter.inquiries import create_inquiry
from callcenter.inquiry.schema import parse_inquiry_yaml
from callcenter.testing.kannel import _pdeathsig

INQUIRY = """
slug: bench-web
title: {ar: استطلاع القياس, en: Benchmark inquiry}
questions:
  - {key: q1, kind: rating, text: {ar: السؤال الأول, en: First}}
  - {key: q2, kind: yes_no, text: {ar: السؤال الثاني, en: Second}}
"""


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--audit-rows", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=5000, help="pages in the back-to-back run")
    parser.add_argument("--rate", type=float, default=100.0, help="pages per second in the paced run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the paced run")


async def prepare(engine: Any, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        inquiry = await create_inquiry(session, parse_inquiry_yaml(INQUIRY), actor="bench")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO campaign (inquiry_id, channel, gateway, audience, status, max_attempts, "
                "planned, created_at) SELECT :i, 'sms', 'loopback', '{}', "
                "(ARRAY['draft','running','paused','done','cancelled'])[1 + g % 5], 4, 1000, "
                "now() - g * interval '1 minute' FROM generate_series(1, :n) g"
            ),
            {"i": inquiry.id, "n": args.campaigns},
        )
        await conn.execute(
            text(
                "INSERT INTO auditlog (actor, actor_id, action, target, details, address, created_at) "
                "SELECT 'operator' || (g % 50) || '@bench.1415.ly', NULL, "
                "(ARRAY['login','campaign.create','campaign.paused','inquiry.create','login.failed'])"
                "[1 + g % 5], "
                "'campaign:' || (g % 1000), '{}', '127.0.0.1', now() - g * interval '1 second' "
                "FROM generate_series(1, :n) g"
            ),
            {"n": args.audit_rows},
        )
        user_id = (
            await conn.execute(
                text(
                    "INSERT INTO staff_user (email, name, role, password_hash, language, totp_secret, "
                    "created_at) "
                    "VALUES ('bench-admin@1415.ly', 'Bench', 'admin', :h, 'ar', 'JBSWY3DPEHPK3PXP', now()) "
                    "RETURNING id"
                ),
                {"h": hash_password("bench password 1415")},
            )
        ).scalar_one()
        ids = [r[0] for r in await conn.execute(text("SELECT id FROM campaign ORDER BY id DESC LIMIT 50"))]
        # statistics, as autovacuum keeps them on a database in service (after a bulk load the
        # planner would guess that "login" matches a handful of the 100,000 audit rows)
        await conn.execute(text("ANALYZE campaign"))
        await conn.execute(text("ANALYZE auditlog"))
    tokens = []
    async with AsyncSession(engine) as session, session.begin():
        for _ in range(args.sessions):
            opened = await open_session(
                session,
                user_id=user_id,
                stage="full",
                address="127.0.0.1",
                user_agent="bench",
                absolute=timedelta(hours=4),
                now=datetime.now(UTC),
            )
            tokens.append(opened.token)
    paths = ["/campaigns", "/inquiries", "/admin/audit", "/inquiries/bench-web"]
    paths += [f"/campaigns/{i}" for i in ids[:10]]
    paths += ["/campaigns?page=2", "/admin/audit?action=login"]
    return tokens, paths


async def run_back_to_back(
    base: str, tokens: list[str], paths: list[str], pages: int
) -> tuple[float, int, list[float]]:
    remaining = pages
    errors = 0
    latencies: list[float] = []

    async def session(token: str) -> None:
        nonlocal remaining, errors
        rng = random.Random(token)
        async with aiohttp.ClientSession(cookies={COOKIE: token}) as http:
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                async with http.get(base + rng.choice(paths), allow_redirects=False) as r:
                    body = await r.read()
                    errors += r.status != 200 or b'class="title"' not in body
                latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(session(t) for t in tokens))
    return time.perf_counter() - started, errors, latencies


async def run_paced(
    base: str, tokens: list[str], paths: list[str], rate: float, seconds: float
) -> tuple[int, list[float]]:
    errors = 0
    latencies: list[float] = []
    total = int(rate * seconds)
    interval = len(tokens) / rate  # each session clicks once per interval, staggered

    async def session(n: int, token: str) -> None:
        nonlocal errors
        rng = random.Random(n)
        async with aiohttp.ClientSession(cookies={COOKIE: token}) as http:
            start = time.perf_counter() + n * interval / len(tokens)
            for k in range(n, total, len(tokens)):
                delay = start + (k // len(tokens)) * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = time.perf_counter()
                async with http.get(base + rng.choice(paths), allow_redirects=False) as r:
                    body = await r.read()
                    errors += r.status != 200 or b'class="title"' not in body
                latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(session(n, t) for n, t in enumerate(tokens)))
    return errors, latencies


def pct(latencies: list[float], p: float) -> float:
    ordered = sorted(latencies)
    return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2) if ordered else 0.0


async def main(args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(_common.scratch_database(args.database_url, keep=args.keep))
        engine = await stack.enter_async_context(_common.engine_for(url))
        tokens, paths = await prepare(engine, args)
        env = {
            **os.environ,
            "CALLCENTER_ENV": "test",
            "CALLCENTER_DATABASE_URL": url,
            "CALLCENTER_REDIS_URL": args.redis_url,
            "CALLCENTER_LOG_LEVEL": "WARNING",
            "CALLCENTER_COOKIE_SECURE": "false",
            "PYTHONPATH": str(_common.ROOT),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "serve", "--port", str(port)],
            env=env,
            cwd=_common.ROOT,
            preexec_fn=_pdeathsig(),  # dies with the benchmark, even when it is killed
        )
        try:
            async with aiohttp.ClientSession() as http:
                await _common.wait_healthy(http, base, tries=300)
            await run_back_to_back(base, tokens[:4], paths, min(200, args.pages))  # warm up
            seconds, errors_fast, fast = await run_back_to_back(base, tokens, paths, args.pages)
            errors_paced, paced = await run_paced(base, tokens, paths, args.rate, args.seconds)
        finally:
            server.terminate()
            server.wait(20)
    return {
        "sessions": args.sessions,
        "campaigns": args.campaigns,
        "audit_rows": args.audit_rows,
        "pages": len(fast) + len(paced),
        "pages_per_s": round(len(fast) / seconds, 1),
        "back_to_back_p99_ms": pct(fast, 0.99),
        "paced_rate": args.rate,
        "p50_ms": pct(paced, 0.50),
        "p99_ms": pct(paced, 0.99),
        "errors": errors_fast + errors_paced,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    arguments = _common.parse_args(__doc__ or "", options)
    _common.emit(asyncio.run(main(arguments)))
