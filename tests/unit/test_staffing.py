"""Erlang C and Erlang A against published values and against independent computations."""

from __future__ import annotations

import math

import pytest

from callcenter.routing.staffing import (
    agents_needed,
    erlang_a,
    erlang_b,
    erlang_c,
    erlang_c_performance,
)

# The textbook example: 100 calls per half hour, 3-minute calls (10 Erlangs), 80 % in 20 s.
RATE, AHT, THRESHOLD = 100 / 1800, 180.0, 20.0


def c_by_factorials(agents: int, traffic: float) -> float:
    """Erlang C straight from its definition, with no recursion."""
    top = traffic**agents / math.factorial(agents) * agents / (agents - traffic)
    return top / (sum(traffic**k / math.factorial(k) for k in range(agents)) + top)


def c_by_b_recursion(agents: int, traffic: float) -> float:
    b = 1.0
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return b / (1 - traffic / agents * (1 - b))


# -- Erlang C -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agents", "published"), [(11, 0.6821), (12, 0.4494), (13, 0.2853), (14, 0.1741), (15, 0.1020)]
)
def test_erlang_c_gives_the_published_table_for_ten_erlangs(agents: int, published: float) -> None:
    assert erlang_c(agents, 10.0) == pytest.approx(published, abs=5e-5)


@pytest.mark.parametrize("traffic", [0.5, 2.0, 10.0, 37.5, 80.0])
def test_erlang_c_agrees_with_its_definition_and_the_erlang_b_route(traffic: float) -> None:
    for agents in range(math.floor(traffic) + 1, math.floor(traffic) + 25):
        assert erlang_c(agents, traffic) == pytest.approx(c_by_factorials(agents, traffic), rel=1e-9)
        assert erlang_c(agents, traffic) == pytest.approx(c_by_b_recursion(agents, traffic), rel=1e-12)


def test_erlang_b_agrees_with_its_definition() -> None:
    for agents, traffic in [(1, 1.0), (5, 3.0), (10, 10.0), (20, 12.5)]:
        direct = (traffic**agents / math.factorial(agents)) / sum(
            traffic**k / math.factorial(k) for k in range(agents + 1)
        )
        assert erlang_b(agents, traffic) == pytest.approx(direct, rel=1e-12)


def test_service_level_and_asa_follow_the_erlang_c_formulas() -> None:
    perf = erlang_c_performance(agents=14, arrival_rate=RATE, aht=AHT, threshold_s=THRESHOLD)
    c = c_by_factorials(14, 10.0)
    assert perf.traffic == pytest.approx(10.0)
    assert perf.p_wait == pytest.approx(c)
    assert perf.service_level == pytest.approx(1 - c * math.exp(-(14 - 10) * THRESHOLD / AHT))
    assert perf.service_level == pytest.approx(0.8884, abs=5e-5)
    assert perf.mean_wait == pytest.approx(c * AHT / 4) == pytest.approx(7.84, abs=0.01)
    assert perf.occupancy == pytest.approx(10 / 14)


def test_the_textbook_example_needs_fourteen_agents_for_80_in_20() -> None:
    assert agents_needed(arrival_rate=RATE, aht=AHT, target_sl=0.8, threshold_s=THRESHOLD) == 14
    below = erlang_c_performance(agents=13, arrival_rate=RATE, aht=AHT, threshold_s=THRESHOLD)
    assert below.service_level < 0.8


def test_too_few_agents_for_the_traffic_means_every_caller_waits_forever() -> None:
    assert erlang_c(10, 10.0) == 1.0
    perf = erlang_c_performance(agents=9, arrival_rate=RATE, aht=AHT, threshold_s=THRESHOLD)
    assert (perf.p_wait, perf.service_level, perf.mean_wait) == (1.0, 0.0, math.inf)


@pytest.mark.parametrize(("target", "threshold"), [(0.8, 20.0), (0.9, 15.0), (0.95, 60.0), (0.5, 0.0)])
def test_agents_needed_is_the_fewest_that_reach_the_target(target: float, threshold: float) -> None:
    for rate, aht in [(RATE, AHT), (0.5, 240.0), (0.01, 300.0)]:
        n = agents_needed(arrival_rate=rate, aht=aht, target_sl=target, threshold_s=threshold)
        at = erlang_c_performance(agents=n, arrival_rate=rate, aht=aht, threshold_s=threshold)
        assert at.service_level >= target
        if n - 1 > rate * aht:
            less = erlang_c_performance(agents=n - 1, arrival_rate=rate, aht=aht, threshold_s=threshold)
            assert less.service_level < target


def test_no_calls_need_no_agents() -> None:
    assert agents_needed(arrival_rate=0.0, aht=AHT, target_sl=0.8, threshold_s=20) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"arrival_rate": -1.0, "aht": AHT, "target_sl": 0.8, "threshold_s": 20.0},
        {"arrival_rate": RATE, "aht": 0.0, "target_sl": 0.8, "threshold_s": 20.0},
        {"arrival_rate": RATE, "aht": AHT, "target_sl": 1.0, "threshold_s": 20.0},
        {"arrival_rate": RATE, "aht": AHT, "target_sl": 0.8, "threshold_s": -1.0},
    ],
)
def test_impossible_staffing_questions_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        agents_needed(**kwargs)  # type: ignore[arg-type]


# -- Erlang A -----------------------------------------------------------------------------------


def stationary(agents: int, rate: float, aht: float, patience: float, depth: int) -> list[float]:
    """The M/M/N+M birth-death chain's distribution, from its balance equations directly."""
    mu, theta = 1 / aht, 1 / patience
    p = [1.0]
    for j in range(1, agents + depth + 1):
        p.append(p[-1] * rate / (min(j, agents) * mu + max(j - agents, 0) * theta))
    total = sum(p)
    return [x / total for x in p]


def answered_within_by_integration(agents: int, rate: float, aht: float, patience: float, t: float) -> float:
    """Share answered within ``t``: the tagged arrival's chain (callers ahead, its own patience)
    integrated with RK4, a route independent of the closed form."""
    depth = 120
    pi = stationary(agents, rate, aht, patience, depth)
    mu, theta = 1 / aht, 1 / patience
    served = agents * mu
    waiting = pi[agents:]  # waiting[k]: the arrival finds k callers ahead

    def derivative(x: list[float]) -> tuple[list[float], float]:
        d = [
            -(served + k * theta + theta) * x[k]
            + ((served + (k + 1) * theta) * x[k + 1] if k + 1 < len(x) else 0)
            for k in range(len(x))
        ]
        return d, served * x[0]

    steps = 2000
    h = t / steps
    x, answered = waiting, 0.0
    for _ in range(steps):
        k1, a1 = derivative(x)
        k2, a2 = derivative([xi + h / 2 * ki for xi, ki in zip(x, k1, strict=True)])
        k3, a3 = derivative([xi + h / 2 * ki for xi, ki in zip(x, k2, strict=True)])
        k4, a4 = derivative([xi + h * ki for xi, ki in zip(x, k3, strict=True)])
        x = [
            xi + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
            for xi, b1, b2, b3, b4 in zip(x, k1, k2, k3, k4, strict=True)
        ]
        answered += h / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
    return sum(pi[:agents]) + answered


@pytest.mark.parametrize(("agents", "patience"), [(8, 120.0), (10, 60.0), (12, 300.0), (3, 30.0)])
def test_erlang_a_service_level_matches_the_integrated_chain(agents: int, patience: float) -> None:
    perf = erlang_a(agents=agents, arrival_rate=RATE, aht=AHT, patience=patience, threshold_s=THRESHOLD)
    assert perf.service_level == pytest.approx(
        answered_within_by_integration(agents, RATE, AHT, patience, THRESHOLD), abs=1e-7
    )


@pytest.mark.parametrize(("agents", "patience"), [(8, 120.0), (10, 60.0), (12, 300.0), (3, 30.0)])
def test_erlang_a_waiting_abandonment_and_mean_wait_match_the_balance_equations(
    agents: int, patience: float
) -> None:
    perf = erlang_a(agents=agents, arrival_rate=RATE, aht=AHT, patience=patience, threshold_s=THRESHOLD)
    pi = stationary(agents, RATE, AHT, patience, depth=400)
    theta, served = 1 / patience, agents / AHT
    ahead = list(enumerate(pi[agents:]))
    assert perf.p_wait == pytest.approx(sum(pi[agents:]), rel=1e-9)
    # an arrival finding n ahead hangs up first with chance (n+1) theta / (N mu + (n+1) theta)
    assert perf.p_abandon == pytest.approx(
        sum(p * (n + 1) * theta / (served + (n + 1) * theta) for n, p in ahead), rel=1e-9
    )
    assert perf.mean_wait == pytest.approx(sum(n * p for n, p in ahead) / RATE, rel=1e-9)


@pytest.mark.parametrize("agents", [11, 12, 14, 20])
def test_erlang_a_with_endless_patience_is_erlang_c(agents: int) -> None:
    a = erlang_a(agents=agents, arrival_rate=RATE, aht=AHT, patience=1e9, threshold_s=THRESHOLD)
    c = erlang_c_performance(agents=agents, arrival_rate=RATE, aht=AHT, threshold_s=THRESHOLD)
    assert a.p_wait == pytest.approx(c.p_wait, abs=1e-6)
    assert a.service_level == pytest.approx(c.service_level, abs=1e-6)
    assert a.mean_wait == pytest.approx(c.mean_wait, rel=1e-5)
    assert a.p_abandon < 1e-6


def test_erlang_a_settles_below_the_traffic_because_callers_hang_up() -> None:
    for agents in (1, 5, 9):
        perf = erlang_a(agents=agents, arrival_rate=RATE, aht=AHT, patience=120, threshold_s=THRESHOLD)
        # agents answer at most agents/aht calls a second: the rest must hang up
        assert perf.p_abandon >= 1 - agents / 10 - 1e-9
        assert 0 <= perf.service_level <= 1 and perf.occupancy <= 1


def test_erlang_a_survives_a_hopeless_overload() -> None:
    perf = erlang_a(agents=1, arrival_rate=10.0, aht=AHT, patience=3600, threshold_s=THRESHOLD)
    assert perf.p_wait == pytest.approx(1.0) and perf.p_abandon == pytest.approx(1 - 1 / 1800, rel=1e-6)
    assert all(math.isfinite(v) for v in (perf.service_level, perf.mean_wait, perf.occupancy))


def test_erlang_a_service_level_rises_with_every_agent() -> None:
    levels = [
        erlang_a(agents=n, arrival_rate=RATE, aht=AHT, patience=120, threshold_s=THRESHOLD).service_level
        for n in range(1, 25)
    ]
    assert levels == sorted(levels) and levels[-1] > 0.999


def test_agents_needed_with_patience_is_the_fewest_that_reach_the_target() -> None:
    n = agents_needed(arrival_rate=RATE, aht=AHT, target_sl=0.8, threshold_s=THRESHOLD, patience=120)

    def level(k: int) -> float:
        return erlang_a(
            agents=k, arrival_rate=RATE, aht=AHT, patience=120, threshold_s=THRESHOLD
        ).service_level

    assert level(n) >= 0.8 > level(n - 1)
