"""N concurrent SIP calls through a real Asterisk 22 answer a 3-question inquiry by RFC 2833.

SIPp dials 1415 N times at once; each call presses 1 and the three answers; the engine's
FastAGI server (in this process) records them in a scratch PostgreSQL. Prompts are silent
0.3 s stand-ins. Needs the Asterisk/SIPp builds (``callcenter.testing.asterisk``).

    python scripts/bench/real_asterisk_calls.py --calls 50
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _common import emit, engine_for, note, parse_args, scratch_database
from ivr_concurrency import INQUIRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.inquiries import create_inquiry, load_definition, set_status
from callcenter.inquiry.definition import InquiryStatus
from callcenter.inquiry.schema import parse_inquiry_yaml
from callcenter.settings import Settings
from callcenter.testing.asterisk import AsteriskInstance, toolchain
from callcenter.voice.ivr import make_agi_server
from callcenter.voice.ivr_prompts import write_silent_prompts

#: menu 1, then q1=4, q2=yes, q3=2, half a second apart (w)
KEYS = "1w4w1w2"


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rate", type=float, default=50.0, help="calls started per second")


async def run(args: argparse.Namespace) -> dict[str, object]:
    tools = toolchain()
    async with scratch_database(args.database_url, keep=args.keep) as url, engine_for(url) as engine:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            await create_inquiry(session, parse_inquiry_yaml(INQUIRY), actor="bench")
            await set_status(session, "bench", InquiryStatus.RUNNING, actor="bench")
            inquiry = await load_definition(session, "bench")
        with tempfile.TemporaryDirectory(prefix="ast-bench-") as tmp:
            work = Path(tmp)
            write_silent_prompts(work / "prompts", [inquiry])
            settings = Settings(env="test", data_dir=work, database_url=url, prompts_dir=work / "prompts")
            server = make_agi_server(settings, engine, host="127.0.0.1", port=0)
            async with (
                server,
                AsteriskInstance(tools, work / "ast", agi_port=server.port, verbosity=0) as pbx,
            ):
                started = time.perf_counter()
                # a distinct caller per call: SIPp puts its call number in the caller id
                result = await pbx.sipp_uac(
                    keys=KEYS, calls=args.calls, concurrent=args.calls, rate=args.rate,
                    caller="0913[call_number]", timeout_s=60,
                )  # fmt: skip
                seconds = time.perf_counter() - started
            if not result.ok:
                note(f"SIPp: {result}\n{result.errors}")
        CALL = models.table(models.Call)
        async with engine.connect() as conn:
            answers = (
                await conn.execute(select(func.count()).select_from(models.table(models.Answer)))
            ).scalar()
            completed = (
                await conn.execute(
                    select(func.count()).select_from(CALL).where(CALL.c.outcome == "completed")
                )
            ).scalar()
    note(f"{args.calls} SIP calls in {seconds:.1f}s: {result.successful} ok, {result.failed} failed")
    return {
        "calls": args.calls,
        "completed": completed,
        "answers": answers,
        "seconds": round(seconds, 2),
        "sipp_successful": result.successful,
        "sipp_failed": result.failed,
    }


def main() -> None:
    args = parse_args(__doc__ or "", options)
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
