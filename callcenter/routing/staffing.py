"""Staffing: Erlang C (callers wait forever) and Erlang A (callers hang up), and how many agents
a service level needs.

Usage::

    agents_needed(arrival_rate=100 / 1800, aht=180, target_sl=0.8, threshold_s=20)   # 14
    erlang_c(11, 10.0)                                                               # 0.6821
    erlang_a(agents=12, arrival_rate=1 / 18, aht=180, patience=120, threshold_s=20)

Units: seconds throughout (``arrival_rate`` in calls per second, ``aht`` the mean handling
time, ``patience`` the mean time a caller holds before hanging up). Both models take Poisson
arrivals and exponential handling times; Erlang A adds exponential patience (M/M/N+M).

Erlang C (traffic ``A = arrival_rate * aht``, ``N`` agents, ``N > A``)::

    B = Erlang B, by the recursion B(0) = 1, B(n) = A B(n-1) / (n + A B(n-1))
    C = B / (1 - (A / N) (1 - B))                     probability of waiting
    SL = 1 - C exp(-(N - A) T / aht)                  answered within T seconds
    ASA = C aht / (N - A)                             mean wait over all callers

Erlang A (``mu = 1 / aht``, ``theta = 1 / patience``): the birth-death chain with death rate
``min(j, N) mu + max(j - N, 0) theta`` gives, relative to the states below N (which sum to 1
with ``pi_N = B``), ``pi_{N+n} = B w_n`` with ``w_n = prod_{k=1..n} arrival_rate / (N mu + k theta)``.
An arrival (PASTA) that finds ``n`` waiting reaches an agent after the sum of exponentials of
rates ``N mu + k theta``, k = 0..n; with its own patience competing, the chance it is answered
within T is, exactly (alpha = N mu / theta, y = 1 - exp(-theta T))::

    alpha / (alpha + n + 1) * I_y(n + 1, alpha + 1)

where ``I`` is the regularized incomplete beta function, which for an integer first argument
is a finite sum: ``I_y(n + 1, b) = 1 - (1 - y)^b sum_{j=0..n} (b)_j / j! y^j``. The service
level sums these over ``n`` (the terms fall off faster than geometrically once
``N mu + n theta > arrival_rate``); abandonment follows from ``theta E[queue] = arrival_rate
P(abandon)`` and the mean wait from Little's law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Stop summing the waiting states once a term adds less than this, relative to the sum.
_EPSILON = 1e-15
_MAX_TERMS = 10_000_000
_RESCALE = 1e200


@dataclass(frozen=True, slots=True)
class Performance:
    """What a number of agents gives for a load."""

    agents: int
    traffic: float  # offered load in Erlangs (arrival_rate * aht)
    p_wait: float  # share of callers who wait at all
    service_level: float  # share of all callers answered within the threshold
    mean_wait: float  # seconds, over all callers (ASA in Erlang C); inf when the queue never settles
    p_abandon: float  # share of callers who hang up while waiting (0 in Erlang C)
    occupancy: float  # share of agent time spent on calls


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability of ``agents`` servers and no queue, by the stable recursion."""
    _check_agents(agents)
    if traffic < 0:
        raise ValueError(f"traffic must be 0 or more, not {traffic!r}")
    b = 1.0
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a caller waits; 1 when ``agents <= traffic`` (the queue only grows)."""
    if agents <= traffic:
        _check_agents(agents)
        return 1.0
    b = erlang_b(agents, traffic)
    return b / (1.0 - (traffic / agents) * (1.0 - b))


def erlang_c_performance(*, agents: int, arrival_rate: float, aht: float, threshold_s: float) -> Performance:
    """Erlang C figures for ``agents`` (callers never hang up)."""
    traffic = _traffic(arrival_rate, aht, threshold_s)
    if agents <= traffic:
        _check_agents(agents)
        return Performance(agents, traffic, 1.0, 0.0, math.inf, 0.0, 1.0)
    c = erlang_c(agents, traffic)
    spare = agents - traffic
    return Performance(
        agents=agents,
        traffic=traffic,
        p_wait=c,
        service_level=1.0 - c * math.exp(-spare * threshold_s / aht),
        mean_wait=c * aht / spare,
        p_abandon=0.0,
        occupancy=traffic / agents,
    )


def erlang_a(
    *, agents: int, arrival_rate: float, aht: float, patience: float, threshold_s: float
) -> Performance:
    """Erlang A figures for ``agents``: callers hang up after ``patience`` seconds on average.

    Always settles (impatient callers leave), so ``agents`` may be below the traffic.
    """
    traffic = _traffic(arrival_rate, aht, threshold_s)
    _check_agents(agents)
    if patience <= 0:
        raise ValueError(f"patience must be more than 0 s, not {patience!r}")
    if arrival_rate == 0:
        return Performance(agents, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    mu, theta = 1.0 / aht, 1.0 / patience
    capacity = agents * mu
    b = erlang_b(agents, traffic)
    alpha = capacity / theta
    y = -math.expm1(-theta * threshold_s)  # 1 - exp(-theta T)
    base = math.exp(-(capacity + theta) * threshold_s)  # (1 - y) ** (alpha + 1)

    w = 1.0  # w_n
    weights = 0.0  # sum of w_n, n >= 0
    queued = 0.0  # sum of n w_n
    answered = 0.0  # sum of w_n * P(answered within T | n waiting ahead)
    term = base  # (b)_j / j! y^j (1 - y)^b, b = alpha + 1, for j = n
    partial = 0.0  # sum over j <= n of term: 1 - I_y(n + 1, alpha + 1)
    scale = 0.0  # the sums above are kept divided by exp(scale), so a long queue cannot overflow
    n = 0
    while True:
        partial += term
        within = max(0.0, 1.0 - partial)
        answered += w * alpha / (alpha + n + 1) * within
        weights += w
        queued += n * w
        ratio = arrival_rate / (capacity + (n + 1) * theta)
        if ratio < 1.0 and w < _EPSILON * weights:
            break
        n += 1
        if n > _MAX_TERMS:
            raise ValueError("the waiting states do not settle: check the units (seconds)")
        w *= ratio
        term *= (alpha + n) / n * y
        if weights > _RESCALE:
            w, weights, queued, answered = (
                w / _RESCALE,
                weights / _RESCALE,
                queued / _RESCALE,
                answered / _RESCALE,
            )
            scale += math.log(_RESCALE)

    # All states, relative to the states below N summing to 1: z = 1 + b (weights - 1), scaled.
    z = math.exp(-scale) * (1.0 - b) + b * weights
    p_wait = b * weights / z
    mean_queue = b * queued / z
    p_abandon = theta * mean_queue / arrival_rate
    return Performance(
        agents=agents,
        traffic=traffic,
        p_wait=p_wait,
        service_level=(1.0 - p_wait) + b * answered / z,
        mean_wait=mean_queue / arrival_rate,
        p_abandon=p_abandon,
        occupancy=min(1.0, traffic * (1.0 - p_abandon) / agents) if agents else 0.0,
    )


def agents_needed(
    *,
    arrival_rate: float,
    aht: float,
    target_sl: float,
    threshold_s: float,
    patience: float | None = None,
    max_agents: int = 100_000,
) -> int:
    """The fewest agents whose service level (share answered within ``threshold_s``) reaches
    ``target_sl``: Erlang C when ``patience`` is None, else Erlang A.

    ``agents_needed(arrival_rate=100 / 1800, aht=180, target_sl=0.8, threshold_s=20) == 14``.
    The search starts where the answer can begin: above the traffic for Erlang C, and at
    ``target_sl * traffic`` for Erlang A (no more than N / traffic of callers can be answered).
    """
    if not 0.0 < target_sl < 1.0:
        raise ValueError(f"target_sl must be between 0 and 1 (exclusive), not {target_sl!r}")
    traffic = _traffic(arrival_rate, aht, threshold_s)
    if arrival_rate == 0:
        return 0
    n = math.floor(traffic) + 1 if patience is None else max(1, math.floor(target_sl * traffic))
    while n <= max_agents:
        perf = (
            erlang_c_performance(agents=n, arrival_rate=arrival_rate, aht=aht, threshold_s=threshold_s)
            if patience is None
            else erlang_a(
                agents=n, arrival_rate=arrival_rate, aht=aht, patience=patience, threshold_s=threshold_s
            )
        )
        if perf.service_level >= target_sl:
            return n
        n += 1
    raise ValueError(f"no staffing up to {max_agents} agents reaches a service level of {target_sl}")


def _traffic(arrival_rate: float, aht: float, threshold_s: float) -> float:
    if arrival_rate < 0 or aht <= 0 or threshold_s < 0:
        raise ValueError("arrival_rate and threshold_s must be 0 or more, and aht more than 0 s")
    return arrival_rate * aht


def _check_agents(agents: int) -> None:
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 0:
        raise ValueError(f"agents must be an int of 0 or more, not {agents!r}")
