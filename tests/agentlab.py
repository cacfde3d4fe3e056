"""A lab for callers put through to agents: a simulated caller channel (byte-exact FastAGI
replies) whose ``EXEC Dial`` reaches scripted agent phones, which run the ``U()`` gosub's
``agent_answered`` AGI as Asterisk does; queues and agents in the database and the routing
state; a FastAGI server with the ACD. Used by tests/integration/test_to_agent.py and the
rendered-prompts test."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.routing import AgentState, Entry
from callcenter.routing.store import Caller as Waiter
from callcenter.settings import Settings
from callcenter.sim import Caller, PromptCaller, PromptLibrary
from callcenter.sim.agi_client import AgiObserver, SimAgiChannel, run_app
from callcenter.sim.calls import agi_env
from callcenter.sim.config import ContextSpec
from callcenter.sim.core import SimChannel
from callcenter.telephony import names
from callcenter.voice.ivr import make_agi_server

_ids = itertools.count(1)


# -- the simulated Asterisk around the call -----------------------------------------------------


class Citizen(PromptCaller):
    """A caller whose keys depend on the prompt being played (``callcenter.sim.PromptCaller``):
    ``{"greeting": "0"}`` presses 0 during the first prompt whose path holds "greeting"; a
    list is used up one item per prompt (``"hold-music": ["7", "#"]``: 7 during the first hold
    piece, # during the second); ``None`` is silence, ``HangUp()`` hangs up there."""

    def __init__(self, plan: dict[str, Any], number: str = "0912345678") -> None:
        super().__init__(plan, number)


@dataclass
class Phones(AgiObserver):
    """Agent phones behind ``EXEC Dial``: per endpoint a list of what happens to each ring —
    ``answer`` (the gosub's AGI runs, then the agent hangs up: DIALSTATUS=ANSWER, Dial -1),
    ``noanswer`` / ``busy`` / ``unavailable``, ``caller_hangs_up`` while it rings, or
    ``answer_caller_hangs_up`` (the agent answers, the caller ends the conversation)."""

    port: int
    citizen: Citizen
    plan: dict[str, list[str]] = field(default_factory=dict)
    dials: list[str] = field(default_factory=list)
    during_call: Callable[[], Awaitable[None]] | None = None
    while_ringing: Callable[[], Awaitable[None]] | None = None
    gosub: bool = True  # False: a dialplan without [agent-answered] (or its AGI failing)

    def command_started(self, command_id: int, line: str) -> None:
        self.citizen.playing = line

    async def exec_app(self, call: SimAgiChannel, app: str, args: str) -> int:
        if app.lower() != "dial":
            return await run_app(call, app, args)
        self.dials.append(args)
        target, _timeout, options = args.split(",", 2)
        what = self.plan.get(target, ["noanswer"]).pop(0)
        if what in ("answer", "answer_caller_hangs_up"):
            entry, agent = re.fullmatch(r"U\(agent-answered\^(\w+)\^(\w+)\)", options).groups()  # type: ignore[union-attr]
            if self.gosub:
                await gosub(self.port, entry, agent)
            if self.during_call is not None:
                await self.during_call()
            call.set_variable("DIALSTATUS", "ANSWER")
            if what == "answer_caller_hangs_up":
                call.hang_up()  # the caller's BYE: HANGUP follows the reply, as res_agi sends it
            return -1
        if what == "caller_hangs_up":
            if self.while_ringing is not None:
                await self.while_ringing()
            call.set_variable("DIALSTATUS", "CANCEL")
            call.hang_up()
            return -1
        status = {"noanswer": "NOANSWER", "busy": "BUSY", "unavailable": "CHANUNAVAIL"}[what]
        call.set_variable("DIALSTATUS", status)
        return 0


def channel(name: str, context: str, exten: str, number: str = "") -> SimChannel:
    uid = f"1700000000.{next(_ids)}"
    ch = SimChannel(name, uid, uid, context, exten, state=6)
    if number:
        ch.set_caller(number, "Citizen")
    return ch


async def gosub(port: int, entry: str, agent: str) -> None:
    """``[agent-answered]`` on the agent's channel: AGI(agi://.../agent_answered,entry,agent)."""
    ch = channel(f"PJSIP/agent-{next(_ids):08x}", names.CTX_AGENT_ANSWERED, "s")
    spec = ContextSpec((), names.AGI_AGENT_ANSWERED, (entry, agent))
    env = agi_env(ch, f"agi://127.0.0.1:{port}/agent_answered", spec, "PJSIP", "22.9.0", "unknown")
    await SimAgiChannel(ch, env, caller=Caller()).run("127.0.0.1", port)


# -- the lab --------------------------------------------------------------------------------------


@dataclass
class Lab:
    engine: AsyncEngine
    redis: aioredis.Redis
    acd: Acd
    port: int
    agents: dict[str, str] = field(default_factory=dict)  # endpoint -> agent id
    settings: Settings | None = None
    library: PromptLibrary | None = None  # which prompt files exist (default: all)

    def session(self, citizen: Citizen, phones: Phones | None = None) -> tuple[SimAgiChannel, Phones]:
        phones = phones or Phones(self.port, citizen)
        ch = channel(f"PJSIP/citizen-{next(_ids):08x}", names.CTX_INBOUND, "1415", citizen.number)
        spec = ContextSpec(script=names.AGI_MAIN, args=())
        env = agi_env(ch, f"agi://127.0.0.1:{self.port}/main", spec, "PJSIP", "22.9.0", "1415")
        prompts = self.library or PromptLibrary(missing=set(), default_ms=2000)
        session = SimAgiChannel(ch, env, caller=citizen, prompts=prompts, observer=phones)  # type: ignore[arg-type]
        return session, phones

    async def call(self, citizen: Citizen, phones: Phones | None = None) -> tuple[SimAgiChannel, Phones]:
        session, phones = self.session(citizen, phones)
        await session.run("127.0.0.1", self.port)
        return session, phones

    async def ready(self, *endpoints: str) -> None:
        for endpoint in endpoints:
            await self.acd.agent_state(self.agents[endpoint], AgentState.READY)

    async def state(self, endpoint: str) -> AgentState:
        record = await self.acd.store.agent(self.agents[endpoint])
        assert record is not None
        return record.agent.state

    async def events(self, kind: str | None = None) -> list[Any]:
        E = models.table(models.RoutingEvent)
        query = select(E).order_by(E.c.id)
        if kind is not None:
            query = query.where(E.c.kind == kind)
        async with self.engine.connect() as conn:
            return list(await conn.execute(query))

    async def rows(self, model: type) -> list[Any]:
        table = models.table(model)
        async with self.engine.connect() as conn:
            return list(await conn.execute(select(table).order_by(table.c.id)))


async def make_line(
    engine: AsyncEngine, queues: dict[str, dict[str, Any]], endpoints: list[str]
) -> dict[str, str]:
    """Queue rows (key -> config) and one agent per endpoint serving every queue."""
    U, A, Q = (models.table(m) for m in (models.User, models.AgentProfile, models.ServiceQueue))
    agents: dict[str, str] = {}
    async with engine.begin() as conn:
        for key, config in queues.items():
            await conn.execute(insert(Q).values(key=key, service=key, name_ar=key, name_en=key, config=config,
                                                active=True, created_at=models.utcnow()))  # fmt: skip
        skills = [["service", key, 1] for key in queues]
        for n, endpoint in enumerate(endpoints, 1):
            user_id = (
                await conn.execute(
                    insert(U)
                    .values(
                        email=f"agent{next(_ids)}@1415.local",
                        name=f"Agent {n}",
                        role="agent",
                        language="ar",
                        created_at=models.utcnow(),
                    )
                    .returning(U.c.id)
                )
            ).scalar_one()
            await conn.execute(insert(A).values(user_id=user_id, endpoint=endpoint, skills=skills,
                                                active=True, created_at=models.utcnow()))  # fmt: skip
            agents[endpoint] = str(user_id)
    return agents


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


def played(session: SimAgiChannel) -> list[str]:
    """Every prompt the caller heard or was played, in order (file names)."""
    out: list[str] = []
    for line in session.commands:
        if line.startswith(("STREAM FILE", "GET DATA")):
            out.append(line.split(" ", 3)[2].rsplit("/", 1)[-1])
        elif line.startswith("EXEC Playback"):
            out += [f.rsplit("/", 1)[-1] for f in line.split(" ", 2)[2].strip('"').split("&")]
    return out


def heard_in_order(session: SimAgiChannel, *prompts: str) -> bool:
    """``prompts`` appear in this order (not necessarily next to each other)."""
    it = iter(played(session))
    return all(any(p == prompt for p in it) for prompt in prompts)


async def occupy(lab: Lab, endpoint: str, *, waiting: int, queue: str = "general") -> list[str]:
    """Keep ``endpoint`` busy with an offer to a caller elsewhere, and put ``waiting`` other
    callers in line before the next one: returns their entry ids (the busy one first)."""
    snap = await lab.acd.store.snapshot()
    ids = [f"{queue}-other{n}" for n in range(waiting + 1)]
    await lab.acd.enqueue(Entry(ids[0], queue, snap.now - 100), Waiter(phone="+218910000000"))
    await lab.ready(endpoint)
    await lab.acd.round()
    assert await lab.state(endpoint) is AgentState.RESERVED
    for n, entry_id in enumerate(ids[1:], 1):
        await lab.acd.enqueue(Entry(entry_id, queue, snap.now - 100 + n), Waiter(phone="+218910000000"))
    return ids


async def put_through(lab: Lab, session: SimAgiChannel, others: list[str], *ready: str) -> None:
    """Run the call; once it holds, the ``others`` hang up (their agent is free again) and the
    ``ready`` endpoints go ready: the caller is put through."""
    call = asyncio.create_task(session.run("127.0.0.1", lab.port))

    async def holding() -> bool:
        return "hold-music" in played(session) or call.done()

    await eventually(holding)
    for entry_id in reversed(others):
        await lab.acd.leave(entry_id)
    await lab.ready(*ready)
    await asyncio.wait_for(call, 20)


@asynccontextmanager
async def agent_lab(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> AsyncIterator[Callable[..., Awaitable[Lab]]]:
    """``build(queues={"general": {...}}, endpoints=["PJSIP/agent101"], **settings)`` -> a Lab
    with its FastAGI server running (closed on exit); announcements only on arrival unless
    ``queue_announce_every_s`` says otherwise."""
    servers: list[Any] = []

    async def build(
        queues: dict[str, dict[str, Any]] | None = None, endpoints: list[str] | None = None, **overrides: Any
    ) -> Lab:
        agents = await make_line(engine, {"general": {}} if queues is None else queues, endpoints or [])
        acd = Acd(engine, redis)
        await acd.load()
        conf = settings.model_copy(update={"queue_announce_every_s": 3600.0, **overrides})
        server = make_agi_server(conf, engine, host="127.0.0.1", port=0, acd=acd)
        await server.start()
        servers.append(server)
        return Lab(engine, redis, acd, server.port, agents, conf)

    try:
        yield build
    finally:
        for server in servers:
            await server.close()
