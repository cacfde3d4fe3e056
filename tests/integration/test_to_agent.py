"""Keys 0 and 2 end to end: the engine's FastAGI server, a simulated caller channel (byte-exact
FastAGI replies) whose ``EXEC Dial`` reaches scripted agent phones that run the ``U()`` gosub's
``agent_answered`` AGI as Asterisk does, and the real routing state (Redis) and database."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.routing import AgentState, Entry, EntryKind
from callcenter.routing.store import Caller as Waiter
from callcenter.settings import Settings
from callcenter.sim import Caller, HangUp
from callcenter.sim.agi_client import SimAgiChannel
from callcenter.sim.calls import agi_env
from callcenter.sim.config import ContextSpec
from callcenter.telephony import names
from callcenter.voice.service import routing_rounds
from callcenter.voice.to_agent import dial_args
from tests.agentlab import (
    Citizen,
    Lab,
    agent_lab,
    channel,
    eventually,
    gosub,
    heard_in_order,
    make_line,
    occupy,
    played,
)

pytestmark = pytest.mark.timeout(60)

PHONE = "+218912345678"


# -- the lab (tests/agentlab.py) ---------------------------------------------------------------

LabFactory = Callable[..., Awaitable[Lab]]


@pytest.fixture
async def lab(engine: AsyncEngine, redis: aioredis.Redis, settings: Settings) -> AsyncIterator[LabFactory]:
    """``await lab(queues={"general": {...}}, endpoints=["PJSIP/agent101"], **settings)``."""
    async with agent_lab(engine, redis, settings) as build:
        yield build


# -- a caller put through -------------------------------------------------------------------------


async def test_a_caller_waits_hears_place_and_wait_is_put_through_and_rates_the_call(
    lab: LabFactory,
) -> None:
    line = await lab(endpoints=["PJSIP/agent101"])
    others = await occupy(line, "PJSIP/agent101", waiting=2)
    citizen = Citizen({"greeting": "0", "rate-call": "4"})
    states: list[AgentState] = []

    async def during_call() -> None:
        states.append(await line.state("PJSIP/agent101"))

    session, phones = line.session(citizen)
    phones.plan = {"PJSIP/agent101": ["answer"]}
    phones.during_call = during_call
    call = asyncio.create_task(session.run("127.0.0.1", line.port))

    async def announced() -> bool:
        return "hold-music" in played(session)

    await eventually(announced)
    # third in line; one agent staffed (busy) and no handling times yet: 3 x 240 s = 12 minutes
    assert heard_in_order(
        session, "please-hold", "position-you-are", "ord-3", "position-in-line", "wait-expected", "num-12-f",
        "noun-minute", "hold-music",
    )  # fmt: skip
    for entry_id in reversed(others):  # the others hang up: the agent is free, our caller next
        await line.acd.leave(entry_id)
    await asyncio.wait_for(call, 20)

    [queued] = [e for e in await line.events("entry.queued") if e.entry not in others]
    agent = line.agents["PJSIP/agent101"]
    assert phones.dials == [dial_args("PJSIP/agent101", 20, queued.entry, agent)]
    assert f'EXEC Dial "PJSIP/agent101,20,U(agent-answered^{queued.entry}^{agent})"' in session.commands
    assert re.fullmatch(r"[0-9a-f]{32}", queued.entry)
    assert states == [AgentState.ON_CALL]  # marked by the gosub while the call lasts
    assert await line.state("PJSIP/agent101") is AgentState.WRAP_UP
    [rated] = await line.events("call.rated")
    assert (rated.entry, rated.agent, rated.queue, rated.data["rating"]) == (
        queued.entry,
        agent,
        "general",
        4,
    )
    assert heard_in_order(session, "rate-call", "thanks-rating", "goodbye")
    assert session.commands[-1] == "HANGUP"
    [row] = await line.rows(models.Call)
    assert (row.outcome, row.caller) == ("connected", PHONE)
    assert rated.data["call"] == row.id
    [announced] = await line.events("entry.announced")  # logged, to be held against the wait
    assert (announced.entry, announced.data) == (
        queued.entry, {"position": 3, "expected_wait": 720.0, "minutes": 12},
    )  # fmt: skip
    kinds = [e.kind for e in await line.events() if e.entry == queued.entry and e.kind != "entry.announced"]
    assert kinds[:2] == ["entry.queued", "agent.state"] and "entry.connected" in kinds
    assert kinds.index("entry.offered") < kinds.index("entry.connected") < kinds.index("entry.ended")
    assert queued.data["language"] == "ar"


async def test_a_caller_who_hangs_up_while_the_agent_rings_frees_the_agent_at_once(lab: LabFactory) -> None:
    line = await lab(endpoints=["PJSIP/agent101"])
    await line.ready("PJSIP/agent101")
    citizen = Citizen({"greeting": "0"})
    session, phones = line.session(citizen)
    phones.plan = {"PJSIP/agent101": ["caller_hangs_up"]}
    ringing: list[AgentState] = []

    async def while_ringing() -> None:
        ringing.append(await line.state("PJSIP/agent101"))

    phones.while_ringing = while_ringing
    await session.run("127.0.0.1", line.port)

    assert ringing == [AgentState.RINGING]
    assert await line.state("PJSIP/agent101") is AgentState.READY
    snap = await line.acd.store.snapshot()
    assert snap.entries == {} and snap.outcomes == {}
    assert snap.agents[line.agents["PJSIP/agent101"]].entry is None
    [left] = await line.events("entry.left")
    assert left.data["reason"] == "abandoned"
    [row] = await line.rows(models.Call)
    assert row.outcome == "abandoned"


async def test_an_agent_who_does_not_answer_is_missed_and_the_next_agent_is_rung(lab: LabFactory) -> None:
    line = await lab(endpoints=["PJSIP/agent101", "PJSIP/agent102"])
    await line.ready("PJSIP/agent101", "PJSIP/agent102")  # 101 idle longest: rung first
    citizen = Citizen({"greeting": "0", "rate-call": None})
    session, phones = line.session(citizen)
    phones.plan = {"PJSIP/agent101": ["noanswer"], "PJSIP/agent102": ["answer"]}
    await session.run("127.0.0.1", line.port)

    assert [d.split(",", 1)[0] for d in phones.dials] == ["PJSIP/agent101", "PJSIP/agent102"]
    record = await line.acd.store.agent(line.agents["PJSIP/agent101"])
    assert record is not None and record.agent.state is AgentState.MISSED
    [missed] = await line.events("entry.missed")
    assert (missed.agent, missed.data["reason"]) == (line.agents["PJSIP/agent101"], "NOANSWER")
    assert await line.state("PJSIP/agent102") is AgentState.WRAP_UP
    [connected] = await line.events("entry.connected")
    assert connected.entry == missed.entry
    assert await line.events("call.rated") == []  # silence: no rating
    [row] = await line.rows(models.Call)
    assert row.outcome == "connected"


@pytest.mark.parametrize("status", ["busy", "unavailable"])
async def test_a_busy_or_unreachable_phone_is_missed_with_its_dialstatus(
    lab: LabFactory, status: str
) -> None:
    line = await lab(endpoints=["PJSIP/agent101", "PJSIP/agent102"])
    await line.ready("PJSIP/agent101", "PJSIP/agent102")
    session, phones = line.session(Citizen({"greeting": "0"}))
    phones.plan = {"PJSIP/agent101": [status], "PJSIP/agent102": ["answer"]}
    await session.run("127.0.0.1", line.port)
    [missed] = await line.events("entry.missed")
    assert missed.data["reason"] == {"busy": "BUSY", "unavailable": "CHANUNAVAIL"}[status]


@pytest.mark.parametrize("gosub_runs", [True, False])
@pytest.mark.parametrize("caller_hangs_up", [True, False])
async def test_an_answered_call_ends_in_wrap_up_whoever_hangs_up_with_or_without_the_gosub(
    lab: LabFactory, gosub_runs: bool, caller_hangs_up: bool
) -> None:
    """Dial interrupted by the caller's hangup after the agent answered: the call ends (wrap-up),
    it is not an abandonment; without the gosub, DIALSTATUS=ANSWER marks the agent on call."""
    line = await lab(endpoints=["PJSIP/agent101"])
    await line.ready("PJSIP/agent101")
    session, phones = line.session(Citizen({"greeting": "0"}))
    phones.plan = {"PJSIP/agent101": ["answer_caller_hangs_up" if caller_hangs_up else "answer"]}
    phones.gosub = gosub_runs
    await session.run("127.0.0.1", line.port)

    [connected] = await line.events("entry.connected")
    assert connected.agent == line.agents["PJSIP/agent101"]
    assert await line.state("PJSIP/agent101") is AgentState.WRAP_UP
    assert await line.events("entry.left") == []
    assert [e.kind for e in await line.events("entry.ended")] == ["entry.ended"]
    [row] = await line.rows(models.Call)
    assert row.outcome == "connected"


# -- waiting --------------------------------------------------------------------------------------


async def test_garbage_keys_while_waiting_are_ignored(lab: LabFactory) -> None:
    line = await lab(endpoints=["PJSIP/agent101"])
    others = await occupy(line, "PJSIP/agent101", waiting=0)
    citizen = Citizen({"greeting": "0", "hold-music": ["7", "#", "*", "1", "9", "0"]})
    session, phones = line.session(citizen)
    phones.plan = {"PJSIP/agent101": ["answer"]}
    call = asyncio.create_task(session.run("127.0.0.1", line.port))

    async def keys_used() -> bool:
        return not citizen.plan["hold-music"]

    await eventually(keys_used)
    await line.acd.leave(others[0])
    await asyncio.wait_for(call, 20)

    holds = [c for c in session.commands if "hold-music" in c]
    assert len(holds) >= 6 and all(c.endswith(' ""') for c in holds)  # no key ends a piece
    assert not {"invalid-input", "callback-booked", "too-many-attempts"} & set(played(session))
    assert await line.rows(models.Callback) == []
    [row] = await line.rows(models.Call)
    assert row.outcome == "connected"


async def test_nobody_staffed_is_said_honestly_and_a_callback_keeps_the_place(lab: LabFactory) -> None:
    line = await lab(queues={"general": {"callback_after": 600}}, endpoints=["PJSIP/agent101"])
    citizen = Citizen({"greeting": "0", "callback-keep-place": "1"})
    session, _ = await line.call(citizen)

    assert heard_in_order(session, "please-hold", "you-are-next", "no-agent-now", "callback-keep-place")
    assert "wait-expected" not in played(session)
    [queued] = await line.events("entry.queued")
    [callback] = await line.rows(models.Callback)
    assert (callback.entry, callback.queue, callback.phone, callback.status) == (
        queued.entry, "general", PHONE, "pending",
    )  # fmt: skip
    assert callback.enqueued_at == pytest.approx(queued.data["enqueued_at"])
    snap = await line.acd.store.snapshot()
    waiting = snap.entries[queued.entry]
    assert waiting.entry.kind is EntryKind.CALLBACK
    assert waiting.entry.enqueued_at == pytest.approx(queued.data["enqueued_at"])  # the same place
    assert (waiting.caller.callback_id, waiting.caller.channel) == (callback.id, "")
    [ticket] = await line.rows(models.Ticket)
    assert (ticket.kind, ticket.callback, ticket.phone) == ("callback", True, PHONE)
    digits = f"1415{ticket.id:06d}"
    assert heard_in_order(session, "callback-booked", *(f"num-{d}" for d in digits), "goodbye")
    [booked] = await line.events("callback.booked")
    assert booked.data == {"callback": callback.id, "ticket": ticket.id, "call": ticket.call_id}
    [row] = await line.rows(models.Call)
    assert (row.outcome, row.id) == ("callback", ticket.call_id)
    assert await line.events("entry.left") == []
    # the reference by SMS too, through the gateway, in the caller's language
    [sms] = [m for m in await line.rows(models.Message) if m.direction == "out"]
    assert (sms.phone, sms.status, sms.gateway_id) == (PHONE, "sent", f"svc:callback:{callback.id}")
    assert f"1415-{ticket.id:06d}" in sms.body and "تم حجز معاودة الاتصال" in sms.body


async def test_a_second_callback_request_updates_the_first_and_keeps_the_earlier_place(
    lab: LabFactory,
) -> None:
    line = await lab(endpoints=[])
    await line.call(Citizen({"greeting": "0", "callback-keep-place": "1"}))
    second, _ = await line.call(Citizen({"greeting": "9", "main-menu": "0", "callback-keep-place": "1"}))

    [callback] = await line.rows(models.Callback)
    [first, again] = await line.events("entry.queued")
    assert callback.entry == first.entry and callback.language == "en"
    snap = await line.acd.store.snapshot()
    assert list(snap.entries) == [first.entry]
    assert snap.entries[first.entry].entry.enqueued_at == pytest.approx(first.data["enqueued_at"])
    [left] = await line.events("entry.left")
    assert (left.entry, left.data["reason"]) == (again.entry, "callback_merged")
    [ticket] = await line.rows(models.Ticket)  # the same reference, read out again
    assert heard_in_order(second, "callback-booked", *(f"num-{d}" for d in f"1415{ticket.id:06d}"))
    assert [e.kind for e in await line.events() if e.kind.startswith("callback.")] == [
        "callback.booked", "callback.updated",
    ]  # fmt: skip


async def test_the_callback_offer_comes_after_the_queues_callback_after(lab: LabFactory) -> None:
    line = await lab(queues={"general": {"callback_after": 0}}, endpoints=["PJSIP/agent101"])
    others = await occupy(line, "PJSIP/agent101", waiting=1)
    citizen = Citizen({"greeting": "0", "hold-music": ["5", "1"]})
    session, _ = await line.call(citizen)
    assert heard_in_order(session, "position-you-are", "ord-2", "callback-keep-place", "hold-music")
    assert [c.rsplit(" ", 1)[-1] for c in session.commands if "hold-music" in c] == ['"1"', '"1"']
    assert "callback-booked" in played(session)
    [callback] = await line.rows(models.Callback)
    snap = await line.acd.store.snapshot()
    assert snap.entries[callback.entry].entry.kind is EntryKind.CALLBACK
    assert others[0] in snap.outcomes  # the other caller keeps the agent


async def test_an_agent_free_as_the_caller_presses_1_takes_the_call_instead(lab: LabFactory) -> None:
    line = await lab(queues={"general": {"callback_after": 0}}, endpoints=["PJSIP/agent101"])
    original = line.acd.to_callback

    async def agent_ready_first(entry: str, callback_id: int) -> None:
        line.acd.to_callback = original  # type: ignore[method-assign]
        await line.ready("PJSIP/agent101")
        await line.acd.round()  # offered before the callback is booked
        await original(entry, callback_id)

    line.acd.to_callback = agent_ready_first  # type: ignore[method-assign]
    session, phones = line.session(Citizen({"greeting": "0", "callback-keep-place": "1"}))
    phones.plan = {"PJSIP/agent101": ["answer"]}
    await session.run("127.0.0.1", line.port)

    assert len(phones.dials) == 1 and "callback-booked" not in played(session)
    assert await line.rows(models.Callback) == [] and await line.rows(models.Ticket) == []
    [row] = await line.rows(models.Call)
    assert row.outcome == "connected"


async def test_a_full_queue_offers_a_callback_that_keeps_the_arrival_place(lab: LabFactory) -> None:
    line = await lab(queues={"general": {"max_size": 0, "on_full": "callback"}}, endpoints=[])
    session, _ = await line.call(Citizen({"greeting": "0", "callback-press-1": "1"}))
    assert heard_in_order(session, "queue-full", "callback-press-1", "callback-booked", "goodbye")
    [refused] = await line.events("entry.refused")
    [callback] = await line.rows(models.Callback)
    snap = await line.acd.store.snapshot()
    assert snap.entries[callback.entry].entry.kind is EntryKind.CALLBACK and callback.entry == refused.entry


async def test_a_full_queue_with_a_message_ends_politely(lab: LabFactory) -> None:
    line = await lab(queues={"general": {"max_size": 0, "on_full": "message"}}, endpoints=[])
    session, _ = await line.call(Citizen({"greeting": "0"}))
    assert heard_in_order(session, "queue-full", "call-later", "goodbye")
    assert session.commands[-1] == "HANGUP"
    assert await line.rows(models.Callback) == [] and await line.rows(models.Ticket) == []
    [row] = await line.rows(models.Call)
    assert row.outcome == "answered"


async def test_the_maximum_wait_ends_in_a_callback_offer(lab: LabFactory) -> None:
    line = await lab(queues={"general": {"max_wait": 0}}, endpoints=[])
    session, _ = await line.call(Citizen({"greeting": "0", "callback-press-1": [None, "1"]}))
    assert heard_in_order(session, "wait-too-long", "callback-press-1", "callback-press-1", "callback-booked")
    [overflowed] = await line.events("entry.overflowed")
    [callback] = await line.rows(models.Callback)
    assert callback.entry == overflowed.entry
    snap = await line.acd.store.snapshot()
    assert snap.outcomes == {} and snap.entries[callback.entry].entry.kind is EntryKind.CALLBACK


async def test_a_withheld_number_is_never_offered_a_callback(lab: LabFactory) -> None:
    line = await lab(queues={"general": {"max_wait": 0}}, endpoints=[])
    session, _ = await line.call(Citizen({"greeting": "0"}, number=""))
    assert heard_in_order(session, "wait-too-long", "call-later", "goodbye")
    assert "callback-press-1" not in played(session)


async def test_a_caller_who_hangs_up_while_waiting_leaves_the_line(lab: LabFactory) -> None:
    line = await lab(endpoints=[])
    await line.call(Citizen({"greeting": "0", "hold-music": [None, HangUp()]}))
    snap = await line.acd.store.snapshot()
    assert snap.entries == {}
    [left] = await line.events("entry.left")
    assert left.data["reason"] == "abandoned"
    [row] = await line.rows(models.Call)
    assert row.outcome == "abandoned"


async def test_an_offer_withdrawn_before_the_phone_rings_puts_the_caller_back_in_line(
    lab: LabFactory,
) -> None:
    line = await lab(endpoints=["PJSIP/agent101", "PJSIP/agent102"])
    await line.ready("PJSIP/agent101")
    original = line.acd.ringing

    async def agent_leaves_first(entry: str, agent: str) -> Any:
        line.acd.ringing = original  # type: ignore[method-assign]
        await line.acd.agent_state(agent, AgentState.OFFLINE)  # the desk logs out while reserved
        await line.ready("PJSIP/agent102")
        return await original(entry, agent)

    line.acd.ringing = agent_leaves_first  # type: ignore[method-assign]
    session, phones = line.session(Citizen({"greeting": "0"}))
    phones.plan = {"PJSIP/agent102": ["answer"]}
    await session.run("127.0.0.1", line.port)

    assert [d.split(",", 1)[0] for d in phones.dials] == ["PJSIP/agent102"]
    [first] = await line.events("entry.queued")
    [again] = await line.events("entry.requeued")  # put back by the store, in the same write
    assert first.entry == again.entry
    assert again.data["enqueued_at"] == pytest.approx(first.data["enqueued_at"])  # the same place
    assert await line.state("PJSIP/agent102") is AgentState.WRAP_UP


async def test_an_entry_lost_from_the_routing_state_comes_back_at_its_place(
    lab: LabFactory, redis: aioredis.Redis
) -> None:
    line = await lab(endpoints=["PJSIP/agent101"])
    session, phones = line.session(Citizen({"greeting": "0"}))
    phones.plan = {"PJSIP/agent101": ["answer"]}
    call = asyncio.create_task(session.run("127.0.0.1", line.port))

    async def holding() -> bool:
        return "hold-music" in played(session)

    await eventually(holding)
    [queued] = await line.events("entry.queued")
    await redis.delete("acd:entries", "acd:announced")  # as if Redis had restarted empty

    async def back() -> bool:
        return len(await line.events("entry.queued")) == 2

    await eventually(back)
    await line.ready("PJSIP/agent101")
    await asyncio.wait_for(call, 20)
    [_, again] = await line.events("entry.queued")
    assert again.data["enqueued_at"] == pytest.approx(queued.data["enqueued_at"])
    [row] = await line.rows(models.Call)
    assert row.outcome == "connected"


async def test_an_entry_that_cannot_be_put_back_ends_in_a_ticket_not_a_silent_loop(
    lab: LabFactory, redis: aioredis.Redis
) -> None:
    line = await lab(endpoints=[])
    original = line.acd.enqueue

    async def only_once(entry: Entry, caller: Waiter) -> Any:
        enqueued = await original(entry, caller)
        line.acd.enqueue = lambda *_: asyncio.sleep(0)  # type: ignore[method-assign,assignment,return-value]
        await redis.hdel("acd:entries", entry.id)  # gone at once, and every put-back fails
        return enqueued

    line.acd.enqueue = only_once  # type: ignore[method-assign]
    session, _ = await line.call(Citizen({"greeting": "0"}))
    assert heard_in_order(session, "please-hold", "agents-busy", "callback-stored")
    [ticket] = await line.rows(models.Ticket)
    assert ticket.kind == "callback"


async def test_routing_lost_while_waiting_keeps_the_request_as_a_ticket(lab: LabFactory) -> None:
    line = await lab(endpoints=[])

    async def redis_gone() -> Any:
        raise RedisConnectionError("Connection refused")

    original = line.acd.enqueue

    async def enqueue_then_fail(entry: Entry, caller: Waiter) -> Any:
        enqueued = await original(entry, caller)
        line.acd.round = redis_gone  # type: ignore[method-assign]
        return enqueued

    line.acd.enqueue = enqueue_then_fail  # type: ignore[method-assign]
    session, _ = await line.call(Citizen({"greeting": "0"}))
    assert heard_in_order(session, "please-hold", "agents-busy", "callback-stored", "request-recorded")
    [ticket] = await line.rows(models.Ticket)
    assert (ticket.kind, ticket.callback) == ("callback", True)
    snap = await line.acd.store.snapshot()
    assert snap.entries == {}  # the entry left the line


# -- without a queue ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key", "kind"),
    [
        ({"queue_for_key_0": "nosuch"}, "0", "callback"),
        ({"queue_for_key_2": None}, "2", "service"),
        ({"queue_ticket_when_unstaffed": ["general"]}, "0", "callback"),
    ],
)
async def test_without_a_queue_to_wait_in_a_ticket_is_stored_as_before(
    lab: LabFactory, overrides: dict[str, Any], key: str, kind: str
) -> None:
    line = await lab(endpoints=["PJSIP/agent101"], **overrides)
    session, _ = await line.call(Citizen({"greeting": key}))
    [ticket] = await line.rows(models.Ticket)
    assert (ticket.kind, ticket.callback) == (kind, True)
    assert heard_in_order(session, "agents-busy", "callback-stored", "request-recorded")
    assert await line.events("entry.queued") == []


async def test_agent_answered_without_arguments_changes_nothing(lab: LabFactory) -> None:
    line = await lab(endpoints=["PJSIP/agent101"])
    ch = channel("PJSIP/agent101-00000001", names.CTX_AGENT_ANSWERED, "s")
    spec = ContextSpec((), names.AGI_AGENT_ANSWERED, ())
    env = agi_env(ch, "agi://127.0.0.1/agent_answered", spec, "PJSIP", "22.9.0", "unknown")
    session = SimAgiChannel(ch, env, caller=Caller())
    await session.run("127.0.0.1", line.port)
    assert session.commands == []  # no HANGUP: the gosub goes on to Return() and the bridge
    await gosub(line.port, uuid.uuid4().hex, line.agents["PJSIP/agent101"])  # a stale entry
    assert await line.state("PJSIP/agent101") is AgentState.OFFLINE


# -- the telephony process's rounds ----------------------------------------------------------------


async def test_the_process_round_offers_while_no_hold_loop_runs(
    engine: AsyncEngine, redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    agents = await make_line(engine, {"general": {}}, ["PJSIP/agent101"])
    acd = Acd(engine, redis)
    await acd.load()
    [agent] = agents.values()
    await acd.agent_state(agent, AgentState.READY)
    await acd.store.touch(agent, ttl_s=60)
    snap = await acd.store.snapshot()
    await acd.enqueue(Entry("e1", "general", snap.now), Waiter())

    calls = {"n": 0}
    original = acd.round

    async def flaky_round() -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return await original()

    acd.round = flaky_round  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(routing_rounds(acd, stop, every_s=0.01))

    async def offered() -> bool:
        return await acd.store.outcome("e1") is not None

    await eventually(offered)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert "routing round failed" in caplog.text  # logged, and the rounds went on
    outcome = await acd.store.outcome("e1")
    assert outcome is not None and (outcome.kind, outcome.agent) == ("offer", agent)
