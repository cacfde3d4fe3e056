"""N simultaneous simulated callers answer a 3-question inquiry against ONE FastAGI server
process (``python -m callcenter.voice.ivr`` in a subprocess, on a scratch PostgreSQL).

Each caller dials 1415, presses 1 and answers the three questions. The engine records
every AGI command's round-trip time (write → reply, :class:`RttStats`) and writes them at
exit; answers and completed calls are recounted from the database.

    python scripts/bench/ivr_concurrency.py --callers 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from _common import emit, engine_for, note, parse_args, scratch_database
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.inquiries import create_inquiry, set_status
from callcenter.inquiry.definition import InquiryStatus
from callcenter.inquiry.schema import parse_inquiry_yaml
from callcenter.sim import Caller, SimConfig, Simulator, engine_dialplan

INQUIRY = """
slug: bench
title: {ar: استبيان, en: Benchmark}
questions:
  - {key: q1, kind: rating, text: {ar: السؤال الأول, en: First question}}
  - {key: q2, kind: yes_no, text: {ar: السؤال الثاني, en: Second question}}
  - {key: q3, kind: rating, min: 1, max: 3, text: {ar: السؤال الثالث, en: Third question}}
"""


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.0,
        help="simulated prompt time -> real time; 0: prompts take no time, so the RTT is the "
        "protocol and both event loops only (above 0 it includes the simulated playback)",
    )
    parser.add_argument("--pool-size", type=int, default=20, help="the AGI server's database pool")


async def make_inquiry(url: str) -> None:
    async with engine_for(url) as engine, AsyncSession(engine) as session, session.begin():
        await create_inquiry(session, parse_inquiry_yaml(INQUIRY), actor="bench")
        await set_status(session, "bench", InquiryStatus.RUNNING, actor="bench")


async def start_server(url: str, rtt_file: Path, pool_size: int) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.voice.ivr", "--host", "127.0.0.1", "--port", "0",
        "--database-url", url, "--rtt-file", str(rtt_file), "--pool-size", str(pool_size),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "CALLCENTER_ENV": "test"},
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    if not line.startswith("listening "):
        raise RuntimeError(f"the AGI server did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


async def run(args: argparse.Namespace) -> dict[str, object]:
    async with scratch_database(args.database_url, keep=args.keep) as url:
        await make_inquiry(url)
        with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
            rtt_file = Path(tmp) / "rtt.json"
            proc, port = await start_server(url, rtt_file, args.pool_size)
            try:
                config = SimConfig(agi_port=port, time_scale=args.time_scale, dialplan=engine_dialplan())
                callers = [Caller.keys("1", "4", "1", "2", number=f"091{i:07d}") for i in range(args.callers)]
                started = time.perf_counter()
                async with Simulator(config) as sim:
                    await sim.run_callers(callers)
                seconds = time.perf_counter() - started
            finally:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
            rtt = json.loads(rtt_file.read_text())["*"]
        async with engine_for(url) as engine, engine.connect() as conn:
            answers = (
                await conn.execute(select(func.count()).select_from(models.table(models.Answer)))
            ).scalar()
            CALL = models.table(models.Call)
            completed = (
                await conn.execute(
                    select(func.count()).select_from(CALL).where(CALL.c.outcome == "completed")
                )
            ).scalar()
    note(f"{args.callers} callers in {seconds:.1f}s, {rtt['count']} AGI commands")
    return {
        "callers": args.callers,
        "completed": completed,
        "answers": answers,
        "agi_rtt_p50_ms": round(rtt["p50"] * 1000, 3) if rtt["p50"] is not None else None,
        "agi_rtt_p99_ms": round(rtt["p99"] * 1000, 3) if rtt["p99"] is not None else None,
        "agi_commands": rtt["count"],
        "seconds": round(seconds, 2),
        "time_scale": args.time_scale,
    }


def main() -> None:
    args = parse_args(__doc__ or "", options)
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
