"""The routing core's invariants over generated states (Hypothesis).

The heap-based ``decide`` is also checked against a plain greedy reference written here the
slow way (every caller against every agent), so the fast path cannot drift from the rule.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.routing import (
    ANY,
    Agent,
    AgentState,
    Decisions,
    Entry,
    EntryKind,
    Queue,
    QueueStats,
    RoutingState,
    Selection,
    Skill,
    SkillKind,
    Step,
    apply_offers,
    decide,
)

SERVICES = ("water", "waste", "roads")
TOWNS = ("tripoli", "sabha")
LANGUAGES = ("ar", "en")
STEPS = (
    (Step(0, 3),),
    (Step(0, 1),),
    (Step(0, 1), Step(30, 2), Step(90, 3)),
    (Step(0, 2), Step(45, 3)),
)
# ready is drawn more often than the other states, so there is matching to do
STATES = (AgentState.READY,) * 6 + tuple(s for s in AgentState if s is not AgentState.READY)

profiles = settings(deadline=None, max_examples=150)


def _skill_lists(kind: SkillKind, values: tuple[str, ...]) -> st.SearchStrategy[list[Skill]]:
    return st.lists(
        st.builds(Skill, st.just(kind), st.sampled_from((*values, ANY)), st.integers(1, 3)), max_size=3
    )


# Built once: making strategies inside a draw is what makes generation slow.
SKILL_SETS = st.builds(
    lambda a, b, c: frozenset(a + b + c),
    _skill_lists(SkillKind.SERVICE, SERVICES),
    _skill_lists(SkillKind.MUNICIPALITY, TOWNS),
    _skill_lists(SkillKind.LANGUAGE, LANGUAGES),
)
QUEUES = st.builds(
    Queue,
    id=st.just("q"),  # numbered once drawn
    service=st.sampled_from(SERVICES),
    municipality=st.none() | st.sampled_from(TOWNS),
    language=st.none() | st.sampled_from(LANGUAGES),
    steps=st.sampled_from(STEPS),
    max_wait=st.none() | st.sampled_from((60.0, 200.0)),
    callback_after=st.none() | st.just(30.0),
    selection=st.sampled_from(list(Selection)),
)
AGENT_FIELDS = st.tuples(st.sampled_from(STATES), SKILL_SETS, st.integers(0, 40))  # small range: ties
ENTRY_FIELDS = st.tuples(
    st.integers(0, 3),  # queue index, folded onto the queues drawn
    st.integers(0, 300),
    st.integers(0, 2),
    st.sampled_from((EntryKind.CALL, EntryKind.CALL, EntryKind.CALLBACK)),
)


@st.composite
def routing_states(draw: st.DrawFn) -> tuple[RoutingState, float]:
    qs = tuple(replace(q, id=f"q{i}") for i, q in enumerate(draw(st.lists(QUEUES, min_size=1, max_size=4))))
    agents = tuple(
        Agent(f"a{i}", state, found, idle_since=float(idle))
        for i, (state, found, idle) in enumerate(draw(st.lists(AGENT_FIELDS, max_size=10)))
    )
    entries = tuple(
        Entry(f"e{i}", qs[q % len(qs)].id, float(at), priority=priority, kind=kind)
        for i, (q, at, priority, kind) in enumerate(draw(st.lists(ENTRY_FIELDS, max_size=14)))
    )
    stats = {q.id: QueueStats(aht=120.0, abandon_rate=0.1) for q in qs if draw(st.booleans())}
    return RoutingState(qs, entries, agents, stats), float(draw(st.integers(0, 400)))


# -- an independent statement of the rule ----------------------------------------------------------


def level_of(agent: Agent, queue: Queue) -> int | None:
    """The agent's level for the queue, from the skills, written without the core's helpers."""
    worst = 0
    for kind, wanted in (
        (SkillKind.SERVICE, queue.service),
        (SkillKind.MUNICIPALITY, queue.municipality),
        (SkillKind.LANGUAGE, queue.language),
    ):
        if wanted is None:
            continue
        levels = [s.level for s in agent.skills if s.kind is kind and s.value in (wanted, ANY)]
        if not levels:
            return None
        worst = max(worst, min(levels))
    return worst


def eligible(agent: Agent, entry: Entry, queue: Queue, now: float) -> bool:
    level = level_of(agent, queue)
    return (
        agent.state is AgentState.READY
        and level is not None
        and level <= queue.level_at(now - entry.enqueued_at)
    )


def in_order(entries: tuple[Entry, ...]) -> list[Entry]:
    return sorted(entries, key=lambda e: (-e.priority, e.enqueued_at, e.id))


def reference(state: RoutingState, now: float) -> list[tuple[str, str, int]]:
    """Each caller in order takes the best agent left for it: O(callers x agents)."""
    by_id = {q.id: q for q in state.queues}
    free = [a for a in state.agents if a.state is AgentState.READY]
    out: list[tuple[str, str, int]] = []
    for entry in in_order(state.entries):
        queue = by_id[entry.queue]
        fits = [(level_of(a, queue) or 0, a) for a in free if eligible(a, entry, queue, now)]
        if not fits:
            continue
        if queue.selection is Selection.LONGEST_IDLE:
            level, chosen = min(fits, key=lambda f: (f[1].idle_since, f[1].id))
        else:
            level, chosen = min(fits, key=lambda f: (f[0], f[1].idle_since, f[1].id))
        free.remove(chosen)
        out.append((entry.id, chosen.id, level))
    return out


def offered(decisions: Decisions) -> tuple[set[str], set[str]]:
    return {o.entry for o in decisions.offers}, {o.agent for o in decisions.offers}


# -- properties --------------------------------------------------------------------------------------


@profiles
@given(routing_states())
def test_decide_gives_the_same_offers_as_the_plain_greedy_rule(drawn: tuple[RoutingState, float]) -> None:
    state, now = drawn
    assert [(o.entry, o.agent, o.level) for o in decide(state, now).offers] == reference(state, now)


@profiles
@given(routing_states())
def test_no_agent_and_no_caller_is_offered_twice(drawn: tuple[RoutingState, float]) -> None:
    state, now = drawn
    offers = decide(state, now).offers
    assert len({o.agent for o in offers}) == len(offers)
    assert len({o.entry for o in offers}) == len(offers)


@profiles
@given(routing_states())
def test_only_ready_agents_qualified_at_the_callers_current_step_are_offered(
    drawn: tuple[RoutingState, float],
) -> None:
    state, now = drawn
    agents = {a.id: a for a in state.agents}
    entries = {e.id: e for e in state.entries}
    queues = {q.id: q for q in state.queues}
    for offer in decide(state, now).offers:
        entry, queue = entries[offer.entry], queues[offer.queue]
        assert entry.queue == offer.queue and entry.kind is offer.kind
        assert eligible(agents[offer.agent], entry, queue, now)
        assert offer.level == level_of(agents[offer.agent], queue)


@profiles
@given(routing_states())
def test_no_caller_ahead_waits_for_an_agent_who_took_someone_behind(
    drawn: tuple[RoutingState, float],
) -> None:
    """Priority, then wait, across every queue the agent serves."""
    state, now = drawn
    decisions = decide(state, now)
    entries_offered, _ = offered(decisions)
    agents = {a.id: a for a in state.agents}
    queues = {q.id: q for q in state.queues}
    order = in_order(state.entries)
    rank = {e.id: i for i, e in enumerate(order)}
    for offer in decisions.offers:
        for ahead in order[: rank[offer.entry]]:
            if ahead.id not in entries_offered:
                assert not eligible(agents[offer.agent], ahead, queues[ahead.queue], now)


@profiles
@given(routing_states())
def test_a_better_placed_agent_is_passed_over_only_when_someone_ahead_took_it(
    drawn: tuple[RoutingState, float],
) -> None:
    """Longest idle first (or best level, then longest idle, for BEST_LEVEL queues)."""
    state, now = drawn
    decisions = decide(state, now)
    agents = {a.id: a for a in state.agents}
    entries = {e.id: e for e in state.entries}
    queues = {q.id: q for q in state.queues}
    order = in_order(state.entries)
    rank = {e.id: i for i, e in enumerate(order)}
    taken_by = {o.agent: rank[o.entry] for o in decisions.offers}

    def place(agent: Agent, queue: Queue) -> tuple[float | str, ...]:
        if queue.selection is Selection.LONGEST_IDLE:
            return (agent.idle_since, agent.id)
        return (level_of(agent, queue) or 0, agent.idle_since, agent.id)

    for offer in decisions.offers:
        entry, queue, chosen = entries[offer.entry], queues[offer.queue], agents[offer.agent]
        for other in state.agents:
            if eligible(other, entry, queue, now) and place(other, queue) < place(chosen, queue):
                assert taken_by.get(other.id, len(order)) < rank[entry.id]


@profiles
@given(routing_states())
def test_no_free_agent_is_left_beside_a_caller_it_could_take(drawn: tuple[RoutingState, float]) -> None:
    state, now = drawn
    decisions = decide(state, now)
    entries_offered, agents_offered = offered(decisions)
    queues = {q.id: q for q in state.queues}
    for entry in state.entries:
        if entry.id in entries_offered:
            continue
        for agent in state.agents:
            if agent.id not in agents_offered:
                assert not eligible(agent, entry, queues[entry.queue], now)


@profiles
@given(routing_states(), st.data())
def test_callers_turned_into_callbacks_keep_their_offers_and_places(
    drawn: tuple[RoutingState, float], data: st.DataObject
) -> None:
    """A callback is ordered by its original enqueue time, exactly as if the caller held on."""
    state, now = drawn
    calls = [e.id for e in state.entries if e.kind is EntryKind.CALL]
    converted = set(data.draw(st.lists(st.sampled_from(calls), unique=True) if calls else st.just([])))
    after = replace(
        state,
        entries=tuple(replace(e, kind=EntryKind.CALLBACK) if e.id in converted else e for e in state.entries),
    )
    before, now_callbacks = decide(state, now), decide(after, now)
    assert [(o.entry, o.agent) for o in before.offers] == [(o.entry, o.agent) for o in now_callbacks.offers]
    for offer in now_callbacks.offers:
        assert offer.kind is (
            EntryKind.CALLBACK if offer.entry in converted else state_kind(state, offer.entry)
        )
    overflowed = {o.entry for o in before.overflows}
    if not overflowed & converted:  # an overflowed caller leaves; as a callback it would stay
        places = {a.entry: a.position for a in before.announcements if a.entry not in converted}
        assert places == {a.entry: a.position for a in now_callbacks.announcements}


def state_kind(state: RoutingState, entry_id: str) -> EntryKind:
    return next(e.kind for e in state.entries if e.id == entry_id)


@profiles
@given(routing_states())
def test_every_caller_left_waiting_is_told_its_place_in_queue_order(
    drawn: tuple[RoutingState, float],
) -> None:
    state, now = drawn
    decisions = decide(state, now)
    gone = {o.entry for o in decisions.offers} | {o.entry for o in decisions.overflows}
    left = [e for e in in_order(state.entries) if e.id not in gone]
    expected = {
        e.id: 1 + sum(1 for ahead in left[:i] if ahead.queue == e.queue)
        for i, e in enumerate(left)
        if e.kind is EntryKind.CALL
    }
    assert {a.entry: a.position for a in decisions.announcements} == expected
    assert len(decisions.announcements) == len(expected)


@profiles
@given(routing_states())
def test_only_callers_past_their_max_wait_and_without_an_agent_overflow(
    drawn: tuple[RoutingState, float],
) -> None:
    state, now = drawn
    decisions = decide(state, now)
    entries_offered, _ = offered(decisions)
    queues = {q.id: q for q in state.queues}
    expected = {
        e.id
        for e in state.entries
        if e.kind is EntryKind.CALL
        and e.id not in entries_offered
        and (limit := queues[e.queue].max_wait) is not None
        and now - e.enqueued_at >= limit
    }
    assert {o.entry for o in decisions.overflows} == expected
    assert all(o.outcome is queues[o.queue].on_max_wait for o in decisions.overflows)


@profiles
@given(routing_states())
def test_after_the_offers_are_applied_the_same_round_has_nothing_more_to_offer(
    drawn: tuple[RoutingState, float],
) -> None:
    state, now = drawn
    decisions = decide(state, now)
    after = apply_offers(state, decisions.offers, now=now)
    assert decide(after, now).offers == ()
    reserved = {a.id for a in after.agents if a.state is AgentState.RESERVED}
    assert {o.agent for o in decisions.offers} <= reserved
