"""The wait estimate: (position, agents, AHT, abandonment) -> seconds, and what is announced."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.routing import expected_wait, minutes_to_announce

positions = st.integers(1, 500)
agent_counts = st.integers(1, 300)
ahts = st.floats(1.0, 3600.0)
rates = st.floats(0.0, 1.0)


def test_the_next_caller_waits_one_handling_time_spread_over_the_agents() -> None:
    assert expected_wait(position=1, agents=1, aht=180.0) == 180.0
    assert expected_wait(position=1, agents=4, aht=180.0) == 45.0


def test_each_caller_ahead_adds_one_handling_time_spread_over_the_agents() -> None:
    assert expected_wait(position=5, agents=2, aht=100.0) == 250.0  # 5 * 100 / 2


def test_callers_ahead_who_hang_up_shorten_the_wait() -> None:
    # 3 ahead of whom a fifth hang up: 1 + 3 * 0.8 = 3.4 handling times over 2 agents
    assert expected_wait(position=4, agents=2, aht=100.0, abandon_rate=0.2) == pytest.approx(170.0)
    # if everyone ahead hangs up, only the caller's own turn is left
    assert expected_wait(position=50, agents=2, aht=100.0, abandon_rate=1.0) == 50.0


def test_there_is_no_estimate_when_nobody_serves_the_queue() -> None:
    assert expected_wait(position=1, agents=0, aht=180.0) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"position": 0, "agents": 1, "aht": 60.0},
        {"position": 1, "agents": -1, "aht": 60.0},
        {"position": 1, "agents": 1, "aht": -1.0},
        {"position": 1, "agents": 1, "aht": 60.0, "abandon_rate": 1.5},
        {"position": 1, "agents": 1, "aht": 60.0, "abandon_rate": -0.1},
    ],
)
def test_impossible_figures_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        expected_wait(**kwargs)  # type: ignore[arg-type]


@given(positions, agent_counts, ahts, rates)
def test_a_later_position_never_waits_less(position: int, agents: int, aht: float, rate: float) -> None:
    here = expected_wait(position=position, agents=agents, aht=aht, abandon_rate=rate)
    behind = expected_wait(position=position + 1, agents=agents, aht=aht, abandon_rate=rate)
    assert here is not None and behind is not None and behind >= here


@given(positions, agent_counts, ahts, rates)
def test_more_agents_never_make_the_wait_longer(position: int, agents: int, aht: float, rate: float) -> None:
    fewer = expected_wait(position=position, agents=agents, aht=aht, abandon_rate=rate)
    more = expected_wait(position=position, agents=agents + 1, aht=aht, abandon_rate=rate)
    assert fewer is not None and more is not None and more <= fewer


@given(positions, agent_counts, ahts, rates, rates)
def test_more_abandonment_never_makes_the_wait_longer(
    position: int, agents: int, aht: float, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    calm = expected_wait(position=position, agents=agents, aht=aht, abandon_rate=low)
    restless = expected_wait(position=position, agents=agents, aht=aht, abandon_rate=high)
    assert calm is not None and restless is not None and restless <= calm + 1e-9


@given(positions, agent_counts, ahts, ahts, rates)
def test_longer_calls_never_make_the_wait_shorter(
    position: int, agents: int, short: float, long: float, rate: float
) -> None:
    short, long = sorted((short, long))
    quick = expected_wait(position=position, agents=agents, aht=short, abandon_rate=rate)
    slow = expected_wait(position=position, agents=agents, aht=long, abandon_rate=rate)
    assert quick is not None and slow is not None and slow >= quick


@pytest.mark.parametrize(
    ("seconds", "minutes"), [(0, 1), (1, 1), (59.9, 1), (60, 1), (60.1, 2), (296, 5), (3600, 60)]
)
def test_the_announced_minutes_round_up_and_are_at_least_one(seconds: float, minutes: int) -> None:
    assert minutes_to_announce(seconds) == minutes


@pytest.mark.parametrize("seconds", [-1.0, math.nan])
def test_a_negative_or_unknown_wait_is_not_announced(seconds: float) -> None:
    with pytest.raises(ValueError):
        minutes_to_announce(seconds)
