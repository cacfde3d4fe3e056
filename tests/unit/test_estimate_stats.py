"""The wait estimates' inputs from the event log: an agent's occupancy per call handled (from
the offer to the end of the wrap-up), weighed against the configured handling time, and the
share of callers who gave up."""

from __future__ import annotations

import pytest

from callcenter.desk.estimates import PRIOR_CALLS, estimate_stats
from callcenter.routing.model import QueueStats
from callcenter.routing.store import RoutingEventValue as Ev


def handled(agent: str, entry: str, at: float, *, busy: float, queue: str = "general") -> list[Ev]:
    """One call: offered at ``at``, put through, ended, wrap-up over after ``busy`` seconds."""
    return [
        Ev("entry.offered", at, agent, entry, queue, {"kind": "call"}),
        Ev("agent.state", at, agent, entry, queue, {"from": "ready", "to": "reserved"}),
        Ev("agent.state", at + 1, agent, entry, queue, {"from": "reserved", "to": "ringing"}),
        Ev("entry.connected", at + 2, agent, entry, queue, {"waited": 10.0}),
        Ev("agent.state", at + 2, agent, entry, queue, {"from": "ringing", "to": "on_call"}),
        Ev("entry.ended", at + busy - 3, agent, entry, queue, {}),
        Ev("agent.state", at + busy - 3, agent, entry, queue, {"from": "on_call", "to": "wrap_up"}),
        Ev("agent.state", at + busy, agent, entry, queue, {"from": "wrap_up", "to": "ready"}),
    ]


def test_occupancy_from_offer_to_ready_weighed_with_the_prior() -> None:
    events = [*handled("1", "a", 100, busy=40), *handled("2", "b", 110, busy=60)]
    stats = estimate_stats(sorted(events, key=lambda e: e.at), start=0, end=1000, prior_aht=30)
    expected = (40 + 60 + PRIOR_CALLS * 30) / (2 + PRIOR_CALLS)
    assert stats == {"general": QueueStats(pytest.approx(expected), 0.0)}  # type: ignore[arg-type]


def test_an_offer_that_rang_out_and_calls_still_going_are_not_handled_calls() -> None:
    events = [
        Ev("entry.offered", 100, "1", "a", "general", {"kind": "call"}),
        Ev("agent.state", 108, "1", "a", "general", {"from": "ringing", "to": "missed"}),
        Ev("agent.state", 110, "1", None, None, {"from": "missed", "to": "ready"}),
        *handled("2", "b", 120, busy=500)[:-1],  # still in wrap-up at the end
    ]
    assert estimate_stats(events, start=0, end=1000, prior_aht=30) == {
        "general": QueueStats(30.0, 0.0)  # answered once, nobody gave up, no call over yet
    }


def test_callers_who_gave_up_against_those_who_reached_an_agent_callbacks_apart() -> None:
    events = [
        *handled("1", "a", 100, busy=40),
        Ev("entry.left", 120, None, "b", "general", {"reason": "abandoned", "waited": 30.0, "kind": "call"}),
        Ev("entry.left", 121, None, "c", "general", {"reason": "abandoned", "waited": 3.0, "kind": "call"}),
        Ev("entry.callback", 122, None, "d", "general", {"callback": 1}),
        Ev("entry.left", 123, None, "d", "general", {"reason": "abandoned", "kind": "callback"}),
        Ev("entry.left", 124, None, "e", "general", {"reason": "callback_merged", "kind": "call"}),
    ]
    [stats] = estimate_stats(events, start=0, end=1000, prior_aht=30).values()
    assert stats.abandon_rate == pytest.approx(2 / 3)


def test_only_what_ended_in_the_window_counts() -> None:
    events = [*handled("1", "a", 100, busy=40), *handled("1", "b", 500, busy=80)]
    stats = estimate_stats(events, start=200, end=1000, prior_aht=30)
    assert stats["general"].aht == pytest.approx((80 + PRIOR_CALLS * 30) / (1 + PRIOR_CALLS))
