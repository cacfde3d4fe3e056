"""Soak: signed SMS replies into one ``callcenter serve`` at a steady share of its capacity.

    python scripts/bench/soak.py --minutes 10
    python scripts/bench/soak.py --minutes 10 --burst 3 --burst-s 20   # then an overload burst

First the capacity is measured (``--capacity-s`` seconds of replies back to back, 64 at a
time, as ``reply_ingest.py`` does), then replies arrive at ``--load`` (0.7) times that rate
for ``--minutes``, open loop: a reply is sent when its time comes whether or not the server
kept up, and each citizen's next answer goes only after the previous one was answered (as a
phone does). With ``--burst`` the soak ends with ``--burst-s`` seconds at that multiple of the
capacity: ``serve`` then spools what it cannot take at once (empty TwiML, stored by the
drainer in order, its replies sent by REST) instead of letting requests time out. Every
request carries a real X-Twilio-Signature and waits at most 15 s, as Twilio does.

Printed (one JSON object): ``requests``, ``errors`` (anything but a 200 in time),
``p99_ms_first_minute`` and ``p99_ms_last_minute`` of the soak, ``rss_growth_pct`` (serve's
resident memory at the end against after the first minute), ``capacity_per_s``, ``rate_per_s``,
``spooled`` (answered with empty TwiML: spooled, not processed inline), the burst's figures,
and from the database once the spool is drained: ``messages_stored``, ``answers_recorded``,
``lost`` (replies taken with no answer recorded) and ``duplicated`` (answers beyond the
messages stored).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import _common
import aiohttp
from aiohttp import web
from reply_ingest import ANSWERS, TOKEN, free_port, prepare
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from callcenter import models

PATH = "/sms/twilio/inbound"
FORM = "application/x-www-form-urlencoded"
TWILIO_WAIT_S = 15.0


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument("--load", type=float, default=0.7, help="share of the measured capacity")
    parser.add_argument("--capacity-s", type=float, default=20.0, help="length of the capacity run")
    parser.add_argument("--rate", type=float, default=0.0, help="replies/s (0: --load x capacity)")
    parser.add_argument("--burst", type=float, default=0.0, help="then a burst at this x capacity")
    parser.add_argument("--burst-s", type=float, default=20.0)


class Replies:
    """Citizens' answers in conversation order: a citizen's next reply is ready only once the
    previous one was answered. Signed when sent (the signature covers the whole form)."""

    def __init__(self, phones: list[str], base: str) -> None:
        self.phones = iter(phones)
        self.ready: deque[tuple[str, int]] = deque()
        self.validator = RequestValidator(TOKEN)
        self.url = base + PATH
        self.sids = itertools.count()
        self.given = 0

    def next(self) -> tuple[str, int, bytes, str]:
        phone, k = self.ready.popleft() if self.ready else (next(self.phones), 0)
        params = {
            "MessageSid": f"SM{next(self.sids):032d}",
            "AccountSid": "AC" + "0" * 32,
            "From": phone,
            "To": "1415",
            "Body": ANSWERS[k],
            "NumMedia": "0",
        }
        self.given += 1
        return phone, k, urlencode(params).encode(), self.validator.compute_signature(self.url, params)

    def answered(self, phone: str, k: int) -> None:
        if k + 1 < len(ANSWERS):
            self.ready.append((phone, k + 1))


class Load:
    """Sends replies and keeps what happened to each: (start, seconds, ok, spooled)."""

    def __init__(self, http: aiohttp.ClientSession, replies: Replies) -> None:
        self.http = http
        self.replies = replies
        self.log: list[tuple[float, float, bool, bool]] = []

    async def one(self) -> None:
        phone, k, body, signature = self.replies.next()
        started = time.perf_counter()
        ok = spooled = False
        try:
            async with asyncio.timeout(TWILIO_WAIT_S):
                headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
                async with self.http.post(self.replies.url, data=body, headers=headers) as r:
                    text = await r.text()
                    ok = r.status == 200
                    spooled = ok and "<Message" not in text
        except (TimeoutError, aiohttp.ClientError):
            pass
        self.log.append((started, time.perf_counter() - started, ok, spooled))
        if ok:
            self.replies.answered(phone, k)

    async def closed_loop(self, seconds: float, concurrency: int = 64) -> float:
        """Back to back for ``seconds``: replies per second."""
        until = time.perf_counter() + seconds
        before = len(self.log)

        async def client() -> None:
            while time.perf_counter() < until:
                await self.one()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return (len(self.log) - before) / (time.perf_counter() - started)

    async def open_loop(self, rate: float, seconds: float, on_minute: Any = None) -> list[float]:
        """``rate`` replies/s for ``seconds`` whatever the answers' pace; the start times."""
        started = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        minute = 1
        while (due := started + n / rate) < started + seconds:
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            task = asyncio.create_task(self.one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            if on_minute is not None and time.perf_counter() - started >= 60 * minute:
                on_minute(minute)
                minute += 1
        await asyncio.gather(*tasks)
        return [started, time.perf_counter()]


async def fake_twilio_api(stack: AsyncExitStack) -> tuple[str, list[int]]:
    """Twilio's REST API on 127.0.0.1 for the replies of spooled messages (which go out by
    REST, not TwiML): it accepts every message and counts them."""
    sent = [0]

    async def create(request: web.Request) -> web.Response:
        form = await request.post()
        sent[0] += 1
        now = "Sun, 06 Dec 2026 10:00:00 +0000"
        return web.json_response(
            {"sid": "SM" + uuid.uuid4().hex, "account_sid": request.match_info["sid"], "to": form.get("To"),
             "from": form.get("From"), "body": form.get("Body"), "status": "queued", "num_segments": "1",
             "direction": "outbound-api", "api_version": "2010-04-01", "date_created": now,
             "date_updated": now, "date_sent": None, "price": None, "error_code": None,
             "error_message": None},
            status=201,
        )  # fmt: skip

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}", sent


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def p99_ms(log: list[tuple[float, float, bool, bool]], since: float, until: float) -> float | None:
    times = sorted(s for t, s, _, _ in log if since <= t < until)
    return round(1000 * times[min(len(times) - 1, int(0.99 * len(times)))], 2) if times else None


async def stored(engine: Any) -> tuple[int, int]:
    async with engine.connect() as conn:
        messages = (
            await conn.execute(
                select(func.count())
                .select_from(models.Message.__table__)
                .where(models.Message.__table__.c.direction == "in")
            )
        ).scalar_one()
        answers = (await conn.execute(select(func.count()).select_from(models.Answer.__table__))).scalar_one()
    return int(messages), int(answers)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # enough citizens for every phase at up to 2,500 replies/s, three replies each
    seconds = args.capacity_s + 60 * args.minutes + args.burst_s * (args.burst > 0)
    citizens = int(2500 * seconds / len(ANSWERS)) + 1000
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(_common.scratch_database(args.database_url, keep=args.keep))
        engine = await stack.enter_async_context(_common.engine_for(url))
        phones = await prepare(engine, citizens)
        spool = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-"))) / "spool"
        api, rest_sent = await fake_twilio_api(stack)
        env = {
            **os.environ,
            "CALLCENTER_ENV": "test",
            "CALLCENTER_DATABASE_URL": url,
            "CALLCENTER_REDIS_URL": args.redis_url,
            "CALLCENTER_SMS_GATEWAY": "twilio",
            "CALLCENTER_TWILIO_AUTH_TOKEN": TOKEN,
            "CALLCENTER_TWILIO_API_BASE": api,  # the replies of spooled messages, by REST
            "CALLCENTER_SMS_SPOOL_DIR": str(spool),
            "CALLCENTER_PUBLIC_BASE_URL": base,
            "CALLCENTER_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(_common.ROOT),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "serve", "--port", str(port)], env=env, cwd=_common.ROOT
        )
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                await _common.wait_healthy(http, base, tries=300)
                replies = Replies(phones, base)
                load = Load(http, replies)
                capacity = await load.closed_loop(args.capacity_s)
                rate = args.rate or args.load * capacity
                _common.note(f"capacity {capacity:.0f} replies/s; soaking at {rate:.0f}/s")
                soak_from = len(load.log)
                rss: dict[str, int] = {}

                def after(minute: int) -> None:
                    if minute == 1:
                        rss["first_minute"] = rss_kib(server.pid)
                    _common.note(f"minute {minute}: {len(load.log) - soak_from} replies answered")

                begun, ended = await load.open_loop(rate, 60 * args.minutes, after)
                rss.setdefault("first_minute", rss_kib(server.pid))  # a soak shorter than a minute
                rss["end"] = rss_kib(server.pid)
                soak = load.log[soak_from:]
                burst: dict[str, Any] = {}
                if args.burst > 0:
                    burst_from = len(load.log)
                    await load.open_loop(args.burst * capacity, args.burst_s)
                    out = load.log[burst_from:]
                    times = sorted(s for _, s, _, _ in out)
                    burst = {
                        "burst_rate_per_s": round(args.burst * capacity, 1),
                        "burst_requests": len(out),
                        "burst_errors": sum(not ok for _, _, ok, _ in out),
                        "burst_spooled": sum(sp for _, _, _, sp in out),
                        "burst_p99_ms": round(1000 * times[int(0.99 * (len(times) - 1))], 2)
                        if times
                        else None,
                    }
                # the spool drained: every reply the server took is stored
                took = sum(ok for _, _, ok, _ in load.log)
                deadline = time.monotonic() + 300
                while (counts := await stored(engine))[0] < took and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
        finally:
            server.terminate()
            server.wait(30)
        messages, answers = await stored(engine)
    first = p99_ms(soak, begun, begun + 60)
    last = p99_ms(soak, max(begun, ended - 60), ended)
    return {
        "requests": len(soak),
        "errors": sum(not ok for _, _, ok, _ in soak),
        "p99_ms_first_minute": first,
        "p99_ms_last_minute": last,
        "rss_growth_pct": round(100 * (rss["end"] - rss["first_minute"]) / rss["first_minute"], 1),
        "rss_mb_end": round(rss["end"] / 1024, 1),
        "capacity_per_s": round(capacity, 1),
        "rate_per_s": round(rate, 1),
        "minutes": args.minutes,
        "spooled": sum(sp for _, _, _, sp in soak),
        **burst,
        "replies_taken": took,
        "replies_sent_by_rest": rest_sent[0],
        "messages_stored": messages,
        "answers_recorded": answers,
        # each reply answers its citizen's current question: one answer per reply taken
        "lost": max(0, took - answers),
        "duplicated": max(0, answers - messages),
        "drained_in_time": counts[0] >= took,
    }


if __name__ == "__main__":
    arguments = _common.parse_args(__doc__ or "", options)
    _common.emit(asyncio.run(main(arguments)))
