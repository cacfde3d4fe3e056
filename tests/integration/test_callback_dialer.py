"""A callback's turn: the agent is reserved first (the desk shows the card), then the citizen is
dialled, and once they answer the agent is rung; no answer, expiry, opt-out and call hours; two
agents in two processes and one callback; the AMI connection dropping while the agent is held."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.routing import AgentState, Entry, EntryKind
from callcenter.routing.store import Caller as Waiter
from callcenter.settings import Settings
from callcenter.sim.agi_client import SimAgiChannel
from callcenter.sim.calls import agi_env
from callcenter.sim.config import ContextSpec
from callcenter.telephony import names
from callcenter.telephony.ami_message import AmiActionError, AmiConnectionError, AmiMessage
from callcenter.voice.callback_dialer import CallbackDialer, next_opening
from tests.agentlab import Citizen, Lab, Phones, agent_lab, channel, played
from tests.factories import make_citizens

PHONE = "+218912345678"
NOON = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)  # 12:00 in Tripoli: inside call hours
NIGHT = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)  # 23:00 in Tripoli

LabFactory = Callable[..., Awaitable[Lab]]


class Ami:
    """Records each Originate; ``answer`` says whether the citizen picks up."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    async def originate(self, **action: Any) -> str:
        self.calls.append(action)
        if not self.answer:
            raise AmiActionError("Originate failed", action="Originate", response=AmiMessage({}))
        return "cb-1"


class DroppingAmi(Ami):
    """The AMI connection drops while the Originate waits for the citizen to answer."""

    async def originate(self, **action: Any) -> str:
        self.calls.append(action)
        raise AmiConnectionError("AMI connection lost")


@pytest.fixture
async def lab(engine: AsyncEngine, redis: aioredis.Redis, settings: Settings) -> AsyncIterator[LabFactory]:
    async with agent_lab(engine, redis, settings) as build:
        yield build


async def book(
    line: Lab, *, expires: timedelta = timedelta(hours=48), citizen: int | None = None
) -> tuple[str, int]:
    """A pending callback (as the IVR books it) waiting in ``general`` at an early place."""
    entry = uuid.uuid4().hex
    C = models.table(models.Callback)
    async with line.engine.begin() as conn:
        callback_id = (
            await conn.execute(
                insert(C)
                .values(entry=entry, queue="general", phone=PHONE, citizen_id=citizen, language="ar",
                        priority=0, enqueued_at=1.0, status="pending", attempts=0,
                        expires_at=models.utcnow() + expires, created_at=models.utcnow(),
                        updated_at=models.utcnow())
                .returning(C.c.id)
            )
        ).scalar_one()  # fmt: skip
    await line.acd.enqueue(
        Entry(entry, "general", 1.0, kind=EntryKind.CALLBACK, callback_offered=True),
        Waiter(phone=PHONE, language="ar", callback_id=callback_id),
    )
    return entry, int(callback_id)


async def callback_row(line: Lab, callback_id: int) -> Any:
    C = models.table(models.Callback)
    async with line.engine.connect() as conn:
        return (await conn.execute(select(C).where(C.c.id == callback_id))).one()


async def answered(line: Lab, ami: Ami, citizen: Citizen, phones: Phones) -> SimAgiChannel:
    """The citizen answers the Originate: ``[callback-connect]`` runs the ``callback`` AGI with
    the variables Originate set, as Asterisk does."""
    ch = channel(f"Local/{PHONE}@campaign-dial-{uuid.uuid4().hex[:8]};1", names.CTX_CALLBACK, "s")
    ch.variables.update(ami.calls[-1]["variables"])
    spec = ContextSpec(script=names.AGI_CALLBACK, args=())
    env = agi_env(ch, f"agi://127.0.0.1:{line.port}/callback", spec, "Local", "22.9.0", "s")
    session = SimAgiChannel(ch, env, caller=citizen, observer=phones)  # type: ignore[arg-type]
    phones.citizen = citizen
    await session.run("127.0.0.1", line.port)
    return session


async def reserve_and_dial(line: Lab, ami: Ami) -> None:
    """Agent 101 goes ready and is reserved for the callback; one dialer tick at noon places
    the call (or decides not to) and the test waits until that attempt is over."""
    await line.ready("PJSIP/agent101")
    await line.acd.round()
    dialer = CallbackDialer(line.settings, line.engine, line.acd, ami)  # type: ignore[arg-type]
    await dialer.tick(now=NOON)
    await dialer.wait()


async def test_the_agent_is_reserved_first_then_the_citizen_is_dialled_and_put_through(
    lab: LabFactory,
) -> None:
    line = await lab(endpoints=["PJSIP/agent101"])
    entry, callback_id = await book(line)
    await line.ready("PJSIP/agent101")
    await line.acd.round()
    assert await line.state("PJSIP/agent101") is AgentState.RESERVED  # the card is on the desk
    ami = Ami()
    dialer = CallbackDialer(line.settings, line.engine, line.acd, ami)  # type: ignore[arg-type]

    assert await dialer.tick(now=NOON) == [entry]
    await dialer.wait()

    [call] = ami.calls
    assert call["channel"] == f"Local/{PHONE}@campaign-dial"
    assert (call["context"], call["exten"], call["async_"]) == ("callback-connect", "s", False)
    assert call["variables"][names.VAR_ENTRY] == entry
    assert call["variables"][names.VAR_AGENT] == line.agents["PJSIP/agent101"]
    row = await callback_row(line, callback_id)
    assert (row.status, row.attempts) == ("dialling", 1)

    citizen = Citizen({})
    phones = Phones(line.port, citizen, plan={"PJSIP/agent101": ["answer"]})
    session = await answered(line, ami, citizen, phones)

    assert [d.split(",", 1)[0] for d in phones.dials] == ["PJSIP/agent101"]
    assert "callback-intro" in played(session)
    assert await line.state("PJSIP/agent101") is AgentState.WRAP_UP
    assert (await callback_row(line, callback_id)).status == "done"
    kinds = [e.kind for e in await line.events() if e.entry == entry]
    assert kinds.index("entry.offered") < kinds.index("entry.connected") < kinds.index("entry.ended")


async def test_an_answered_callback_is_never_dialled_again_while_its_agent_waits_to_be_rung(
    lab: LabFactory,
) -> None:
    """The citizen answered; until the ``callback`` script rings the agent, the agent is still
    reserved for it: neither this process's next tick nor another process dials again (two
    dialers once called a citizen twice, and the second call put the callback back in line)."""
    line = await lab(endpoints=["PJSIP/agent101"])
    entry, _ = await book(line)
    await line.ready("PJSIP/agent101")
    await line.acd.round()
    ami = Ami()
    first = CallbackDialer(line.settings, line.engine, line.acd, ami)  # type: ignore[arg-type]
    second = CallbackDialer(line.settings, line.engine, line.acd, ami)  # type: ignore[arg-type]
    assert await first.tick(now=NOON) == [entry]
    await first.wait()
    assert await line.state("PJSIP/agent101") is AgentState.RESERVED  # not rung yet
    assert await first.tick(now=NOON) == [] and await second.tick(now=NOON) == []
    assert len(ami.calls) == 1


async def test_a_citizen_who_does_not_answer_is_tried_again_later_and_the_agent_freed_at_once(
    lab: LabFactory,
) -> None:
    line = await lab(endpoints=["PJSIP/agent101"], callback_retry_after_s=600.0)
    entry, callback_id = await book(line)
    await reserve_and_dial(line, Ami(answer=False))

    assert await line.state("PJSIP/agent101") is AgentState.READY
    row = await callback_row(line, callback_id)
    assert (row.status, row.attempts) == ("pending", 1)
    snap = await line.acd.store.snapshot()
    waiting = snap.entries[entry].entry
    assert waiting.enqueued_at == 1.0  # the same place
    assert waiting.not_before == pytest.approx(snap.now + 600, abs=5)
    assert (await line.acd.round()).decisions.offers == ()  # not before it is due
    [deferred] = await line.events("entry.deferred")  # logged: why it is passed over meanwhile
    assert (deferred.entry, deferred.data["reason"]) == (entry, "citizen_no_answer")


async def test_after_the_last_attempt_the_callback_fails_and_leaves_the_line(lab: LabFactory) -> None:
    line = await lab(endpoints=["PJSIP/agent101"], callback_max_attempts=1)
    entry, callback_id = await book(line)
    await reserve_and_dial(line, Ami(answer=False))

    assert (await callback_row(line, callback_id)).status == "failed"
    assert entry not in (await line.acd.store.snapshot()).entries
    assert await line.state("PJSIP/agent101") is AgentState.READY


@pytest.mark.parametrize("why", ["expired", "opted_out"])
async def test_an_expired_callback_or_a_citizen_who_opted_out_is_not_dialled(
    lab: LabFactory, why: str
) -> None:
    line = await lab(endpoints=["PJSIP/agent101"])
    [phone] = await make_citizens(line.engine, 1)
    Z = models.table(models.Citizen)
    async with line.engine.begin() as conn:
        citizen_id = (await conn.execute(select(Z.c.id).where(Z.c.phone == phone))).scalar_one()
        if why == "opted_out":
            await conn.execute(update(Z).where(Z.c.id == citizen_id).values(opted_out_at=models.utcnow()))
    entry, callback_id = await book(
        line,
        citizen=citizen_id,
        expires=NOON - datetime.now(UTC) + timedelta(seconds=-1 if why == "expired" else 1),
    )
    ami = Ami()
    await reserve_and_dial(line, ami)

    assert ami.calls == []
    assert (await callback_row(line, callback_id)).status == why
    assert await line.state("PJSIP/agent101") is AgentState.READY
    assert entry not in (await line.acd.store.snapshot()).entries


async def test_outside_call_hours_a_callback_keeps_its_place_but_is_not_offered(lab: LabFactory) -> None:
    line = await lab(endpoints=["PJSIP/agent101"])
    entry, _ = await book(line)
    ami = Ami()
    dialer = CallbackDialer(line.settings, line.engine, line.acd, ami)  # type: ignore[arg-type]

    await dialer.tick(now=NIGHT)
    await line.ready("PJSIP/agent101")
    routed = await line.acd.round()

    assert routed.decisions.offers == ()
    waiting = (await line.acd.store.snapshot()).entries[entry].entry
    assert waiting.enqueued_at == 1.0 and waiting.not_before > 0
    [deferred] = await line.events("entry.deferred")
    assert (deferred.entry, deferred.data["reason"]) == (entry, "outside_call_hours")


async def test_two_dialers_never_dial_one_callback_twice(lab: LabFactory) -> None:
    line = await lab(endpoints=["PJSIP/agent101"])
    await book(line)
    await line.ready("PJSIP/agent101")
    await line.acd.round()
    first, second = Ami(), Ami()
    dialers = [
        CallbackDialer(line.settings, line.engine, line.acd, ami)  # type: ignore[arg-type]
        for ami in (first, second)
    ]

    started = [await d.tick(now=NOON) for d in dialers]
    for d in dialers:
        await d.wait()

    assert sorted(map(len, started)) == [0, 1]
    assert len(first.calls) + len(second.calls) == 1


async def test_two_agents_ready_in_two_processes_never_take_the_same_callback(lab: LabFactory) -> None:
    """Two agents go ready at once and two processes (each its own router and dialer, one
    Redis) run their rounds together: one agent is reserved for the callback, the other stays
    ready; the citizen is dialled once and put through to the reserved agent only."""
    line = await lab(endpoints=["PJSIP/agent101", "PJSIP/agent102"])
    entry, callback_id = await book(line)
    other = Acd(line.engine, line.redis)
    await other.load()
    await line.ready("PJSIP/agent101", "PJSIP/agent102")

    await asyncio.gather(line.acd.round(), other.round(), line.acd.round(), other.round())

    states = {endpoint: await line.state(endpoint) for endpoint in ("PJSIP/agent101", "PJSIP/agent102")}
    assert sorted(states.values()) == sorted([AgentState.RESERVED, AgentState.READY])
    [taker] = [endpoint for endpoint, state in states.items() if state is AgentState.RESERVED]
    [offered] = await line.events("entry.offered")
    assert (offered.entry, offered.agent) == (entry, line.agents[taker])
    ami = Ami()
    dialers = [
        CallbackDialer(line.settings, line.engine, acd, ami)  # type: ignore[arg-type]
        for acd in (line.acd, other)
    ]
    started = await asyncio.gather(*(d.tick(now=NOON) for d in dialers))
    for d in dialers:
        await d.wait()
    assert sorted(map(len, started)) == [0, 1] and len(ami.calls) == 1
    assert ami.calls[0]["variables"][names.VAR_AGENT] == line.agents[taker]

    citizen = Citizen({})
    phones = Phones(line.port, citizen, plan={taker: ["answer"]})
    await answered(line, ami, citizen, phones)

    assert [d.split(",", 1)[0] for d in phones.dials] == [taker]
    assert await line.state(taker) is AgentState.WRAP_UP
    [idle] = set(states) - {taker}
    assert await line.state(idle) is AgentState.READY
    assert (await callback_row(line, callback_id)).status == "done"


async def test_an_ami_connection_that_drops_while_the_agent_is_held_frees_the_agent_and_keeps_the_place(
    lab: LabFactory,
) -> None:
    """The only AMI action while an agent is held for a call is the callback's Originate (an
    inbound caller's agent is rung by the caller's own FastAGI session). The connection drops
    while the citizen's phone rings: the agent is freed at once, the callback keeps its place
    for a later attempt, and a citizen who answers anyway (Asterisk went on dialling) hears an
    apology: the agent, who may have taken another caller since, is not rung."""
    line = await lab(endpoints=["PJSIP/agent101"], callback_retry_after_s=600.0)
    entry, callback_id = await book(line)
    ami = DroppingAmi()
    await reserve_and_dial(line, ami)

    assert await line.state("PJSIP/agent101") is AgentState.READY
    row = await callback_row(line, callback_id)
    assert (row.status, row.attempts) == ("pending", 1)
    waiting = (await line.acd.store.snapshot()).entries[entry].entry
    assert waiting.enqueued_at == 1.0 and waiting.not_before > 0  # its place, a later attempt
    # another caller takes the freed agent; then the citizen answers the dropped Originate
    await line.acd.enqueue(Entry("someone-else", "general", 2.0), Waiter(phone="+218910000009"))
    await line.acd.round()
    citizen = Citizen({})
    phones = Phones(line.port, citizen, plan={"PJSIP/agent101": ["answer"]})
    session = await answered(line, ami, citizen, phones)

    assert phones.dials == []  # the agent was not rung for the callback
    assert "callback-sorry" in played(session)
    record = await line.acd.store.agent(line.agents["PJSIP/agent101"])
    assert record is not None and record.entry == "someone-else"
    assert (await callback_row(line, callback_id)).status == "pending"
    assert entry in (await line.acd.store.snapshot()).entries  # still at its place


def test_call_hours_open_at_the_next_start_in_tripoli() -> None:
    zone = ZoneInfo("Africa/Tripoli")
    assert next_opening(NOON, time(8), time(20), zone) is None
    assert next_opening(NIGHT, time(8), time(20), zone) == datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    early = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)  # 06:00 in Tripoli
    assert next_opening(early, time(8), time(20), zone) == datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
