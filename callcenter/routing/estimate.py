"""Wait estimates for announcements: a function of values only (no queue, no clock).

Usage::

    seconds = expected_wait(position=4, agents=3, aht=240.0, abandon_rate=0.1)   # 296.0
    minutes = minutes_to_announce(seconds)                                        # 5
"""

from __future__ import annotations

import math


def expected_wait(*, position: int, agents: int, aht: float, abandon_rate: float = 0.0) -> float | None:
    """The expected wait in seconds of the caller at ``position`` (1 = next) if they hold on.

    ::

        W = (1 + (position - 1) * (1 - abandon_rate)) * aht / agents

    Why this shape: when every agent serving the queue is busy, calls end at a rate of
    ``agents / aht`` (with Erlang's exponential handling times, the k-th agent to free up
    does so after ``k * aht / agents`` on average). The caller needs one agent for each caller
    ahead and one for themselves; a caller ahead who hangs up needs none, so each of the
    ``position - 1`` ahead counts for ``1 - abandon_rate``. The caller's own chance of hanging
    up is left out: the figure is what they will wait if they stay.

    ``None`` when no agent serves the queue: there is no honest figure to announce.
    """
    if position < 1:
        raise ValueError(f"position starts at 1, not {position!r}")
    if agents < 0 or aht < 0 or not 0.0 <= abandon_rate <= 1.0:
        raise ValueError("agents and aht must be 0 or more and abandon_rate within 0..1")
    if agents == 0:
        return None
    needed = 1.0 + (position - 1) * (1.0 - abandon_rate)
    return needed * aht / agents


def minutes_to_announce(seconds: float) -> int:
    """Whole minutes to say, rounded up and at least one: "about one minute" beats "zero
    minutes", and a caller told too little waits longer than promised."""
    if seconds < 0 or math.isnan(seconds):
        raise ValueError(f"a wait is 0 s or more, not {seconds!r}")
    return max(1, math.ceil(seconds / 60.0))
