"""Benchmark: service requests at national scale, in a scratch PostgreSQL database.

    .venv/bin/python scripts/bench/requests_load.py --requests 200000 --municipalities 100

Seeds ``--municipalities`` municipalities, the sample catalogue, and ``--requests`` requests
set-based (``INSERT ... SELECT generate_series``; references from their ids, Damm check digits
computed here, written with one ``UPDATE ... FROM unnest`` per chunk), with one municipality
holding ``--busy-open`` open requests and about ``--open-share`` of the others open; a
``created`` event for each and a public note on every third; an Open311 client whose share
of the requests carry a location. Then measures, one request at a time:

* ``sla_recompute_s``: a holiday is added to the calendar and every open request's SLA clocks
  are recomputed (``requests.recompute.recompute_sla``, the hourly job's and the command
  line's whole pass); the seeded due dates are not working-time ones, so nearly every open
  row is rewritten: the worst case;
* ``sla_recompute_day_s``: another day off is added, the next working day after that one,
  and only the requests whose clocks span it are recomputed (``recompute_sla(..., day=)``,
  what the holiday page does); ``sla_recompute_day_read`` / ``_changed`` say how many were
  read and rewritten, and ``sla_recompute_day_missed`` what a whole pass at the same instant
  still changes afterwards (0: the narrowed pass missed nothing). The table is then vacuumed,
  as autovacuum would after so many updates, before the reads below;
* ``work_queue_p99_ms``: an officer's work queue in the busy municipality, pages 1-5
  (``requests.queue_read.work_queue``, what ``/requests`` calls);
* ``status_lookup_p99_ms``: a reference looked up as the IVR and SMS do
  (``requests.read.lookup_status``; half from the reporter's number, half from another);
* ``open311_get_p99_ms``: ``GET /open311/v2/requests.json`` through the ASGI application
  (httpx, no network), a random jurisdiction each time, the default page of 100.

Targets (issue 10): work queue p99 < 100 ms, SLA recompute < 10 s, Open311 GET p99 < 50 ms.
One JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import _common
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.open311.clients import issue
from callcenter.requests.queue_read import QueueFilter, work_queue
from callcenter.requests.read import lookup_status
from callcenter.requests.recompute import recompute_sla
from callcenter.requests.reference import reference_for
from callcenter.requests.store import correct_holiday, load, load_calendar
from callcenter.settings import Settings
from callcenter.web.app import create_app

SAMPLE = _common.ROOT / "callcenter" / "samples" / "requests.yaml"
NAMED = ("benghazi", "tripoli-centre", "misrata")  # the sample catalogue's overrides name them
OPEN = ("sent", "acknowledged", "in_progress", "action_scheduled", "reopened", "new")
DONE = ("resolved", "closed", "duplicate")
CHUNK = 50_000
TARGETS = {"work_queue_p99_ms": 100.0, "sla_recompute_s": 10.0, "open311_get_p99_ms": 50.0}


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--municipalities", type=int, default=100)
    parser.add_argument(
        "--busy-open", type=int, default=5_000, help="open requests of the busiest municipality"
    )
    parser.add_argument(
        "--open-share", type=float, default=0.3, help="share of the other requests still open"
    )
    parser.add_argument("--samples", type=int, default=300, help="timed calls of each read")
    parser.add_argument("--seed", type=int, default=1415)


def _sql_array(values: list[str] | tuple[str, ...]) -> str:
    return "ARRAY[" + ",".join(f"'{v}'" for v in values) + "]"


async def seed(engine: AsyncEngine, args: argparse.Namespace) -> dict[str, Any]:
    """Municipalities, the catalogue, the requests and their events, an Open311 client."""
    codes = [*NAMED, *(f"m-{n:03d}" for n in range(len(NAMED) + 1, args.municipalities + 1))]
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO municipality (code, name_ar, name_en, district_code, district_ar, district_en) "
                 "SELECT c, 'بلدية ' || c, c, '', '', '' FROM unnest(CAST(:codes AS varchar[])) AS c"),
            {"codes": codes},
        )  # fmt: skip
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="bench")
    async with AsyncSession(engine) as session, session.begin():
        _, key = await issue(session, name="bench client", jurisdictions=[], actor="bench")
    async with engine.begin() as conn:
        ids = dict((await conn.execute(text("SELECT code, id FROM municipality"))).all())
        categories = (
            await conn.execute(text("SELECT id, default_body_id FROM service_category ORDER BY id"))
        ).all()
        busy = int(ids["benghazi"])
        others = [int(ids[c]) for c in codes if c != "benghazi"]
        open_every = max(1, round(1 / args.open_share)) if args.open_share > 0 else 0
        started = time.perf_counter()
        # rows 1..busy_open: the busy municipality's open requests; then the rest spread over
        # the others, every ``open_every``-th still open
        await conn.execute(
            text(f"""
            INSERT INTO service_request (
                category_id, municipality_id, body_id, phone, channel, language, description, details,
                status, version, referrals, flagged, first_response_due_at, resolution_due_at, sla_state,
                paused_seconds, first_response_at, resolved_at, closed_at, created_at, updated_at)
            SELECT cat[1 + i % :ncat], mun, body[1 + i % :ncat],
                   '+2189' || lpad((10000000 + i)::text, 8, '0'),
                   (ARRAY['desk','ivr','sms','open311'])[1 + i % 4], 'ar', 'وصف الطلب رقم ' || i, '{{}}',
                   st, 1, 0, false, made + interval '1 day', made + interval '5 days', 'ok', 0,
                   CASE WHEN st <> 'sent' THEN made + interval '2 hours' END,
                   CASE WHEN st IN ('resolved', 'closed') THEN made + interval '3 days' END,
                   CASE WHEN st IN ('closed', 'duplicate') THEN made + interval '4 days' END,
                   made, made
            FROM (
                SELECT i,
                       CASE WHEN i <= :busy_open THEN :busy
                            ELSE (CAST(:others AS bigint[]))[1 + i % :nothers] END AS mun,
                       CASE WHEN i <= :busy_open THEN ({_sql_array(OPEN)})[1 + i % {len(OPEN)}]
                            WHEN :open_every > 0 AND i % :open_every = 0
                                 THEN ({_sql_array(OPEN)})[1 + (i / :open_every) % {len(OPEN)}]
                            ELSE ({_sql_array(DONE)})[1 + i % {len(DONE)}] END AS st,
                       now() - ((i * 7919) % (180 * 24 * 60)) * interval '1 minute' AS made,
                       CAST(:cats AS bigint[]) AS cat, CAST(:bodies AS bigint[]) AS body
                FROM generate_series(1, :n) AS i
            ) AS g
            """),
            {
                "n": args.requests, "busy_open": args.busy_open, "busy": busy, "others": others,
                "nothers": len(others), "open_every": open_every, "ncat": len(categories),
                "cats": [int(c.id) for c in categories],
                "bodies": [int(c.default_body_id) for c in categories],
            },
        )  # fmt: skip
        first, last = (await conn.execute(text("SELECT min(id), max(id) FROM service_request"))).one()
        for low in range(int(first), int(last) + 1, CHUNK):
            chunk = list(range(low, min(low + CHUNK, int(last) + 1)))
            await conn.execute(
                text("UPDATE service_request AS r SET reference = v.ref FROM unnest(CAST(:ids AS bigint[]), "
                     "CAST(:refs AS varchar[])) AS v(id, ref) WHERE r.id = v.id"),
                {"ids": chunk, "refs": [reference_for(i).display for i in chunk]},
            )  # fmt: skip
        await conn.execute(
            text("""
            INSERT INTO request_event
                (request_id, at, kind, actor, role, from_status, to_status, note, public, data)
            SELECT id, created_at, 'created', 'bench', 'system', NULL, 'sent', '', false, '{}'::json
            FROM service_request
            UNION ALL
            SELECT id, created_at + interval '2 hours', 'status', 'officer@bench', 'officer', 'sent', status,
                   'ملاحظة للمواطن ' || id, true, '{}'::json
            FROM service_request WHERE id % 3 = 0 AND status <> 'sent'
            """)
        )  # fmt: skip
        await conn.execute(
            text("""
            INSERT INTO open311_request (request_id, client_id, lat, long, address, address_id, media_url)
            SELECT r.id, c.id, 32.0 + (r.id % 1000) / 1000.0, 20.0 + (r.id % 997) / 1000.0, '', '', ''
            FROM service_request r CROSS JOIN open311_client c WHERE r.channel = 'open311'
            """)
        )  # fmt: skip
        seeded_s = time.perf_counter() - started
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
        opened = (
            await conn.execute(text("SELECT count(*) FILTER (WHERE status = ANY(:open)), "
                                    "count(*) FILTER (WHERE status = ANY(:open) AND municipality_id = :busy) "
                                    "FROM service_request"), {"open": list(OPEN), "busy": busy})
        ).one()  # fmt: skip
    return {
        "key": key,
        "codes": codes,
        "busy": busy,
        "seed_s": seeded_s,
        "open": opened[0],
        "busy_open": opened[1],
    }


async def timed(samples: int, call: Callable[[int], Awaitable[None]]) -> list[float]:
    """Milliseconds of each of ``samples`` calls, one at a time (after two warm-up calls)."""
    for n in range(2):
        await call(n)
    out = []
    for n in range(samples):
        started = time.perf_counter()
        await call(n)
        out.append((time.perf_counter() - started) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    result: dict[str, Any] = {"requests": args.requests, "municipalities": args.municipalities}
    async with _common.scratch_database(args.database_url, keep=args.keep) as url:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(env="test", database_url=url, redis_url=args.redis_url, data_dir=Path(tmp))
            async with _common.engine_for(url) as engine:
                _common.note(f"seeding {args.requests} requests in {args.municipalities} municipalities ...")
                seeded = await seed(engine, args)
                _common.note(f"seeded in {seeded['seed_s']:.1f} s; {seeded['open']} open")
                result.update(open_requests=seeded["open"], busy_open=seeded["busy_open"],
                              seed_s=round(seeded["seed_s"], 2))  # fmt: skip

                # a calendar change: the ministry adds a day off next week, then every open
                # request's clocks are recomputed (all three passes at one instant, so that
                # the last can tell whether the narrowed one missed anything)
                now, share = datetime.now(UTC), settings.request_due_soon_share
                first_day = date.today() + timedelta(days=7)
                async with AsyncSession(engine) as session, session.begin():
                    await correct_holiday(session, first_day, "add", actor="bench")
                calendar = await load_calendar(engine, settings)
                started = time.perf_counter()
                done = await recompute_sla(engine, calendar, now=now, due_soon_share=share)
                result["sla_recompute_s"] = round(time.perf_counter() - started, 2)
                result["sla_recompute_changed"] = done.changed
                _common.note(f"recomputed {done.open} open requests in {result['sla_recompute_s']} s")

                # then one more day off, the next working day: only the clocks across it
                day = first_day + timedelta(days=1)
                while not calendar.is_working_day(day):
                    day += timedelta(days=1)
                async with AsyncSession(engine) as session, session.begin():
                    await correct_holiday(session, day, "add", actor="bench")
                calendar = await load_calendar(engine, settings)
                started = time.perf_counter()
                done = await recompute_sla(engine, calendar, now=now, due_soon_share=share, day=day)
                result["sla_recompute_day_s"] = round(time.perf_counter() - started, 2)
                result.update(sla_recompute_day_read=done.open, sla_recompute_day_changed=done.changed)
                check = await recompute_sla(engine, calendar, now=now, due_soon_share=share)
                result["sla_recompute_day_missed"] = check.changed
                _common.note(
                    f"recomputed the {done.open} requests spanning {day} in {done.seconds:.2f} s "
                    f"({done.changed} changed; a whole pass after it changed {check.changed})"
                )
                # the recompute rewrote every open row: vacuum as autovacuum would before the
                # reads, so they do not race it (and index-only scans find a fresh visibility map)
                async with engine.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.execute(text("VACUUM ANALYZE service_request"))

                reader = engine.execution_options(isolation_level="AUTOCOMMIT")
                busy = frozenset({seeded["busy"]})

                async def queue(n: int) -> None:
                    async with reader.connect() as conn:
                        page = await work_queue(conn, QueueFilter(municipalities=busy, page=1 + n % 5))
                    assert page.rows and page.total >= min(args.busy_open, args.requests)

                times = await timed(args.samples, queue)
                result.update(work_queue_p50_ms=pct(times, 0.5), work_queue_p99_ms=pct(times, 0.99))

                ids = [rng.randint(1, args.requests) for _ in range(args.samples + 2)]

                async def lookup(n: int) -> None:
                    ref, own = reference_for(ids[n]), n % 2 == 0
                    phone = f"+2189{10_000_000 + ids[n]:08d}" if own else "+218920000000"
                    async with reader.connect() as conn:
                        found = await lookup_status(conn, ref.display, phone)
                    assert found is not None and found.for_reporter == own

                times = await timed(args.samples, lookup)
                result.update(status_lookup_p50_ms=pct(times, 0.5), status_lookup_p99_ms=pct(times, 0.99))

            app = create_app(settings)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://1415.test") as http:
                    codes = seeded["codes"]

                    async def open311(n: int) -> None:
                        params = {"api_key": seeded["key"], "jurisdiction_id": rng.choice(codes)}
                        response = await http.get("/open311/v2/requests.json", params=params)
                        assert response.status_code == 200, response.text[:300]

                    times = await timed(args.samples, open311)
                    result.update(open311_get_p50_ms=pct(times, 0.5), open311_get_p99_ms=pct(times, 0.99))
    result["targets"] = TARGETS
    result["met"] = all(result[name] < limit for name, limit in TARGETS.items())
    _common.emit(result)


if __name__ == "__main__":
    asyncio.run(main(_common.parse_args(__doc__ or "", _options)))
