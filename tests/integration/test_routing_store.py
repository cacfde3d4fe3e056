"""The shared routing store on a real Redis: offers, frees, misses, the lock, and two processes
deciding against one set of agents without ever double-routing."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.errors import NotFound
from callcenter.routing import AgentState, Entry, EntryKind, Step
from callcenter.routing.config import queue_settings, skills_from_list
from callcenter.routing.model import AgentTransitionError
from callcenter.routing.store import Caller, LockLost, RoutingStore

SERVICES = queue_settings("services", service="services", config={"max_size": 3})
GENERAL = queue_settings("general", service="general", config={"steps": [[0, 1], [30, 3]]})
BOTH = skills_from_list([["service", "services", 1], ["service", "general", 1]])


async def staffed_store(redis: aioredis.Redis, agents: int, *, prefix: str = "acd") -> RoutingStore:
    store = RoutingStore(redis, prefix=prefix)
    await store.configure(
        [SERVICES, GENERAL], {str(i): (f"PJSIP/a{i}", f"Agent {i}", BOTH) for i in range(agents)}
    )
    for i in range(agents):
        await store.agent_state(str(i), AgentState.READY)
    return store


def entry(n: int, queue: str = "services", at: float = 0.0) -> Entry:
    return Entry(f"e{n}", queue, at + n)


async def test_a_waiting_caller_is_offered_to_the_longest_idle_agent(redis: aioredis.Redis) -> None:
    store = await staffed_store(redis, 2)  # agent 0 went ready first: idle longest
    await store.enqueue(entry(1), Caller(phone="+218911234567", language="ar", path=("0",)))

    routed = await store.round()

    assert [(o.entry, o.agent) for o in routed.decisions.offers] == [("e1", "0")]
    snap = await store.snapshot()
    assert snap.agents["0"].agent.state is AgentState.RESERVED
    assert snap.agents["0"].entry == "e1"
    assert snap.agents["0"].caller is not None and snap.agents["0"].caller.path == ("0",)
    assert "e1" not in snap.entries
    outcome = await store.outcome("e1")
    assert outcome is not None and outcome.kind == "offer" and outcome.endpoint == "PJSIP/a0"
    assert [e.kind for e in routed.events] == ["agent.state", "entry.offered"]


async def test_a_caller_who_hangs_up_while_the_agent_rings_frees_the_agent_at_once(
    redis: aioredis.Redis,
) -> None:
    store = await staffed_store(redis, 1)
    idle_since = (await store.snapshot()).agents["0"].agent.idle_since
    await store.enqueue(entry(1), Caller())
    await store.round()
    await store.ringing("e1", "0")

    events = await store.leave("e1")

    agent = (await store.snapshot()).agents["0"]
    assert agent.agent.state is AgentState.READY and agent.entry is None
    assert agent.agent.idle_since == idle_since  # a withdrawn offer keeps the idle place
    assert await store.outcome("e1") is None
    assert "entry.left" in [e.kind for e in events]


async def test_a_missed_offer_puts_the_agent_out_and_the_caller_back_in_the_same_place(
    redis: aioredis.Redis,
) -> None:
    store = await staffed_store(redis, 2)
    await store.agent_state("1", AgentState.PAUSED, reason="break")
    await store.enqueue(Entry("e1", "services", 100.0), Caller())
    await store.round()
    await store.ringing("e1", "0")

    await store.missed("e1", "0", reason="NOANSWER")

    snap = await store.snapshot()
    assert snap.agents["0"].agent.state is AgentState.MISSED
    assert snap.entries["e1"].entry.enqueued_at == pytest.approx(100.0)
    await store.agent_state("1", AgentState.READY)
    routed = await store.round()
    assert [(o.entry, o.agent) for o in routed.decisions.offers] == [("e1", "1")]


async def test_the_call_goes_from_ringing_to_on_call_to_wrap_up_which_needs_a_disposition(
    redis: aioredis.Redis,
) -> None:
    store = await staffed_store(redis, 1)
    await store.enqueue(entry(1), Caller())
    await store.round()
    await store.ringing("e1", "0")
    await store.connected("e1", "0")
    assert (await store.agent("0")).agent.state is AgentState.ON_CALL  # type: ignore[union-attr]

    await store.ended("e1", "0")

    assert (await store.agent("0")).agent.state is AgentState.WRAP_UP  # type: ignore[union-attr]
    with pytest.raises(AgentTransitionError):
        await store.agent_state("0", AgentState.READY)
    await store.agent_state("0", AgentState.READY, disposition="resolved")
    assert (await store.agent("0")).agent.state is AgentState.READY  # type: ignore[union-attr]


async def test_a_late_event_about_an_older_call_changes_nothing(redis: aioredis.Redis) -> None:
    store = await staffed_store(redis, 1)
    await store.enqueue(entry(1), Caller())
    await store.round()

    change = await store.connected("old-entry", "0")

    assert change.events == ()
    assert (await store.agent("0")).agent.state is AgentState.RESERVED  # type: ignore[union-attr]


async def test_a_full_queue_refuses_a_caller_but_never_a_callback(redis: aioredis.Redis) -> None:
    store = RoutingStore(redis)
    await store.configure([SERVICES], {})
    for n in range(3):
        assert (await store.enqueue(entry(n), Caller())).refused is None

    refused = await store.enqueue(entry(9), Caller())
    callback = await store.enqueue(Entry("cb", "services", 1.0, kind=EntryKind.CALLBACK), Caller())

    assert refused.refused is not None and refused.refused.reason == "full"
    assert callback.refused is None


async def test_a_callback_keeps_the_callers_place(redis: aioredis.Redis) -> None:
    store = RoutingStore(redis)
    await store.configure([SERVICES], {"0": ("PJSIP/a0", "A", BOTH)})
    await store.enqueue(Entry("early", "services", 10.0), Caller())
    await store.enqueue(Entry("late", "services", 20.0), Caller())
    await store.to_callback("early", 7)
    await store.agent_state("0", AgentState.READY)

    routed = await store.round()

    assert [(o.entry, o.kind) for o in routed.decisions.offers] == [("early", EntryKind.CALLBACK)]


async def test_configuring_again_keeps_agent_states_and_drops_only_offline_agents(
    redis: aioredis.Redis,
) -> None:
    store = await staffed_store(redis, 2)
    await store.agent_state("1", AgentState.OFFLINE)

    await store.configure([SERVICES], {"0": ("PJSIP/new", "Renamed", BOTH)})

    snap = await store.snapshot()
    assert set(snap.agents) == {"0"}
    assert snap.agents["0"].agent.state is AgentState.READY and snap.agents["0"].endpoint == "PJSIP/new"


async def test_a_change_whose_lock_expired_is_not_written(redis: aioredis.Redis) -> None:
    store = await staffed_store(redis, 1)
    await store.enqueue(entry(1), Caller())
    with pytest.raises(LockLost):
        async with store._locked() as (_snap, write):
            write.drop_entry("e1")
            await redis.delete(store.keys.lock)  # expired; another process may hold it now
    assert "e1" in (await store.snapshot()).entries


async def test_an_unknown_agent_is_not_found(redis: aioredis.Redis) -> None:
    store = await staffed_store(redis, 1)
    with pytest.raises(NotFound):
        await store.agent_state("nobody", AgentState.READY)


async def test_a_desk_not_heard_of_in_time_is_lost_contact(redis: aioredis.Redis) -> None:
    store = await staffed_store(redis, 2)
    await store.touch("0", ttl_s=60)
    await store.touch("1", ttl_s=-1)

    events = await store.sweep_contact()

    snap = await store.snapshot()
    assert snap.agents["0"].agent.state is AgentState.READY
    assert snap.agents["1"].agent.state is AgentState.LOST_CONTACT
    assert [(e.agent, e.data["to"]) for e in events] == [("1", "lost_contact")]
    await store.enqueue(entry(1), Caller())
    routed = await store.round()
    assert [o.agent for o in routed.decisions.offers] == ["0"]


async def test_two_processes_share_one_set_of_agents_without_double_routing(redis_db: int) -> None:
    """Two stores on their own connections (two ``agi`` processes) enqueue, decide, answer and
    free concurrently; every entry is offered once and no agent ever holds two callers."""
    from tests.conftest import REDIS_URL

    clients = [aioredis.from_url(f"{REDIS_URL}/{redis_db}") for _ in range(2)]
    try:
        await clients[0].flushdb()
        stores = [RoutingStore(c) for c in clients]
        await staffed_store(clients[0], 5)
        offered: list[tuple[str, str]] = []
        holding: dict[str, str] = {}
        double: list[str] = []

        async def process(n: int, store: RoutingStore) -> None:
            rng = random.Random(n)
            for k in range(60):
                await store.enqueue(Entry(f"p{n}-{k}", rng.choice(["services", "general"]), k), Caller())
                routed = await store.round()
                for offer in routed.decisions.offers:
                    offered.append((offer.entry, offer.agent))
                    if offer.agent in holding:
                        double.append(offer.agent)
                    holding[offer.agent] = offer.entry
                for agent in list(holding):
                    if rng.random() < 0.5 and (held := holding.pop(agent, None)) is not None:
                        await store.connected(held, agent)
                        await store.ended(held, agent)
                        await store.agent_state(agent, AgentState.READY, disposition="done")
                await asyncio.sleep(0)

        await asyncio.gather(*(process(n, s) for n, s in enumerate(stores)))
        entries = [e for e, _ in offered]
        assert len(entries) == len(set(entries)), "an entry was offered twice"
        assert double == []
        assert len(entries) > 20
    finally:
        for c in clients:
            await c.aclose()


def test_two_event_loops_contend_for_the_lock_in_redis_and_never_double_route(redis_db: int) -> None:
    """Two event loops on two threads (as two processes: each has its own local queue, so
    only the lock in Redis keeps them apart) decide and answer concurrently: every entry is
    offered once, no agent ever holds two callers, and the rounds' holds are recorded."""
    import threading

    from callcenter.routing.store import ROUND_TIMES
    from tests.conftest import REDIS_URL

    async def prepare() -> None:
        client = aioredis.from_url(f"{REDIS_URL}/{redis_db}")
        await client.flushdb()
        await staffed_store(client, 8)
        await client.aclose()

    asyncio.run(prepare())
    offered: list[tuple[str, str]] = []
    holding: dict[str, str] = {}
    double: list[str] = []
    guard = threading.Lock()
    before = len(ROUND_TIMES.samples)

    async def process(n: int) -> None:
        client = aioredis.from_url(f"{REDIS_URL}/{redis_db}")
        store, rng = RoutingStore(client), random.Random(n)
        try:
            for k in range(80):
                await store.enqueue(Entry(f"t{n}-{k}", rng.choice(["services", "general"]), k), Caller())
                routed = await store.round()
                with guard:
                    for offer in routed.decisions.offers:
                        offered.append((offer.entry, offer.agent))
                        if offer.agent in holding:
                            double.append(offer.agent)
                        holding[offer.agent] = offer.entry
                    done = [(a, holding.pop(a)) for a in list(holding) if rng.random() < 0.5]
                for agent, held in done:
                    await store.connected(held, agent)
                    await store.ended(held, agent)
                    await store.agent_state(agent, AgentState.READY, disposition="done")
        finally:
            await client.aclose()

    threads = [threading.Thread(target=asyncio.run, args=(process(n),)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    entries = [e for e, _ in offered]
    assert len(entries) == len(set(entries)) > 20, "an entry was offered twice"
    assert double == []
    assert len(ROUND_TIMES.samples) > before  # every round with callers recorded its hold


async def test_a_burst_of_changes_in_one_process_queues_rather_than_starving(redis: aioredis.Redis) -> None:
    """200 agents go Ready at once (a shift starting on one ``serve``): one at a time through
    the process's local queue, all within the lock's wait, none refused as busy."""
    store = RoutingStore(redis)
    await store.configure([SERVICES], {str(i): (f"PJSIP/a{i}", f"Agent {i}", BOTH) for i in range(200)})
    changes = await asyncio.gather(*(store.agent_state(str(i), AgentState.READY) for i in range(200)))
    assert all(c.after is not None and c.after.agent.state is AgentState.READY for c in changes)


async def test_every_change_is_appended_to_the_event_log(engine: AsyncEngine, redis: aioredis.Redis) -> None:
    acd = Acd(engine, redis)
    await acd.store.configure([SERVICES], {"0": ("PJSIP/a0", "A", BOTH)})
    await acd.agent_state("0", AgentState.READY)
    await acd.enqueue(entry(1), Caller())
    await acd.round()
    await acd.ringing("e1", "0")
    await acd.connected("e1", "0")
    await acd.ended("e1", "0")

    t = models.table(models.RoutingEvent)
    async with engine.connect() as conn:
        kinds = (await conn.execute(select(t.c.kind).order_by(t.c.id))).scalars().all()
        count = (await conn.execute(select(func.count()).select_from(t))).scalar_one()
    assert count == len(kinds)
    assert [k for k in kinds if k.startswith("entry.")] == [
        "entry.queued",
        "entry.offered",
        "entry.connected",
        "entry.ended",
    ]
    assert kinds.count("agent.state") == 5  # ready, reserved, ringing, on call, wrap-up
    # announced to the agent's desk and the wallboard
    assert await redis.xlen("live:desk:0") >= 5
    assert await redis.xlen("live:wallboard") >= 1


async def test_the_widening_step_lets_a_less_skilled_agent_take_a_long_wait(redis: aioredis.Redis) -> None:
    store = RoutingStore(redis)
    novice = skills_from_list([["service", "general", 3]])
    await store.configure([GENERAL], {"n": ("PJSIP/n", "Novice", novice)})
    await store.agent_state("n", AgentState.READY)
    now = (await store.snapshot()).now
    await store.enqueue(Entry("fresh", "general", now), Caller())
    assert (await store.round()).decisions.offers == ()
    await store.leave("fresh")
    await store.enqueue(Entry("old", "general", now - 31), Caller())
    assert [o.entry for o in (await store.round()).decisions.offers] == ["old"]
    assert GENERAL.queue.steps == (Step(0, 1), Step(30, 3))


async def test_postgresql_refuses_to_change_a_logged_event(pg: AsyncEngine, redis: aioredis.Redis) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    acd = Acd(pg, redis)
    await acd.store.configure([SERVICES], {"0": ("PJSIP/a0", "A", BOTH)})
    await acd.agent_state("0", AgentState.READY)
    for statement in ("UPDATE routing_event SET kind = 'x'", "DELETE FROM routing_event"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with pg.begin() as conn:
                await conn.execute(text(statement))


class RecordingAmi:
    def __init__(self) -> None:
        self.actions: list[dict[str, object]] = []

    async def originate(self, **action: object) -> str:
        self.actions.append(action)
        return "spy-1"


@pytest.mark.parametrize(("mode", "options"), [("listen", "qES"), ("whisper", "qESw"), ("barge", "qESB")])
async def test_a_supervisor_spies_on_the_agents_channel_only_while_the_call_lasts(
    redis: aioredis.Redis, mode: str, options: str
) -> None:
    from callcenter.desk.supervise import NoCallToSpy, SpyMode, spy

    store = await staffed_store(redis, 1)
    ami = RecordingAmi()
    with pytest.raises(NoCallToSpy):  # ready, not on a call
        await spy(ami, store, agent_id="0", supervisor_endpoint="PJSIP/sup1", mode=SpyMode(mode))
    await store.enqueue(entry(1), Caller())
    await store.round()
    await store.connected("e1", "0")

    await spy(ami, store, agent_id="0", supervisor_endpoint="PJSIP/sup1", mode=SpyMode(mode))

    assert ami.actions[0]["channel"] == "PJSIP/sup1"
    assert ami.actions[0]["application"] == "ChanSpy"
    assert ami.actions[0]["data"] == f"PJSIP/a0-,{options}"
    await store.ended("e1", "0")
    with pytest.raises(NoCallToSpy):  # the call has just ended
        await spy(ami, store, agent_id="0", supervisor_endpoint="PJSIP/sup1", mode=SpyMode(mode))
    assert len(ami.actions) == 1


async def test_an_agent_who_leaves_an_offer_puts_the_caller_back_in_their_place_at_once(
    redis: aioredis.Redis,
) -> None:
    store = await staffed_store(redis, 2)
    await store.agent_state("1", AgentState.PAUSED, reason="break")
    await store.enqueue(Entry("e1", "services", 100.0, priority=2), Caller(phone="+218911234567"))
    await store.round()

    change = await store.agent_state("0", AgentState.OFFLINE)  # the desk's button, mid-offer

    assert "entry.requeued" in [e.kind for e in change.events]
    snap = await store.snapshot()
    back = snap.entries["e1"]
    assert (back.entry.enqueued_at, back.entry.priority, back.entry.callback_offered) == (100.0, 2, False)
    assert back.caller.phone == "+218911234567"
    assert await store.outcome("e1") is None


async def test_a_missed_offer_keeps_whether_the_callback_was_offered(redis: aioredis.Redis) -> None:
    store = await staffed_store(redis, 1)
    await store.enqueue(Entry("e1", "services", 100.0), Caller())
    await store.round()
    await store.missed("e1", "0", reason="NOANSWER")

    assert (await store.snapshot()).entries["e1"].entry.callback_offered is False


async def test_callers_of_a_removed_queue_hear_a_message_and_the_other_queues_go_on(
    redis: aioredis.Redis,
) -> None:
    store = await staffed_store(redis, 1)
    await store.enqueue(Entry("orphan", "services", 1.0), Caller())
    await store.enqueue(Entry("kept", "general", 2.0), Caller())
    await store.configure([GENERAL], {"0": ("PJSIP/a0", "Agent 0", BOTH)})

    routed = await store.round()

    assert [o.entry for o in routed.decisions.offers] == ["kept"]
    told = await store.outcome("orphan")
    assert told is not None and (told.kind, told.outcome, told.reason) == ("overflow", "message", "closed")


# -- the kept copy: only what changed is read ---------------------------------------------------


def _modes(store: RoutingStore) -> list[str]:
    """Record how each read of ``store`` read the agents and entries: a round's read without
    the lock first (``peek:``), then the read under the lock."""
    seen: list[str] = []
    take, peek = store._take, store._peek

    def mode(found: Any) -> str:
        return str(found[5].decode() if isinstance(found[5], bytes) else found[5])

    def spy(*args: Any, **kwargs: Any) -> Any:
        found = take(*args, **kwargs)
        if found is not None:
            seen.append(mode(found))
        return found

    async def peek_spy(*args: Any, **kwargs: Any) -> Any:
        found = await peek(*args, **kwargs)
        seen.append("peek:" + mode(found))
        return found

    store._take = spy  # type: ignore[method-assign]
    store._peek = peek_spy  # type: ignore[method-assign, assignment]
    return seen


async def test_a_round_reads_only_the_agents_and_entries_changed_since_its_last_read(
    redis: aioredis.Redis,
) -> None:
    mine = await staffed_store(redis, 3)
    other = RoutingStore(redis)  # another process
    await mine.round()
    modes = _modes(mine)
    kept = (await mine.snapshot()).agents["2"]

    await other.agent_state("0", AgentState.PAUSED, reason="break")
    await other.enqueue(entry(1), Caller(phone="+218911234567"))
    routed = await mine.round()

    # what changed was decoded before the lock was taken: under it, nothing new to read
    assert modes == ["peek:delta", "same"]
    assert [(o.entry, o.agent) for o in routed.decisions.offers] == [("e1", "1")]  # 0 is paused
    snap = await mine.snapshot()
    assert snap.agents["2"] is kept  # untouched since: not decoded again
    assert snap.agents["0"].agent.state is AgentState.PAUSED
    await mine.round()
    assert modes == ["peek:delta", "same", "peek:same", "same"]  # nothing changed between the two


async def test_a_change_between_the_rounds_catch_up_and_its_lock_is_read_under_the_lock(
    redis: aioredis.Redis,
) -> None:
    mine = await staffed_store(redis, 2)
    await mine.round()
    await mine.enqueue(entry(1), Caller())
    modes = _modes(mine)
    catch_up = mine._catch_up

    async def another_process_pauses_agent_0() -> None:
        client = aioredis.Redis(**redis.connection_pool.connection_kwargs)
        try:
            await RoutingStore(client).agent_state("0", AgentState.PAUSED, reason="break")
        finally:
            await client.aclose()

    async def then_a_change() -> None:
        await catch_up()
        # its own event loop, so not behind this process's local lock (which the round holds)
        await asyncio.to_thread(asyncio.run, another_process_pauses_agent_0())

    mine._catch_up = then_a_change  # type: ignore[method-assign]

    routed = await mine.round()

    assert modes == ["peek:delta", "delta"]
    assert [(o.entry, o.agent) for o in routed.decisions.offers] == [("e1", "1")]


async def test_a_store_reads_everything_again_after_redis_was_emptied(redis: aioredis.Redis) -> None:
    mine = await staffed_store(redis, 2)
    await mine.round()
    await redis.flushdb()  # Redis restarted without its data
    other = await staffed_store(redis, 1)  # the state rebuilt, as many changes as before
    modes = _modes(mine)
    await other.enqueue(entry(1), Caller())

    routed = await mine.round()

    assert modes == ["peek:full", "same"]  # another epoch of the version
    assert [(o.entry, o.agent) for o in routed.decisions.offers] == [("e1", "0")]
    assert set((await mine.snapshot()).agents) == {"0"}


async def test_a_store_too_far_behind_the_log_reads_everything(redis: aioredis.Redis) -> None:
    from callcenter.routing.store import LOG_MAX

    mine = await staffed_store(redis, 2)
    await mine.round()
    other = RoutingStore(redis)
    for n in range(LOG_MAX // 2 + 1):  # two logged changes each
        await other.agent_state("1", AgentState.PAUSED, reason=f"r{n}")
        await other.agent_state("1", AgentState.READY)
    await other.agent_state("0", AgentState.OFFLINE)
    modes = _modes(mine)
    await other.enqueue(entry(1), Caller())

    routed = await mine.round()

    assert modes == ["peek:full", "same"]
    assert [(o.entry, o.agent) for o in routed.decisions.offers] == [("e1", "1")]


async def test_a_value_changed_behind_the_stores_back_is_read_again(redis: aioredis.Redis) -> None:
    """A hash whose size no longer matches the copy (a field deleted by hand) is read again at
    once, under the same lock; one changed in place is read again at the next full read."""
    import callcenter.routing.store as store_module

    mine = await staffed_store(redis, 2)
    await mine.round()
    await redis.hdel("acd:agents", "0")
    await mine.enqueue(entry(1), Caller())

    routed = await mine.round()

    assert [(o.entry, o.agent) for o in routed.decisions.offers] == [("e1", "1")]
    assert set((await mine.snapshot()).agents) == {"1"}

    other = await staffed_store(redis, 2, prefix="b")
    await other.round()
    raw = await redis.hget("b:agents", "1")
    await redis.hset("b:agents", "1", raw.replace(b'"ready"', b'"paused"'))  # type: ignore[union-attr]
    await other.enqueue(entry(2), Caller())
    store_module.FULL_READ_EVERY, before = 0, store_module.FULL_READ_EVERY
    try:
        routed = await other.round()
    finally:
        store_module.FULL_READ_EVERY = before
    assert [(o.entry, o.agent) for o in routed.decisions.offers] == [("e2", "0")]
