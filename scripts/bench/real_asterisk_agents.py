"""N agents' SIP phones and M SIP callers through a real Asterisk 22: every caller keys 0 and
is put through to an agent.

    python scripts/bench/real_asterisk_agents.py --agents 10 --callers 30

Each agent's phone is a SIPp UAS at the contact of its ``pjsip.conf`` endpoint (101, 102, ...;
``callcenter.testing.asterisk_agents``) that answers at once, talks ``--talk-ms`` and hangs up.
SIPp places the callers at ``--rate`` per second; each keys 0 (RFC 2833) and holds. The
engine's FastAGI server (in this process, with the ACD on a scratch PostgreSQL and a Redis
database of its own) queues them, rings the agents with ``EXEC Dial`` and the
``U(agent-answered^...)`` gosub; the agents' desks (simulated here: in contact, Ready again half
a second after each call with a disposition) take the next caller. Prompts are silent 0.3 s
stand-ins; the call rating is off, so a caller hangs up after the agent. Prints ``callers``,
``connected`` (recounted from the database), ``double_routed`` (from the event log: an entry
offered while still offered, or an agent given a second caller) and ``seconds`` (from the
first caller to the last hang-up). Needs the Asterisk/SIPp builds
(``callcenter.testing.asterisk``).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from _acd_recount import double_routed, read_log
from _common import emit, engine_for, note, parse_args, scratch_database
from acd_load import claim_redis, release_redis
from sqlalchemy import func, insert, select

from callcenter import models
from callcenter.demo_agents import desks
from callcenter.desk.acd import Acd
from callcenter.routing.model import AgentState
from callcenter.settings import Settings
from callcenter.testing.asterisk import UasBehaviour, free_port, toolchain
from callcenter.testing.asterisk_agents import AgentPhones
from callcenter.voice.ivr import make_agi_server
from callcenter.voice.ivr_prompts import write_silent_prompts
from callcenter.voice.service import routing_rounds


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--callers", type=int, default=30)
    parser.add_argument("--rate", type=float, default=10.0, help="callers started per second")
    parser.add_argument("--talk-ms", type=int, default=2000, help="each call's length once answered")


async def make_agents(engine: Any, endpoints: list[str]) -> list[str]:
    """The queue of key 0 and one agent account per phone; their ids."""
    Q, U, A = (models.table(m) for m in (models.ServiceQueue, models.User, models.AgentProfile))
    now = models.utcnow()
    async with engine.begin() as conn:
        config = {"ring_timeout_s": 10, "wrap_up_s": 30}
        await conn.execute(
            insert(Q).values(
                key="general",
                service="general",
                name_ar="general",
                name_en="general",
                config=config,
                active=True,
                created_at=now,
            )
        )
        users = [
            {"email": f"agent{e}@bench.1415.ly", "name": f"Agent {e}", "role": "agent", "created_at": now}
            for e in endpoints
        ]
        ids = [int(i) for i in (await conn.execute(insert(U).returning(U.c.id), users)).scalars()]
        await conn.execute(
            insert(A),
            [
                {
                    "user_id": i,
                    "endpoint": f"PJSIP/{e}",
                    "skills": [["service", "general", 1]],
                    "active": True,
                    "created_at": now,
                }
                for i, e in zip(ids, endpoints, strict=True)
            ],
        )
    return [str(i) for i in ids]


async def run(args: argparse.Namespace) -> dict[str, object]:
    tools = toolchain()
    endpoints = [str(101 + n) for n in range(args.agents)]
    redis_url, claimed = claim_redis(args.redis_url)
    try:
        async with scratch_database(args.database_url, keep=args.keep) as url, engine_for(url) as engine:
            agents = await make_agents(engine, endpoints)
            redis = aioredis.from_url(redis_url)
            acd = Acd(engine, redis)
            await acd.load()
            for agent in agents:
                await acd.store.touch(agent, ttl_s=30)
                await acd.agent_state(agent, AgentState.READY)
            stop = asyncio.Event()
            with tempfile.TemporaryDirectory(prefix="ast-agents-") as tmp:
                work = Path(tmp)
                write_silent_prompts(work / "prompts", [])
                settings = Settings(
                    env="test",
                    data_dir=work,
                    database_url=url,
                    redis_url=redis_url,
                    prompts_dir=work / "prompts",
                    call_rating=False,
                    queue_announce_every_s=3600.0,
                )
                server = make_agi_server(settings, engine, host="127.0.0.1", port=0, acd=acd)
                phones = {e: free_port(socket.SOCK_DGRAM) for e in endpoints}
                tasks = [
                    asyncio.create_task(routing_rounds(acd, stop, every_s=0.5)),
                    asyncio.create_task(desks(acd, agents, stop)),
                ]
                try:
                    async with (
                        server,
                        AgentPhones(
                            tools, work / "ast", agi_port=server.port, phones=phones, verbosity=0
                        ) as pbx,
                    ):
                        uas = [
                            await pbx.sipp_uas(
                                UasBehaviour.HANGUP,
                                port=port,
                                calls=args.callers,
                                delay_ms=0,
                                hangup_after_ms=args.talk_ms,
                                timeout_s=600,
                            )
                            for port in phones.values()
                        ]
                        started = time.perf_counter()
                        result = await pbx.sipp_uac(
                            keys="0",
                            calls=args.callers,
                            concurrent=args.callers,
                            rate=args.rate,
                            caller="0913[call_number]",
                            timeout_s=60 + args.callers * args.talk_ms / 1000,
                        )
                        seconds = time.perf_counter() - started
                        for phone in uas:
                            await phone.stop()
                    if not result.ok:
                        note(f"SIPp: {result}\n{result.errors}")
                finally:
                    stop.set()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    await redis.aclose()
            CALL = models.table(models.Call)
            async with engine.connect() as conn:
                connected = (
                    await conn.execute(
                        select(func.count()).where(CALL.c.direction == "in", CALL.c.outcome == "connected")
                    )
                ).scalar_one()
            events = await read_log(engine)
    finally:
        release_redis(redis_url, claimed)
    note(f"{args.callers} SIP callers, {args.agents} agents: {connected} connected in {seconds:.1f}s")
    return {
        "agents": args.agents,
        "callers": args.callers,
        "connected": int(connected),
        "double_routed": double_routed(events),
        "offers": sum(1 for e in events if e.kind == "entry.offered"),
        "seconds": round(seconds, 2),
        "sipp_successful": result.successful,
        "sipp_failed": result.failed,
    }


def main() -> None:
    args = parse_args(__doc__ or "", options)
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
