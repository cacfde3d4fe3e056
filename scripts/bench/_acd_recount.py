"""The figures of acd_load.py, recounted from the database after the run: what became of each
caller (the ``call`` and ``callback`` rows), and from the raw routing event log (never from the
engine's own read models) whether an entry was ever offered twice or an agent held two callers,
whether callbacks were served in their places, how each announced wait estimate compared with
the wait that followed, and whether the wallboard's figures are the log's.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models

#: agent states that end whatever the agent held (a withdrawn offer, a miss, a break)
_RELEASE = {"ready", "missed", "offline", "paused"}


@dataclass(frozen=True, slots=True)
class Ev:
    id: int
    at: float
    kind: str
    agent: str | None
    entry: str | None
    queue: str | None
    data: dict[str, Any]


async def read_log(engine: AsyncEngine) -> list[Ev]:
    E = models.table(models.RoutingEvent)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(E).order_by(E.c.at, E.c.id))).all()
    return [Ev(r.id, _epoch(r.at), r.kind, r.agent, r.entry, r.queue, dict(r.data or {})) for r in rows]


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


# -- what became of each caller -----------------------------------------------------------------


@dataclass
class Fates:
    callers: int = 0
    connected: int = 0
    abandoned: int = 0
    called_back: int = 0
    told_message: int = 0
    lost: int = 0
    callbacks_booked: int = 0
    lost_examples: list[str] = field(default_factory=list)


async def fates(engine: AsyncEngine, numbers: Iterable[str]) -> Fates:
    """Each caller by their number: connected, abandoned, called back (a callback booked and
    then served: its row ``done``), told a message (queue full or the wait too long, with no
    callback taken: the call's outcome ``answered``); anything else is lost."""
    C, CB = models.table(models.Call), models.table(models.Callback)
    async with engine.connect() as conn:
        calls = (await conn.execute(select(C.c.caller, C.c.outcome).where(C.c.direction == "in"))).all()
        callbacks = (await conn.execute(select(CB.c.phone, CB.c.status))).all()
    outcome = {str(r.caller): str(r.outcome) for r in calls}
    done = {str(r.phone) for r in callbacks if r.status == "done"}
    out = Fates(callbacks_booked=len(callbacks))
    for number in numbers:
        out.callers += 1
        got = outcome.get(number)
        if got == "connected":
            out.connected += 1
        elif got == "abandoned":
            out.abandoned += 1
        elif got == "callback" and number in done:
            out.called_back += 1
        elif got == "answered":
            out.told_message += 1
        else:
            out.lost += 1
            if len(out.lost_examples) < 5:
                out.lost_examples.append(f"{number}: {got}")
    return out


# -- the event log --------------------------------------------------------------------------------


def double_routed(events: Sequence[Ev]) -> int:
    """Offers made to an agent still holding another caller, or of an entry still offered to
    another agent (a caller given to two agents)."""
    holding: dict[str, str] = {}  # agent -> entry
    holder: dict[str, str] = {}  # entry -> agent
    doubles = 0
    for e in events:
        if e.kind == "entry.offered" and e.agent and e.entry:
            if e.agent in holding or e.entry in holder:
                doubles += 1
            holding[e.agent] = e.entry
            holder[e.entry] = e.agent
        elif e.kind in ("entry.missed", "entry.requeued", "entry.left", "entry.deferred", "entry.ended"):
            if e.entry:
                holder.pop(e.entry, None)
        elif e.kind == "agent.state" and e.agent and e.data.get("to") in _RELEASE:
            entry = holding.pop(e.agent, None)
            if entry is not None and holder.get(entry) == e.agent:
                holder.pop(entry, None)
    return doubles


def callbacks_out_of_order(events: Sequence[Ev], examples: list[str] | None = None) -> tuple[int, int]:
    """Callbacks offered while another entry of the same queue with an earlier place was
    waiting and due (a call on the line or a callback): each one served out of its place.
    Returns (out of order, callbacks served)."""
    place: dict[str, float] = {}
    queue_of: dict[str, str] = {}
    callback: set[str] = set()
    waiting: dict[str, set[str]] = {}  # queue -> entries in line
    deferred: dict[str, float] = {}
    served: set[str] = set()
    wrong = 0
    examples = [] if examples is None else examples
    for e in events:
        entry = e.entry
        if entry is None:
            continue
        if e.kind == "entry.queued" and e.queue:
            place.setdefault(entry, float(e.data.get("enqueued_at", e.at)))
            queue_of[entry] = e.queue
            if e.data.get("kind") == "callback":
                callback.add(entry)
            waiting.setdefault(e.queue, set()).add(entry)
        elif e.kind in ("entry.requeued", "entry.missed") and e.queue:
            waiting.setdefault(e.queue, set()).add(entry)
        elif e.kind == "entry.callback":
            callback.add(entry)
        elif e.kind == "entry.deferred":
            deferred[entry] = float(e.data.get("until", 0.0))
            if e.queue:
                waiting.setdefault(e.queue, set()).add(entry)
        elif e.kind in ("entry.left", "entry.overflowed") and e.queue:
            waiting.get(e.queue, set()).discard(entry)
        elif e.kind == "entry.offered" and e.queue:
            line = waiting.get(e.queue, set())
            line.discard(entry)
            if entry in callback and entry not in served:
                served.add(entry)
                mine = place.get(entry, e.at)
                ahead = [o for o in line if place.get(o, e.at) < mine and deferred.get(o, 0.0) <= e.at]
                if ahead:
                    wrong += 1
                    if len(examples) < 5:
                        examples.append(f"{entry} (place {mine:.3f}) at {e.at:.3f} before {ahead[:3]}")
    return wrong, len(served)


@dataclass(frozen=True, slots=True)
class Estimates:
    pairs: int
    median_abs_error_s: float | None  # against the wait until the agent's phone rang
    median_actual_s: float | None
    median_estimate_s: float | None
    median_abs_error_to_answer_s: float | None  # against the wait until the agent answered
    median_actual_to_answer_s: float | None


def estimates(events: Sequence[Ev]) -> Estimates:
    """Each announced estimate (``entry.announced``, seconds) against the wait that followed
    it: from the announcement until the caller's hold ended and the agent's phone rang for
    them (the agent rung last, when one let it ring out first), and also until the agent
    answered. Announcements of callers who never reached an agent on that call (gave up,
    booked a callback, were told a message) have no wait to compare with and are left out."""
    ringing: dict[str, float] = {}
    rang: dict[str, float] = {}
    answered: dict[str, float] = {}
    for e in events:
        if e.kind == "entry.connected" and e.entry:
            answered.setdefault(e.entry, e.at)
            rang.setdefault(e.entry, ringing.get(e.entry, e.at))
        elif e.kind == "agent.state" and e.entry and e.data.get("to") == "ringing":
            ringing[e.entry] = e.at
    errors: list[float] = []
    actual: list[float] = []
    guessed: list[float] = []
    errors_answer: list[float] = []
    actual_answer: list[float] = []
    for e in events:
        if e.kind != "entry.announced" or not e.entry or e.entry not in rang:
            continue
        estimate = e.data.get("expected_wait")
        if estimate is None:
            continue
        waited = rang[e.entry] - e.at
        errors.append(abs(float(estimate) - waited))
        actual.append(waited)
        guessed.append(float(estimate))
        errors_answer.append(abs(float(estimate) - (answered[e.entry] - e.at)))
        actual_answer.append(answered[e.entry] - e.at)
    return Estimates(
        len(errors), _median(errors), _median(actual), _median(guessed), _median(errors_answer),
        _median(actual_answer),
    )  # fmt: skip


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


# -- the wallboard against a recount ----------------------------------------------------------


FIGURES = ("offered", "answered", "answered_within", "abandoned", "short_abandoned", "callbacks",
           "callbacks_connected", "handled")  # fmt: skip


def recount(
    events: Sequence[Ev], *, start: float, end: float, sl_threshold_s: dict[str, float],
    short_abandon_s: dict[str, float],
) -> dict[str, dict[str, int]]:  # fmt: skip
    """Per queue, the wallboard's counts from the raw log by their definitions (README and
    ``desk.wallboard``), written out here independently of its fold."""
    callbacks = {e.entry for e in events if e.kind == "entry.callback"}
    callbacks |= {e.entry for e in events if e.kind == "entry.queued" and e.data.get("kind") == "callback"}
    callbacks |= {e.entry for e in events if e.kind == "entry.offered" and e.data.get("kind") == "callback"}
    out: dict[str, dict[str, int]] = {}
    counted: set[str] = set()
    connected: set[str] = set()
    for e in events:
        if e.queue is None:
            continue
        inside = start <= e.at < end
        if e.kind == "entry.queued" and e.data.get("kind") == "call" and e.entry not in counted:
            counted.add(e.entry or "")
            if inside:
                _q(out, e.queue)["offered"] += 1
        if not inside:
            if e.kind == "entry.connected" and e.entry:
                connected.add(e.entry)
            continue
        q = _q(out, e.queue)
        if e.kind == "entry.refused":
            q["offered"] += 1
        elif e.kind == "entry.callback":
            q["callbacks"] += 1
        elif e.kind == "entry.connected" and e.entry:
            connected.add(e.entry)
            if e.entry in callbacks:
                q["callbacks_connected"] += 1
            else:
                q["answered"] += 1
                waited = e.data.get("waited")
                if waited is not None and float(waited) <= sl_threshold_s.get(e.queue, 20.0):
                    q["answered_within"] += 1
        elif e.kind == "entry.left" and e.data.get("reason", "abandoned") == "abandoned":
            if e.entry in callbacks or e.data.get("kind") == "callback":
                continue
            waited = max(0.0, float(e.data.get("waited") or 0.0))
            q["short_abandoned" if waited < short_abandon_s.get(e.queue, 5.0) else "abandoned"] += 1
        elif e.kind == "entry.ended" and e.entry in connected:
            q["handled"] += 1
            connected.discard(e.entry)
    return out


def _q(out: dict[str, dict[str, int]], key: str) -> dict[str, int]:
    if key not in out:
        out[key] = dict.fromkeys(FIGURES, 0)
    return out[key]
