"""The demo's callers to agents: a few agent accounts and the two queues of keys 0 and 2,
simulated callers who key 0 or 2 on the Asterisk simulator and wait, give up or book a
callback, agents' phones that answer (and one that lets a call ring out), desks that wrap up,
and the callback dialer calling the bookers back — all through the engine's own FastAGI IVR,
routing store, routing rounds and event log. What became of every caller is recounted from
the database.

The agents are staff accounts ``demo-agent<n>@1415.local`` with the agent role and no password
(nobody logs in as them); each run upserts them and the queues, so a kept database keeps one
set. Their desks are simulated (kept in contact, Ready again a moment after each call), so the
wallboard of ``callcenter up`` shows their day.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time as clock
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any, Final

from redis.asyncio import Redis
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.accounts.roles import Role
from callcenter.desk.acd import Acd
from callcenter.desk.setup import load as load_acd
from callcenter.inquiry.definition import Language
from callcenter.routing.model import AgentState
from callcenter.settings import Settings
from callcenter.sim import (
    AgentSpec,
    CitizenModel,
    Outcome,
    PromptCaller,
    PromptLibrary,
    QueueCaller,
    SimConfig,
    Simulator,
)
from callcenter.sim import engine_dialplan as sim_dialplan
from callcenter.telephony.ami import AmiClient
from callcenter.voice.callback_dialer import CallbackDialer
from callcenter.voice.ivr import make_agi_server
from callcenter.voice.ivr_prompts import Prompts
from callcenter.voice.service import routing_rounds

AGENTS: Final = 4
#: the phones' endpoints; the second lets its first call ring out (it is then missed)
ENDPOINTS: Final = tuple(f"PJSIP/{201 + n}" for n in range(AGENTS))
DISPOSITION: Final = "resolved"
#: the states a demo agent may be found in when the run begins (a kept database)
AWAY: Final = frozenset({AgentState.OFFLINE, AgentState.PAUSED, AgentState.LOST_CONTACT, AgentState.MISSED})
ACD_YAML: Final = """
queues:
  - key: general
    service: general
    name: {ar: الاستفسارات العامة, en: General inquiries}
    callback_after: 3
    ring_timeout_s: 3
    wrap_up_s: 10
  - key: services
    service: services
    name: {ar: طلبات الخدمات البلدية, en: Municipal service requests}
    callback_after: 3
    ring_timeout_s: 3
    wrap_up_s: 10
agents:
"""


def demo_email(n: int) -> str:
    return f"demo-agent{n + 1}@1415.local"


async def ensure_agents(engine: AsyncEngine) -> None:
    """The demo's agent accounts, and the queues and agents loaded as ``callcenter acd load``
    would (an upsert: a second run changes nothing)."""
    U = models.table(models.User)
    emails = [demo_email(n) for n in range(AGENTS)]
    async with engine.begin() as conn:
        found = set((await conn.execute(select(U.c.email).where(U.c.email.in_(emails)))).scalars())
        for n, email in enumerate(emails):
            if email not in found:
                await conn.execute(
                    insert(U).values(email=email, name=f"Demo agent {n + 1}", role=Role.agent.value,
                                     language="ar", created_at=models.utcnow())
                )  # fmt: skip
    lines = "".join(
        f"  - email: {email}\n    endpoint: {endpoint}\n"
        "    skills: [[service, general, 1], [service, services, 1], [language, ar, 1], [language, en, 1]]\n"
        for email, endpoint in zip(emails, ENDPOINTS, strict=True)
    )
    await load_acd(engine, ACD_YAML + lines, actor="demo")


async def run_agents(
    settings: Settings, engine: AsyncEngine, redis: Redis, numbers: Sequence[str], *, seed: int
) -> dict[str, Any]:
    """Callers (local numbers ``09...``) key 0 or 2, the demo's agents take them; returns what
    became of them."""
    rng = random.Random(seed)
    conf = settings.model_copy(
        update={
            "callback_hours_start": time(0),  # the same start and end: call back at any hour
            "callback_hours_end": time(0),
            "callback_retry_after_s": 10.0,
            "queue_announce_every_s": 30.0,
            "queue_default_aht_s": 3.0,
            "voice_dial_template": "PJSIP/{number}@trunk",
        }
    )
    await ensure_agents(engine)
    acd = Acd(engine, redis)
    await acd.load()
    agents = await _agent_ids(engine)
    for agent in agents:
        await acd.store.touch(agent, ttl_s=30)
        await acd.agent_state(agent, AgentState.READY, expect=AWAY)
    rung: dict[str, int] = {}

    def phone(target: str) -> AgentSpec:
        rung[target] = rung.get(target, 0) + 1
        if target == ENDPOINTS[1] and rung[target] == 1:
            return AgentSpec("noanswer")
        return AgentSpec("answer", answer_after_ms=rng.randint(1200, 3600), talk_ms=rng.randint(4000, 8000))

    def called_back(number: str) -> Outcome:  # picks up after 0.4 s and rates the call 5
        return Outcome("answer", 400, PromptCaller({"rate-call": "5"}, number))

    callers = []
    for n, number in enumerate(numbers):
        draw = rng.random()
        patience = rng.uniform(12_000, 24_000) if draw < 0.2 else None  # virtual ms: 3-6 s
        books = 0.2 <= draw < 0.4
        key = "0" if n % 3 else "2"
        callers.append(
            QueueCaller(key, number, patience_ms=patience, books_callback=books, rating=rng.choice("345"))
        )
    started, since = clock.monotonic(), models.utcnow() - timedelta(seconds=2)  # SQLite keeps whole seconds
    server = make_agi_server(conf, engine, host="127.0.0.1", port=0, acd=acd)
    async with server:
        config = SimConfig(
            agi_port=server.port,
            time_scale=0.25,
            dialplan=sim_dialplan(),
            agent_rule=phone,
            citizens=CitizenModel(rule=called_back),
            prompts=hold_library(conf),
            # its own uniqueids: the voice part's simulator ran a moment ago (two Asterisks
            # are told apart by their systemname, which prefixes every uniqueid)
            first_uniqueid=1_000_000,
        )
        async with Simulator(config) as sim, AmiClient("127.0.0.1", sim.ami_port, "engine", "s3cret") as ami:
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(
                    routing_rounds(acd, stop, every_s=0.25, default_aht=conf.queue_default_aht_s)
                ),
                asyncio.create_task(CallbackDialer(conf, engine, acd, ami).run(stop, every_s=0.25)),
                asyncio.create_task(desks(acd, agents, stop)),
            ]
            try:
                for caller in callers:
                    sim.hub.spawn(sim.call(caller), "demo-caller")
                    await asyncio.sleep(rng.uniform(0.1, 0.3))
                await sim.wait_idle()
                await _callbacks_served(engine, [f"+218{n[1:]}" for n in numbers], deadline=60)
                await sim.wait_idle()
            finally:
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
    summary = await _recount(engine, [f"+218{n[1:]}" for n in numbers], since=since)
    summary["agents"] = len(agents)
    summary["seconds"] = round(clock.monotonic() - started, 1)
    return summary


def hold_library(settings: Settings, *, default_ms: int = 800) -> PromptLibrary:
    """Hold music in 2 s pieces as in production, every other prompt file ``default_ms``
    (virtual time on the simulator)."""
    prompts = Prompts(settings)
    languages: tuple[Language, ...] = ("ar", "en")
    hold = {path: 2000 for language in languages for path in prompts.paths(language, "hold-music")}
    return PromptLibrary(durations_ms=hold, missing=set(), default_ms=default_ms)


async def _agent_ids(engine: AsyncEngine) -> list[str]:
    U, A = models.table(models.User), models.table(models.AgentProfile)
    async with engine.connect() as conn:
        mine = U.c.email.in_([demo_email(n) for n in range(AGENTS)])
        rows = await conn.execute(select(A.c.user_id).join(U, U.c.id == A.c.user_id).where(mine))
        return [str(r) for r in rows.scalars()]


async def desks(acd: Acd, agents: Sequence[str], stop: asyncio.Event) -> None:
    """The agents at their desks: in contact, Ready again half a second after a call (with the
    call's disposition) or after one they let ring out."""
    since: dict[str, float] = {}
    while not stop.is_set():
        snap = await acd.store.snapshot()
        for agent in agents:
            await acd.store.touch(agent, ttl_s=30)
            record = snap.agents.get(agent)
            state = record.agent.state if record else None
            if state in (AgentState.WRAP_UP, AgentState.MISSED):
                first = since.setdefault(agent, clock.monotonic())
                if clock.monotonic() - first >= 0.5:
                    with contextlib.suppress(Exception):
                        await acd.agent_state(agent, AgentState.READY, disposition=DISPOSITION,
                                              expect=frozenset({state}))  # fmt: skip
            else:
                since.pop(agent, None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def _callbacks_served(engine: AsyncEngine, phones: Sequence[str], *, deadline: float) -> None:
    CB = models.table(models.Callback)
    until = clock.monotonic() + deadline
    while clock.monotonic() < until:
        async with engine.connect() as conn:
            live = (
                await conn.execute(
                    select(func.count()).where(
                        CB.c.phone.in_(phones), CB.c.status.in_(("pending", "reserved", "dialling"))
                    )
                )
            ).scalar_one()
        if not live:
            return
        await asyncio.sleep(0.2)


async def _recount(engine: AsyncEngine, phones: Sequence[str], *, since: datetime) -> dict[str, Any]:
    """This run's callers (calls and callbacks from ``since`` on: a kept database holds earlier
    runs) by what became of them."""
    C, CB = models.table(models.Call), models.table(models.Callback)
    async with engine.connect() as conn:
        calls = (
            await conn.execute(
                select(C.c.caller, C.c.outcome)
                .where(C.c.direction == "in", C.c.caller.in_(phones), C.c.started_at >= since)
                .order_by(C.c.id)
            )
        ).all()
        callbacks = (
            await conn.execute(
                select(CB.c.phone, CB.c.status).where(CB.c.phone.in_(phones), CB.c.created_at >= since)
            )
        ).all()
    outcome = {str(r.caller): str(r.outcome) for r in calls}  # the last call of each
    done = {str(r.phone) for r in callbacks if r.status == "done"}
    counts = {"connected": 0, "abandoned": 0, "called_back": 0, "told_message": 0, "lost": 0}
    for phone in phones:
        got = outcome.get(phone)
        if got == "connected":
            counts["connected"] += 1
        elif got == "abandoned":
            counts["abandoned"] += 1
        elif got == "callback" and phone in done:
            counts["called_back"] += 1
        elif got == "answered":
            counts["told_message"] += 1
        else:
            counts["lost"] += 1
    return {"callers": len(phones), **counts, "callbacks_booked": len(callbacks)}
