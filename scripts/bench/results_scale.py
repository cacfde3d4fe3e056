"""Benchmark: the analysts' workspace on a national inquiry, in a scratch PostgreSQL database.

    .venv/bin/python scripts/bench/results_scale.py --citizens 500000 --questions 3

Generates citizens across ``--municipalities`` municipalities (in 22 districts, of very
different sizes), an SMS and a voice campaign of the inquiry (every citizen gets one, a
fifth by voice), and answers from about 70 % of them (on the channel they were reached on),
loaded with COPY; then population margins per municipality. Measures, each on its own:
``results_s`` (every question, weighted by municipality: the weights and the shares),
``crosstab_s`` (every question by municipality), ``rates_s`` (the AAPOR dispositions of every
case, per channel and municipality), ``export_parquet_s``, ``export_sav_s``,
``export_xlsx_s`` (the whole microdata, weighted), and ``peak_rss_mb`` (the process's peak
resident memory). One JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.analysis import exports, read
from callcenter.analysis.margin_store import load_file
from callcenter.analysis.read import Scope
from callcenter.inquiries import create_inquiry, set_status
from callcenter.inquiry.definition import InquiryStatus
from callcenter.inquiry.schema import parse_inquiry_yaml

OPTIONS = ("roads", "water", "power", "schools")


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--citizens", type=int, default=500_000)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--municipalities", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1415)


def _yaml(questions: int) -> str:
    lines = ["slug: national", "title: {ar: استطلاع وطني, en: A national inquiry}", "questions:"]
    for i in range(questions):
        if i % 2 == 0:
            lines.append(
                f"  - {{key: q{i + 1}, kind: yes_no, text: {{ar: السؤال {i + 1}, en: Question {i + 1}}}}}"
            )
        else:
            lines.append(
                f"  - key: q{i + 1}\n    kind: choice\n"
                f"    text: {{ar: الأولوية {i + 1}, en: Priority {i + 1}}}"
            )
            lines.append("    options:")
            lines += [f"      - {{value: {o}, ar: {o}, en: {o}}}" for o in OPTIONS]
    return "\n".join(lines) + "\n"


async def _populate(url: str, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    conn = await _common.connect(url)
    try:
        sizes = [rng.paretovariate(1.2) for _ in range(args.municipalities)]
        await conn.copy_records_to_table(
            "municipality",
            records=[
                (i + 1, f"m{i + 1:03d}", f"بلدية {i + 1}", f"Municipality {i + 1}", f"d{i % 22:02d}",
                 f"شعبية {i % 22}", f"District {i % 22}")
                for i in range(args.municipalities)
            ],
            columns=["id", "code", "name_ar", "name_en", "district_code", "district_ar", "district_en"],
        )  # fmt: skip
        now = datetime.now(UTC)
        places = rng.choices(range(1, args.municipalities + 1), weights=sizes, k=args.citizens)
        await conn.copy_records_to_table(
            "citizen",
            records=[
                (i + 1, f"+2189{i:08d}", places[i], "en" if i % 17 == 0 else "ar", now)
                for i in range(args.citizens)
            ],
            columns=["id", "phone", "municipality_id", "language", "created_at"],
        )
        await conn.execute("SELECT setval('municipality_id_seq', $1)", args.municipalities)
        await conn.execute("SELECT setval('citizen_id_seq', $1)", args.citizens)
    finally:
        await conn.close()


async def _fieldwork(url: str, args: argparse.Namespace, inquiry_id: int, questions: list[int]) -> int:
    rng = random.Random(args.seed + 1)
    conn = await _common.connect(url)
    try:
        sms, voice = [
            await conn.fetchval(
                "INSERT INTO campaign (inquiry_id, channel, gateway, audience, status, max_attempts, planned,"
                " created_at) VALUES ($1, $2, 'loopback', '{}', 'done', 4, 0, now()) RETURNING id",
                inquiry_id,
                channel,
            )
            for channel in ("sms", "voice")
        ]
        start = datetime.now(UTC) - timedelta(days=3)
        deliveries, sessions, answers = [], [], []
        answered = 0
        for citizen in range(1, args.citizens + 1):
            channel = "voice" if citizen % 5 == 0 else "sms"
            replies = rng.random() < 0.7
            outcome = (
                None if channel == "sms" else ("answered" if replies else rng.choice(("busy", "no_answer")))
            )
            status = "delivered" if channel == "sms" and rng.random() < 0.93 else "sent"
            deliveries.append((sms if channel == "sms" else voice, citizen, status, 1, outcome))
            if not replies:
                continue
            answered += 1
            at = start + timedelta(minutes=rng.random() * 3 * 24 * 60)
            sessions.append(
                (citizen, inquiry_id, citizen, channel, "ar", "completed", "{}", 0, 0, at, at, at)
            )
            lean = (citizen % 7) / 10
            for index, question in enumerate(questions):
                value = (
                    ("yes" if rng.random() < 0.35 + lean else "no")
                    if index % 2 == 0
                    else rng.choices(OPTIONS, weights=(4 + lean * 10, 3, 2, 1))[0]
                )
                answers.append((inquiry_id, question, citizen, citizen, channel, value, value, at))
        await conn.copy_records_to_table(
            "delivery",
            records=deliveries,
            columns=["campaign_id", "citizen_id", "status", "attempts", "outcome"],
        )
        await conn.copy_records_to_table(
            "inquiry_session",
            records=sessions,
            columns=["id", "inquiry_id", "citizen_id", "channel", "language", "status", "answered",
                     "attempts", "version", "started_at", "updated_at", "completed_at"],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "answer",
            records=answers,
            columns=[
                "inquiry_id",
                "question_id",
                "citizen_id",
                "session_id",
                "channel",
                "raw",
                "value",
                "created_at",
            ],
        )
        await conn.execute("ANALYZE")
        return answered
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    async with _common.scratch_database(args.database_url, keep=args.keep) as url:
        _common.note(f"generating {args.citizens} citizens …")
        await _populate(url, args)
        async with _common.engine_for(url) as engine:
            async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                row = await create_inquiry(session, parse_inquiry_yaml(_yaml(args.questions)), actor="bench")
                await set_status(session, "national", InquiryStatus.RUNNING, actor="bench")
                assert row.id is not None
                inquiry_id = row.id
            async with engine.connect() as conn:
                inquiry = await read.load_inquiry(conn, "national")
            questions = [q.id for q in inquiry.questions if q.id is not None]
            respondents = await _fieldwork(url, args, inquiry_id, questions)
            margins = "municipality,population\n" + "".join(
                f"m{i + 1:03d},{10_000 + 997 * i}\n" for i in range(args.municipalities)
            )
            async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                await load_file(session, margins, source="bench.csv", actor="bench")
            _common.note(f"{respondents} respondents; measuring …")
            scope = Scope()
            result: dict[str, float | int] = {
                "citizens": args.citizens,
                "questions": args.questions,
                "municipalities": args.municipalities,
                "respondents": respondents,
            }
            async with engine.connect() as conn:
                began = time.perf_counter()
                weighting = await read.weigh(conn, inquiry, ("municipality",), scope=scope)
                assert weighting.active, weighting.error
                await read.estimates(conn, inquiry, weighting, scope=scope)
                result["results_s"] = round(time.perf_counter() - began, 3)
                began = time.perf_counter()
                await read.estimates(conn, inquiry, weighting, scope=scope, by="municipality")
                result["crosstab_s"] = round(time.perf_counter() - began, 3)
                began = time.perf_counter()
                await read.outcome_rates(conn, inquiry, scope=scope, e=None)
                result["rates_s"] = round(time.perf_counter() - began, 3)
            with tempfile.TemporaryDirectory() as folder:
                for fmt in ("parquet", "sav", "xlsx"):
                    path = Path(folder) / f"export.{fmt}"
                    columns = exports.layout(inquiry, weighted=True)
                    began = time.perf_counter()
                    async with engine.connect() as conn:
                        estimates = (
                            await read.estimates(conn, inquiry, weighting, scope=scope)
                            if fmt == "xlsx"
                            else None
                        )
                        rows = exports.respondents(
                            conn,
                            inquiry,
                            columns,
                            scope=scope,
                            weighting=weighting,
                            key="bench",
                            coded=fmt == "sav",
                        )
                        written = await exports.write_file(
                            fmt, path, inquiry, columns, rows, estimates=estimates
                        )
                    assert written == respondents, (fmt, written, respondents)
                    result[f"export_{fmt}_s"] = round(time.perf_counter() - began, 3)
                    result[f"export_{fmt}_mb"] = round(path.stat().st_size / 2**20, 1)
                    _common.note(f"{fmt}: {result[f'export_{fmt}_s']} s")
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    _common.emit(result)


if __name__ == "__main__":
    asyncio.run(main(_common.parse_args(__doc__ or "", _options)))
