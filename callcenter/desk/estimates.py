"""What the waiting callers' estimates count on, from the routing event log: per queue, how
long a call keeps an agent from the next one, and the share of callers who give up.

Why the agent's occupancy rather than the wallboard's handling time (talk + wrap-up): a caller's
turn comes when an agent is free again, and an agent is not free from the moment a call is
offered to them (reserved, their phone ringing) until their wrap-up ends. Only calls put
through count (an offer that rang out is lost time, not a handled call).

Why a prior: early in the day the calls that have ended are the short ones (the long ones are
still going), so the log alone would promise waits that are too short. The configured handling
time (``queue_default_aht_s``) counts as :data:`PRIOR_CALLS` calls, and the log outweighs it as
calls are handled.

Usage::

    stats = estimate_stats(events, start=now - 3600, end=now, prior_aht=240.0)
    await store.set_stats(stats)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from callcenter.routing.model import AgentState, EntryKind, QueueStats
from callcenter.routing.store import RoutingEventValue

PRIOR_CALLS: Final = 50
_LEAVES: Final = frozenset({str(AgentState.READY), str(AgentState.PAUSED), str(AgentState.OFFLINE)})


def estimate_stats(
    events: Iterable[RoutingEventValue], *, start: float, end: float, prior_aht: float
) -> dict[str, QueueStats]:
    """Per queue seen in ``[start, end)``: the mean occupancy per call handled (calls whose
    occupancy ended in the window, with the prior) and the share of callers who hung up while
    waiting, of those who reached an agent or hung up (callbacks keep their place: they count
    as neither). ``events`` in the log's order; earlier ones give context only."""
    offered: dict[str, tuple[float, str]] = {}  # agent -> (offered at, queue)
    talking: set[str] = set()  # agents whose offer was put through
    callbacks: set[str] = set()
    busy: dict[str, list[float]] = {}  # queue -> [seconds, calls]
    answered: dict[str, int] = {}
    gone: dict[str, int] = {}
    for e in events:
        if e.at >= end:
            break
        inside = e.at >= start
        kind = e.kind
        if kind == "entry.offered" and e.agent and e.queue:
            offered[e.agent] = (e.at, e.queue)
            talking.discard(e.agent)
            if e.data.get("kind") == str(EntryKind.CALLBACK) and e.entry:
                callbacks.add(e.entry)
        elif kind == "entry.callback" and e.entry:
            callbacks.add(e.entry)
        elif kind == "entry.connected" and e.agent:
            talking.add(e.agent)
            if inside and e.queue and e.entry not in callbacks:
                answered[e.queue] = answered.get(e.queue, 0) + 1
        elif kind == "entry.left" and inside and e.queue and e.data.get("reason", "abandoned") == "abandoned":
            if e.entry not in callbacks and e.data.get("kind") != str(EntryKind.CALLBACK):
                gone[e.queue] = gone.get(e.queue, 0) + 1
        elif kind == "agent.state" and e.agent and str(e.data.get("to", "")) in _LEAVES:
            began = offered.pop(e.agent, None)
            handled = e.agent in talking and str(e.data.get("from", "")) == str(AgentState.WRAP_UP)
            talking.discard(e.agent)
            if began is not None and handled and inside:
                figures = busy.setdefault(began[1], [0.0, 0])
                figures[0] += e.at - began[0]
                figures[1] += 1
    out: dict[str, QueueStats] = {}
    for queue in sorted(set(busy) | set(answered) | set(gone)):
        seconds, calls = busy.get(queue, [0.0, 0])
        aht = (seconds + PRIOR_CALLS * prior_aht) / (calls + PRIOR_CALLS)
        reached = answered.get(queue, 0) + gone.get(queue, 0)
        out[queue] = QueueStats(aht, gone.get(queue, 0) / reached if reached else 0.0)
    return out
