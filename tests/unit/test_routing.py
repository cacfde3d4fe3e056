"""The routing core by example: (queues, waiting entries, agents, now) -> decisions."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

import pytest

from callcenter.routing import (
    ANY,
    Agent,
    AgentState,
    AgentTransitionError,
    Entry,
    EntryKind,
    Overflow,
    OverflowReason,
    Queue,
    QueueStats,
    RoutingConfigError,
    RoutingState,
    Selection,
    Skill,
    Step,
    apply_offers,
    change_state,
    decide,
    enqueue,
    expected_wait,
    mark_callback_offered,
    model,
    skill_level,
    skills,
    strategy,
    to_callback,
    withdraw,
)

WIDENING = (Step(0, 1), Step(30, 2), Step(90, 3))
WATER = Queue("water", "water")
WASTE = Queue("waste", "waste")


def agent(
    agent_id: str,
    *,
    idle_since: float = 0.0,
    state: AgentState = AgentState.READY,
    services: dict[str, int] | None = None,
    municipalities: dict[str, int] | None = None,
    languages: dict[str, int] | None = None,
) -> Agent:
    return Agent(
        agent_id,
        state,
        skills(
            services=services if services is not None else {"water": 1},
            municipalities=municipalities,
            languages=languages,
        ),
        since=idle_since,
        idle_since=idle_since,
    )


def call(entry_id: str, at: float, queue: str = "water", priority: int = 0) -> Entry:
    return Entry(entry_id, queue, at, priority)


def pairs(state: RoutingState, now: float = 100.0) -> list[tuple[str, str]]:
    return [(o.entry, o.agent) for o in decide(state, now).offers]


# -- who takes the call -----------------------------------------------------------------------


def test_the_longest_idle_qualified_agent_takes_the_call() -> None:
    state = RoutingState(
        (WATER,),
        (call("c1", 10),),
        (agent("recent", idle_since=50), agent("longest", idle_since=5), agent("middle", idle_since=20)),
    )
    assert pairs(state) == [("c1", "longest")]


def test_agents_without_the_queues_service_municipality_or_language_are_not_offered() -> None:
    queue = Queue("water-tripoli-en", "water", municipality="tripoli", language="en")
    state = RoutingState(
        (queue,),
        (call("c1", 10, queue.id),),
        (
            agent("no-service", idle_since=1, services={"waste": 1}, municipalities={"tripoli": 1}),
            agent("no-town", idle_since=2, municipalities={"benghazi": 1}, languages={"en": 1}),
            agent("no-english", idle_since=3, municipalities={"tripoli": 1}, languages={"ar": 1}),
            agent("fits", idle_since=4, municipalities={"tripoli": 1}, languages={"en": 2}),
        ),
    )
    assert pairs(state) == [("c1", "fits")]


def test_an_any_skill_serves_every_municipality() -> None:
    queue = Queue("water-sabha", "water", municipality="sabha")
    national = agent("national", municipalities={ANY: 2})
    assert skill_level(national.skills, queue) == 2
    assert pairs(RoutingState((queue,), (call("c1", 0, queue.id),), (national,))) == [("c1", "national")]


def test_an_agents_level_for_a_queue_is_its_weakest_required_skill() -> None:
    queue = Queue("q", "water", municipality="tripoli", language="en")
    found = skills(services={"water": 1}, municipalities={"tripoli": 2}, languages={"en": 3})
    assert skill_level(found, queue) == 3
    assert skill_level(found, Queue("q2", "water")) == 1
    assert skill_level(found, Queue("q3", "water", steps=(Step(0, 1),), municipality="tripoli")) is None


@pytest.mark.parametrize("state", [s for s in AgentState if s is not AgentState.READY])
def test_only_ready_agents_are_offered(state: AgentState) -> None:
    busy = agent("busy", idle_since=0, state=state)
    assert pairs(RoutingState((WATER,), (call("c1", 10),), (busy,))) == []


def test_an_agent_is_offered_one_caller_and_a_caller_one_agent() -> None:
    state = RoutingState(
        (WATER,),
        (call("c1", 1), call("c2", 2), call("c3", 3)),
        (agent("a", idle_since=1), agent("b", idle_since=2)),
    )
    assert pairs(state) == [("c1", "a"), ("c2", "b")]


# -- in what order ----------------------------------------------------------------------------


def test_a_higher_priority_caller_goes_first_even_when_younger() -> None:
    state = RoutingState((WATER,), (call("old", 1), call("urgent", 50, priority=5)), (agent("a"),))
    assert pairs(state) == [("urgent", "a")]


def test_an_agent_serving_two_queues_gets_the_longest_waiting_caller_of_both() -> None:
    both = agent("both", services={"water": 1, "waste": 1})
    state = RoutingState(
        (WATER, WASTE),
        (call("water-new", 40, "water"), call("waste-old", 10, "waste"), call("water-mid", 20, "water")),
        (both,),
    )
    assert pairs(state) == [("waste-old", "both")]


def test_the_target_widens_to_less_skilled_agents_after_the_set_waits() -> None:
    queue = Queue("water", "water", steps=WIDENING)
    team = (agent("skilled", services={"water": 2}), agent("helper", services={"water": 3}))
    state = RoutingState((queue,), (call("c1", 0),), team)
    assert pairs(state, now=29.9) == []
    assert pairs(state, now=30) == [("c1", "skilled")]
    only_helper = RoutingState((queue,), (call("c1", 0),), team[1:])
    assert pairs(only_helper, now=89) == []
    assert pairs(only_helper, now=90) == [("c1", "helper")]


def test_once_widened_the_longest_idle_of_the_allowed_levels_is_chosen() -> None:
    queue = Queue("water", "water", steps=WIDENING)
    team = (
        agent("expert", idle_since=20, services={"water": 1}),
        agent("skilled", idle_since=10, services={"water": 2}),
    )
    assert pairs(RoutingState((queue,), (call("c1", 0),), team), now=40) == [("c1", "skilled")]


def test_best_level_selection_prefers_the_expert_over_a_longer_idle_helper() -> None:
    queue = Queue("water", "water", steps=WIDENING, selection=Selection.BEST_LEVEL)
    team = (
        agent("expert", idle_since=20, services={"water": 1}),
        agent("skilled", idle_since=10, services={"water": 2}),
    )
    offers = decide(RoutingState((queue,), (call("c1", 0),), team), 40).offers
    assert [(o.agent, o.level) for o in offers] == [("expert", 1)]


def test_a_widened_caller_takes_the_longest_idle_agent_even_if_a_younger_caller_needed_it() -> None:
    # Greedy by the caller order: c1 (widened to any level) takes the longest-idle agent, the
    # expert; c2 (experts only for now) waits, and the helper stays ready until c2 widens.
    queue = Queue("water", "water", steps=WIDENING)
    team = (
        agent("expert", idle_since=1, services={"water": 1}),
        agent("helper", idle_since=2, services={"water": 3}),
    )
    state = RoutingState((queue,), (call("c1", 0), call("c2", 95)), team)
    assert pairs(state, now=100) == [("c1", "expert")]


# -- callbacks keep the caller's place ---------------------------------------------------------


def test_a_callback_is_offered_as_a_reservation_of_the_agent() -> None:
    state = to_callback(RoutingState((WATER,), (call("c1", 10),), (agent("a"),)), "c1")
    (offer,) = decide(state, 100).offers
    assert (offer.entry, offer.agent, offer.kind) == ("c1", "a", EntryKind.CALLBACK)
    assert offer.waited == 90  # from the original enqueue time


def test_a_callback_keeps_its_place_between_earlier_and_later_callers() -> None:
    waiting = (call("before", 10), call("me", 20), call("after", 30))
    state = to_callback(RoutingState((WATER,), waiting, (agent("a"), agent("b"))), "me")
    assert pairs(state) == [("before", "a"), ("me", "b")]
    assert [o.kind for o in decide(state, 100).offers] == [EntryKind.CALL, EntryKind.CALLBACK]


def test_a_callback_counts_in_the_positions_of_the_callers_behind_it() -> None:
    state = to_callback(RoutingState((WATER,), (call("c1", 10), call("c2", 20), call("c3", 30))), "c1")
    announced = {a.entry: a.position for a in decide(state, 100).announcements}
    assert announced == {"c2": 2, "c3": 3}  # the callback is not told anything: nobody is on the line


def test_converting_to_a_callback_keeps_time_and_priority() -> None:
    state = to_callback(RoutingState((WATER,), (call("c1", 10, priority=3),)), "c1")
    (entry,) = state.entries
    assert (entry.kind, entry.enqueued_at, entry.priority) == (EntryKind.CALLBACK, 10, 3)


# -- never silence ------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", list(Overflow))
def test_a_caller_reaching_the_max_wait_gets_the_queues_outcome(outcome: Overflow) -> None:
    queue = Queue("water", "water", max_wait=120, on_max_wait=outcome)
    decisions = decide(RoutingState((queue,), (call("c1", 0), call("c2", 50))), now=120)
    assert [(o.entry, o.outcome, o.reason) for o in decisions.overflows] == [
        ("c1", outcome, OverflowReason.MAX_WAIT)
    ]
    assert [a.entry for a in decisions.announcements] == ["c2"]


def test_a_caller_at_the_max_wait_is_connected_when_an_agent_frees_up() -> None:
    queue = Queue("water", "water", max_wait=120)
    decisions = decide(RoutingState((queue,), (call("c1", 0),), (agent("a"),)), now=500)
    assert [o.entry for o in decisions.offers] == ["c1"] and decisions.overflows == ()


def test_a_callback_never_overflows() -> None:
    queue = Queue("water", "water", max_wait=120)
    state = to_callback(RoutingState((queue,), (call("c1", 0),)), "c1")
    assert decide(state, now=10_000) == decide(state, now=0)


@pytest.mark.parametrize("outcome", list(Overflow))
def test_a_full_queue_refuses_a_caller_with_its_outcome(outcome: Overflow) -> None:
    queue = Queue("water", "water", max_size=2, on_full=outcome)
    state = RoutingState((queue,), (call("c1", 1), call("c2", 2)))
    admission = enqueue(state, call("c3", 3))
    assert admission.state is state
    assert admission.refused is not None
    assert (admission.refused.entry, admission.refused.outcome) == ("c3", outcome)
    assert admission.refused.reason is OverflowReason.FULL


def test_a_full_queue_still_takes_callbacks_and_frees_a_place_when_a_caller_leaves() -> None:
    queue = Queue("water", "water", max_size=1)
    state = RoutingState((queue,), (call("c1", 1),))
    callback = Entry("cb", "water", 0.5, kind=EntryKind.CALLBACK)
    assert enqueue(state, callback).refused is None
    assert enqueue(state, call("c2", 2)).refused is not None
    assert enqueue(withdraw(state, "c1"), call("c2", 2)).refused is None
    assert enqueue(to_callback(state, "c1"), call("c2", 2)).refused is None


def test_enqueue_refuses_unknown_queues_and_duplicate_entries() -> None:
    state = RoutingState((WATER,), (call("c1", 1),))
    with pytest.raises(RoutingConfigError):
        enqueue(state, call("x", 1, "nowhere"))
    with pytest.raises(RoutingConfigError):
        enqueue(state, call("c1", 2))


# -- what callers are told ----------------------------------------------------------------------


def test_callers_are_told_their_position_after_this_rounds_offers() -> None:
    state = RoutingState(
        (WATER, WASTE),
        (call("w1", 1), call("w2", 2), call("w3", 3), call("x1", 0, "waste")),
        (agent("a"),),
    )
    announced = {a.entry: (a.queue, a.position) for a in decide(state, 100).announcements}
    assert announced == {"w2": ("water", 1), "w3": ("water", 2), "x1": ("waste", 1)}


def test_the_expected_wait_uses_the_agents_serving_the_queue_and_its_figures() -> None:
    staff = (
        agent("busy1", state=AgentState.ON_CALL),
        agent("busy2", state=AgentState.WRAP_UP),
        agent("paused", state=AgentState.PAUSED),  # not staffed: not counted
        agent("other", state=AgentState.ON_CALL, services={"waste": 1}),
    )
    state = RoutingState(
        (WATER,),
        (call("c1", 1), call("c2", 2), call("c3", 3)),
        staff,
        {"water": QueueStats(aht=200, abandon_rate=0.25)},
    )
    waits = [a.expected_wait for a in decide(state, 100).announcements]
    assert waits == [expected_wait(position=p, agents=2, aht=200, abandon_rate=0.25) for p in (1, 2, 3)]
    assert waits == [100.0, 175.0, 250.0]


def test_no_expected_wait_is_announced_without_figures_or_agents() -> None:
    no_figures = RoutingState((WATER,), (call("c1", 1),), (agent("busy", state=AgentState.ON_CALL),))
    assert decide(no_figures, 10).announcements[0].expected_wait is None
    nobody = RoutingState((WATER,), (call("c1", 1),), (), {"water": QueueStats(aht=200)})
    assert decide(nobody, 10).announcements[0].expected_wait is None


def test_a_callback_is_offered_once_after_the_queues_callback_wait() -> None:
    queue = Queue("water", "water", callback_after=60)
    state = RoutingState((queue,), (call("c1", 0),))
    assert [a.offer_callback for a in decide(state, 59).announcements] == [False]
    assert [a.offer_callback for a in decide(state, 60).announcements] == [True]
    heard = mark_callback_offered(state, "c1")
    assert [a.offer_callback for a in decide(heard, 300).announcements] == [False]


# -- rounds ------------------------------------------------------------------------------------


def test_applied_offers_reserve_the_agents_and_leave_nothing_to_offer_twice() -> None:
    state = RoutingState((WATER,), (call("c1", 1), call("c2", 2), call("c3", 3)), (agent("a"), agent("b")))
    decisions = decide(state, 100)
    after = apply_offers(state, decisions.offers, now=100)
    assert {a.id: a.state for a in after.agents} == {"a": AgentState.RESERVED, "b": AgentState.RESERVED}
    assert [e.id for e in after.entries] == ["c3"]
    assert decide(after, 100).offers == ()


def test_decide_is_repeatable_and_never_reads_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_clock() -> float:
        raise AssertionError("the routing core read the clock")

    for name in ("time", "monotonic", "perf_counter", "time_ns"):
        monkeypatch.setattr(time, name, no_clock)
    state = RoutingState(
        (WATER,), (call("c1", 1), call("c2", 2)), (agent("a"),), {"water": QueueStats(aht=60)}
    )
    assert decide(state, 100) == decide(state, 100)


def test_a_state_with_entries_in_unknown_queues_is_refused() -> None:
    with pytest.raises(RoutingConfigError) as refused:
        decide(RoutingState((WATER,), (call("c1", 1, "nowhere"),)), 10)
    assert refused.value.details["queues"] == ["nowhere"]


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(RoutingConfigError):
        RoutingState((WATER,), (), (agent("a"), agent("a")))


@pytest.mark.parametrize(
    "steps",
    [(), (Step(10, 1),), (Step(0, 2), Step(30, 1)), (Step(0, 1), Step(0, 2))],
    ids=["none", "late-start", "narrowing", "same-time"],
)
def test_queue_steps_must_start_at_zero_and_only_widen(steps: tuple[Step, ...]) -> None:
    with pytest.raises(RoutingConfigError):
        Queue("q", "water", steps=steps)


def test_skill_and_step_levels_are_one_to_three() -> None:
    with pytest.raises(RoutingConfigError):
        skills(services={"water": 4})
    with pytest.raises(RoutingConfigError):
        Step(0, 0)


# -- agent states --------------------------------------------------------------------------------


def test_a_full_call_cycle_is_a_legal_path() -> None:
    a = Agent("a")
    for to, extra in [
        (AgentState.READY, {}),
        (AgentState.RESERVED, {}),
        (AgentState.RINGING, {}),
        (AgentState.ON_CALL, {}),
        (AgentState.WRAP_UP, {}),
        (AgentState.READY, {"disposition": "resolved"}),
        (AgentState.PAUSED, {"reason": "break"}),
        (AgentState.OFFLINE, {}),
    ]:
        a = change_state(a, to, now=1.0, **extra)
        assert a.state is to


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (AgentState.OFFLINE, AgentState.ON_CALL),
        (AgentState.READY, AgentState.ON_CALL),
        (AgentState.ON_CALL, AgentState.READY),
        (AgentState.READY, AgentState.READY),
        (AgentState.MISSED, AgentState.RESERVED),
        (AgentState.WRAP_UP, AgentState.RESERVED),
    ],
)
def test_an_invalid_move_says_from_to_and_what_is_allowed(start: AgentState, to: AgentState) -> None:
    with pytest.raises(AgentTransitionError) as refused:
        change_state(Agent("a", start), to, now=1)
    details = refused.value.details
    assert (details["from_state"], details["to_state"]) == (start, to)
    assert details["allowed"] == sorted(model.TRANSITIONS[start])
    assert refused.value.error_id == "agent_transition" and refused.value.status_code == 409


def test_wrap_up_requires_a_disposition_before_ready_or_a_pause() -> None:
    wrapping = Agent("a", AgentState.WRAP_UP)
    for to, extra in ((AgentState.READY, {}), (AgentState.PAUSED, {"reason": "break"})):
        with pytest.raises(AgentTransitionError, match="disposition"):
            change_state(wrapping, to, now=1, **extra)
    ready = change_state(wrapping, AgentState.READY, now=1, disposition="resolved")
    assert ready.disposition == "resolved"
    assert change_state(wrapping, AgentState.OFFLINE, now=1).state is AgentState.OFFLINE  # logout


def test_a_new_wrap_up_forgets_the_previous_disposition() -> None:
    on_call = Agent("a", AgentState.ON_CALL, disposition="old")
    wrapping = change_state(on_call, AgentState.WRAP_UP, now=1)
    assert wrapping.disposition is None
    with pytest.raises(AgentTransitionError):
        change_state(wrapping, AgentState.READY, now=2)


def test_a_pause_needs_a_reason_and_keeps_it() -> None:
    with pytest.raises(AgentTransitionError, match="reason"):
        change_state(Agent("a", AgentState.READY), AgentState.PAUSED, now=1)
    paused = change_state(Agent("a", AgentState.READY), AgentState.PAUSED, now=1, reason="training")
    assert paused.pause_reason == "training"
    assert change_state(paused, AgentState.READY, now=2).pause_reason is None


def test_a_withdrawn_offer_keeps_the_agents_place_but_a_missed_one_does_not() -> None:
    ready = Agent("a", AgentState.READY, idle_since=10)
    reserved = change_state(ready, AgentState.RESERVED, now=50)
    assert change_state(reserved, AgentState.READY, now=60).idle_since == 10
    missed = change_state(change_state(reserved, AgentState.RINGING, now=55), AgentState.MISSED, now=70)
    assert change_state(missed, AgentState.READY, now=80).idle_since == 80


# -- the shape that keeps it fast -----------------------------------------------------------------


def _big_state(seed: int = 7) -> RoutingState:
    rng = random.Random(seed)
    queues = tuple(
        Queue(f"s{s}-m{m}", f"s{s}", municipality=f"m{m}", steps=WIDENING, max_wait=900)
        for s in range(5)
        for m in range(4)
    )
    teams = [
        skills(
            services={f"s{s}": rng.randint(1, 3) for s in rng.sample(range(5), 2)},
            municipalities={f"m{m}": rng.randint(1, 3) for m in rng.sample(range(4), 2)},
        )
        for _ in range(12)
    ]
    agents = tuple(
        Agent(f"a{i}", rng.choice(list(AgentState)), rng.choice(teams), idle_since=rng.uniform(0, 500))
        for i in range(200)
    )
    entries = tuple(
        Entry(f"e{i}", rng.choice(queues).id, rng.uniform(0, 500), rng.choice((0, 0, 1))) for i in range(500)
    )
    return RoutingState(queues, entries, agents)


def test_two_hundred_agents_and_five_hundred_callers_are_matched_as_far_as_skills_allow() -> None:
    state = _big_state()
    decisions = decide(state, 600)
    offered = {o.agent for o in decisions.offers}
    queues = {q.id: q for q in state.queues}
    left = [e for e in state.entries if e.id not in {o.entry for o in decisions.offers}]
    for free in (a for a in state.agents if a.state is AgentState.READY and a.id not in offered):
        for entry in left:
            level = skill_level(free.skills, queues[entry.queue])
            assert level is None or level > queues[entry.queue].level_at(600 - entry.enqueued_at)
    assert len(decisions.offers) + len(decisions.overflows) + len(decisions.announcements) == 500


def test_skill_profiles_are_worked_out_once_per_skill_set_not_per_agent_and_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def counted(agent_skills: Iterable[Skill], queues: Iterable[Queue]) -> list[tuple[Queue, int]]:
        calls.append(1)
        return model.qualifications(agent_skills, queues)

    monkeypatch.setattr(strategy, "qualifications", counted)
    monkeypatch.setattr(strategy, "_last_index", None)  # nothing kept from other tests
    state = _big_state(seed=11)
    for now in (600.0, 601.0, 602.0):
        decide(state, now)
    assert len(calls) == len({a.skills for a in state.agents}) <= 12


# -- entries not yet due ----------------------------------------------------------------------


def test_a_callback_not_yet_due_is_skipped_and_holds_nobody_back() -> None:
    later = Entry("cb", "water", 1.0, kind=EntryKind.CALLBACK, not_before=500.0)
    state = RoutingState((WATER,), (later, call("c1", 50)), (agent("a"),))

    decisions = decide(state, 100.0)

    assert [(o.entry, o.agent) for o in decisions.offers] == [("c1", "a")]
    busy = RoutingState((WATER,), (later, call("c1", 50)), ())
    assert [(a.entry, a.position) for a in decide(busy, 100.0).announcements] == [("c1", 1)]


def test_once_due_a_deferred_callback_is_served_at_its_original_place() -> None:
    due = Entry("cb", "water", 1.0, kind=EntryKind.CALLBACK, not_before=90.0)
    state = RoutingState((WATER,), (call("c1", 50), due), (agent("a"),))

    assert pairs(state, now=100.0) == [("cb", "a")]
