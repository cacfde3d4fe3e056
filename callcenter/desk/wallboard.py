"""The supervisor's figures: per queue, per agent, staffing now, and the 15-minute interval
report — all from one fold over the routing event log, so the live wallboard and the history
agree by construction.

:func:`fold` is the one function that turns events into figures. The wallboard feeds it
today's events (``[midnight, now)``), the report a day's, cut in 15-minute intervals; each
figure is a sum (counts and seconds), so the intervals of a day add up to the day. Events
before the window only give context (when a call was connected, when a wrap-up began, an
agent's state at the start) and are never counted.

The definitions (per queue, ``T`` = ``sl_threshold_s``, ``S`` = ``short_abandon_s``):

- **offered**: callers who joined the queue (a callback keeping a caller's place is the same
  caller, not counted again) and callers refused because the queue was full;
- **answered** / **answered within T**: callers connected to an agent (callbacks apart), by
  the wait until connected;
- **abandoned**: callers who hung up while waiting or while an agent's phone rang, after
  ``S`` seconds; **short abandons** (sooner) are counted apart and left out of the rates;
- **service level** = answered within T / (answered + abandoned);
- **abandonment rate** = abandoned / (answered + abandoned);
- **ASA** (average speed of answer) = total wait of the answered / answered;
- **AHT** (average handling time) = (talk + wrap-up) / calls handled, talk from
  ``entry.connected`` to ``entry.ended``, wrap-up from the agent's ``wrap_up`` to the state
  after it (each counted when it ends);
- **patience** (for Erlang A) = the time every caller spent waiting / abandons, the
  maximum-likelihood estimate for exponential patience with censored waits;
- **rating** = the mean of the callers' 1-5 ratings (``call.rated``) in the window, with their
  count (per queue, and per agent rated); anything but a whole 1 to 5 is not a rating;
- **transferred**: calls an agent sent on to another queue (``entry.transferred``, counted
  where the transfer was made; the caller is offered again in the other queue).

Usage::

    board = await read_wallboard(engine, store, timezone="Africa/Tripoli")
    report = await interval_report(engine, date(2026, 12, 5), "queue", timezone="Africa/Tripoli")
    text = report_csv(report)
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.routing.config import (
    DEFAULT_SHORT_ABANDON_S,
    DEFAULT_SL_THRESHOLD_S,
    QueueSettings,
    queue_settings,
)
from callcenter.routing.model import STAFFED, AgentState, EntryKind, qualifications
from callcenter.routing.staffing import agents_needed
from callcenter.routing.store import AgentRecord, RoutingEventValue, RoutingStore, Snapshot

#: Events this long before a window are read for context (calls and states that began then).
LOOKBACK: Final = timedelta(hours=12)
INTERVAL: Final = timedelta(minutes=15)
#: The arrival rate for staffing: the higher of these windows' rates (a surge shows at once,
#: a lull is trusted only once it has lasted the longer window).
RATE_WINDOWS_S: Final = (15 * 60.0, 60 * 60.0)
#: Staffing beyond this many agents is shown as "more than" rather than searched for.
MAX_AGENTS: Final = 1000
#: Only a caller who hung up counts as abandoned (an entry ended for another reason is not).
ABANDONED: Final = "abandoned"

By = Literal["queue", "agent"]


# -- the figures ---------------------------------------------------------------------------------


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass(slots=True)
class QueueTally:
    """A queue's figures over a window: sums only, so windows add up (``a + b``)."""

    offered: int = 0
    refused: int = 0  # the queue was full
    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0  # after the short-abandon threshold
    short_abandoned: int = 0
    callbacks: int = 0  # callers who chose to be called back, keeping their place
    callbacks_connected: int = 0
    overflowed: int = 0  # max wait reached
    wait_answered: float = 0.0  # seconds: ASA's numerator
    wait_all: float = 0.0  # seconds every caller waited, however it ended: patience's numerator
    handled: int = 0  # calls ended with an agent (callbacks included)
    talk: float = 0.0
    wrap: float = 0.0
    rated: int = 0  # callers who rated the call
    rating_total: float = 0.0
    transferred: int = 0  # sent on to another queue by an agent

    def __add__(self, other: QueueTally) -> QueueTally:
        return QueueTally(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def service_level(self) -> float | None:
        return _ratio(self.answered_within, self.answered + self.abandoned)

    @property
    def abandon_rate(self) -> float | None:
        return _ratio(self.abandoned, self.answered + self.abandoned)

    @property
    def asa(self) -> float | None:
        return _ratio(self.wait_answered, self.answered)

    @property
    def aht(self) -> float | None:
        return _ratio(self.talk + self.wrap, self.handled)

    @property
    def rating(self) -> float | None:
        return _ratio(self.rating_total, self.rated)

    @property
    def patience(self) -> float | None:
        """Mean patience in seconds, once callers have abandoned (else unknown)."""
        abandons = self.abandoned + self.short_abandoned
        return self.wait_all / abandons if abandons and self.wait_all > 0 else None

    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


@dataclass(slots=True)
class AgentTally:
    """An agent's figures over a window (seconds and counts; windows add up)."""

    handled: int = 0
    talk: float = 0.0
    wrap: float = 0.0
    paused: float = 0.0
    missed: int = 0
    rated: int = 0
    rating_total: float = 0.0
    transferred: int = 0

    def __add__(self, other: AgentTally) -> AgentTally:
        return AgentTally(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def rating(self) -> float | None:
        return _ratio(self.rating_total, self.rated)

    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


@dataclass(slots=True)
class Tally:
    """Every queue's and agent's figures over one window."""

    queues: dict[str, QueueTally] = field(default_factory=dict)
    agents: dict[str, AgentTally] = field(default_factory=dict)

    def queue(self, key: str) -> QueueTally:
        found = self.queues.get(key)
        if found is None:
            found = self.queues[key] = QueueTally()
        return found

    def agent(self, key: str) -> AgentTally:
        found = self.agents.get(key)
        if found is None:
            found = self.agents[key] = AgentTally()
        return found

    def __add__(self, other: Tally) -> Tally:
        out = Tally()
        for source in (self, other):
            for key, q in source.queues.items():
                out.queues[key] = out.queue(key) + q
            for key, a in source.agents.items():
                out.agents[key] = out.agent(key) + a
        return out

    def total(self) -> QueueTally:
        out = QueueTally()
        for q in self.queues.values():
            out = out + q
        return out


@dataclass(frozen=True, slots=True)
class Thresholds:
    sl_threshold_s: float = DEFAULT_SL_THRESHOLD_S
    short_abandon_s: float = DEFAULT_SHORT_ABANDON_S


def thresholds_of(queues: Iterable[QueueSettings]) -> dict[str, Thresholds]:
    return {q.queue.id: Thresholds(q.sl_threshold_s, q.short_abandon_s) for q in queues}


@dataclass(slots=True)
class _Context:
    """What earlier events tell about later ones."""

    queued: set[str] = field(default_factory=set)  # entries already counted as offered
    callbacks: set[str] = field(default_factory=set)  # entries that became callbacks
    connected: dict[str, float] = field(default_factory=dict)  # entry -> connected at
    wrapping: dict[str, tuple[float, str | None]] = field(default_factory=dict)  # agent -> (since, queue)
    states: dict[str, tuple[str, float]] = field(default_factory=dict)  # agent -> (state, since)


def fold(
    events: Iterable[RoutingEventValue],
    *,
    thresholds: Mapping[str, Thresholds],
    edges: Sequence[float],
) -> list[Tally]:
    """The figures of each window ``[edges[i], edges[i + 1])`` from the event log, in order of
    time (``at``, then id). Events before ``edges[0]`` are context only; from ``edges[-1]`` on
    they are not read. Time in a state is cut at the windows' edges; a talk or a wrap-up
    counts in the window where it ends.

    ``fold(events, thresholds={}, edges=(start, end))[0]`` is the figures of one window.
    """
    if len(edges) < 2 or any(b <= a for a, b in pairwise(edges)):
        raise ValueError("edges must be at least two increasing times")
    start, end = edges[0], edges[-1]
    out = [Tally() for _ in edges[1:]]
    ctx = _Context()
    default = Thresholds()

    def window(at: float) -> Tally | None:
        if at < start or at >= end:
            return None
        return out[bisect_right(edges, at) - 1]

    def state_time(agent: str, state: str, since: float, until: float) -> None:
        if state != str(AgentState.PAUSED):
            return
        lo, hi = max(since, start), min(until, end)
        if hi <= lo:
            return
        i = bisect_right(edges, lo) - 1
        while i < len(out) and edges[i] < hi:
            overlap = min(hi, edges[i + 1]) - max(lo, edges[i])
            if overlap > 0:
                out[i].agent(agent).paused += overlap
            i += 1

    for e in events:
        if e.at >= end:
            break
        tally = window(e.at)
        data = e.data
        kind = e.kind
        if kind == "entry.queued" and e.entry is not None:
            if data.get("kind") == str(EntryKind.CALLBACK):
                ctx.callbacks.add(e.entry)
            elif e.entry not in ctx.queued:
                ctx.queued.add(e.entry)
                if tally is not None and e.queue:
                    tally.queue(e.queue).offered += 1
        elif kind == "entry.refused":
            if tally is not None and e.queue:
                q = tally.queue(e.queue)
                q.offered += 1
                q.refused += 1
        elif kind == "entry.callback" and e.entry is not None:
            ctx.callbacks.add(e.entry)
            if tally is not None and e.queue:
                q = tally.queue(e.queue)
                q.callbacks += 1
                q.wait_all += _seconds(data.get("waited"))
        elif kind == "entry.overflowed":
            if tally is not None and e.queue:
                q = tally.queue(e.queue)
                q.overflowed += 1
                q.wait_all += _seconds(data.get("waited"))
        elif kind == "entry.offered" and e.entry is not None:
            if data.get("kind") == str(EntryKind.CALLBACK):
                ctx.callbacks.add(e.entry)
        elif kind == "entry.connected" and e.entry is not None:
            ctx.connected[e.entry] = e.at
            if tally is not None and e.queue:
                q = tally.queue(e.queue)
                if e.entry in ctx.callbacks:
                    q.callbacks_connected += 1
                else:
                    waited = data.get("waited")
                    q.answered += 1
                    if waited is not None:
                        q.wait_answered += float(waited)
                        q.wait_all += float(waited)
                        if float(waited) <= thresholds.get(e.queue, default).sl_threshold_s:
                            q.answered_within += 1
        elif kind == "entry.left" and e.entry is not None:
            is_callback = e.entry in ctx.callbacks or data.get("kind") == str(EntryKind.CALLBACK)
            if (
                data.get("reason", ABANDONED) == ABANDONED
                and not is_callback
                and tally is not None
                and e.queue
            ):
                q = tally.queue(e.queue)
                waited = _seconds(data.get("waited"))
                if waited < thresholds.get(e.queue, default).short_abandon_s:
                    q.short_abandoned += 1
                else:
                    q.abandoned += 1
                q.wait_all += waited
        elif kind == "entry.missed":
            if tally is not None and e.agent:
                tally.agent(e.agent).missed += 1
        elif kind == "entry.ended" and e.entry is not None:
            began = ctx.connected.pop(e.entry, None)
            if began is not None and tally is not None:
                talk = e.at - began
                if e.queue:
                    q = tally.queue(e.queue)
                    q.handled += 1
                    q.talk += talk
                if e.agent:
                    a = tally.agent(e.agent)
                    a.handled += 1
                    a.talk += talk
        elif kind == "call.rated":
            rating = _rating(data.get("rating"))
            if rating is not None and tally is not None:
                if e.queue:
                    q = tally.queue(e.queue)
                    q.rated += 1
                    q.rating_total += rating
                if e.agent:
                    a = tally.agent(e.agent)
                    a.rated += 1
                    a.rating_total += rating
        elif kind == "entry.transferred":
            if tally is not None:
                if e.queue:
                    tally.queue(e.queue).transferred += 1
                if e.agent:
                    tally.agent(e.agent).transferred += 1
        elif kind == "agent.state" and e.agent:
            before, after = str(data.get("from", "")), str(data.get("to", ""))
            previous = ctx.states.get(e.agent)
            if previous is not None:
                state_time(e.agent, previous[0], previous[1], e.at)
            ctx.states[e.agent] = (after, e.at)
            if before == str(AgentState.WRAP_UP):
                wrapping = ctx.wrapping.pop(e.agent, None)
                if wrapping is not None and tally is not None:
                    wrap = e.at - wrapping[0]
                    tally.agent(e.agent).wrap += wrap
                    if wrapping[1]:
                        tally.queue(wrapping[1]).wrap += wrap
            if after == str(AgentState.WRAP_UP):
                ctx.wrapping[e.agent] = (e.at, e.queue)
    for agent, (state, since) in ctx.states.items():
        state_time(agent, state, since, end)
    return out


def _rating(value: Any) -> int | None:
    """A caller's rating: a whole 1 to 5 (a key pressed), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() and 1 <= number <= 5 else None


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def tally(
    events: Iterable[RoutingEventValue], *, thresholds: Mapping[str, Thresholds], start: float, end: float
) -> Tally:
    """The figures of ``[start, end)`` (see :func:`fold`)."""
    return fold(events, thresholds=thresholds, edges=(start, end))[0]


# -- staffing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Staffing:
    """Agents needed now to reach the queue's target, beside those staffed."""

    staffed: int
    arrivals_per_hour: float
    aht: float | None  # the handling time used (today's, else the store's recent figure)
    patience: float | None  # None: Erlang C (nobody has abandoned yet today)
    needed: int | None  # None: no handling time known yet
    beyond: bool = False  # more than MAX_AGENTS would be needed (shown as such)

    @property
    def model(self) -> str:
        return "erlang_a" if self.patience is not None else "erlang_c"

    @property
    def short(self) -> int:
        """Agents missing (0 when enough are staffed)."""
        return max(0, (self.needed or 0) - self.staffed)


def staffing_now(
    *,
    settings: QueueSettings,
    staffed: int,
    recent: Sequence[tuple[float, int]],
    today: QueueTally,
    fallback_aht: float | None = None,
) -> Staffing:
    """``recent``: (window seconds, callers offered in it), e.g. the last 15 and 60 minutes;
    the higher rate is used. AHT and patience are today's (patience known once callers have
    abandoned: then Erlang A, else Erlang C)."""
    rate = max((offered / seconds for seconds, offered in recent if seconds > 0), default=0.0)
    aht = today.aht or fallback_aht or None
    patience = today.patience
    if aht is None:
        return Staffing(staffed, rate * 3600, None, patience, None)
    try:
        needed = agents_needed(
            arrival_rate=rate,
            aht=aht,
            target_sl=min(settings.sl_target, 0.999),
            threshold_s=settings.sl_threshold_s,
            patience=patience,
            max_agents=MAX_AGENTS,
        )
    except ValueError:
        return Staffing(staffed, rate * 3600, aht, patience, MAX_AGENTS, beyond=True)
    return Staffing(staffed, rate * 3600, aht, patience, needed)


def serves(record: AgentRecord, settings: QueueSettings) -> bool:
    return bool(qualifications(record.agent.skills, (settings.queue,)))


# -- reading the log ------------------------------------------------------------------------------


def day_bounds(day: date, timezone: str) -> tuple[float, float]:
    """A local day as epoch seconds ``[midnight, next midnight)``."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.timestamp(), end.timestamp()


def today(now: float, timezone: str) -> date:
    return datetime.fromtimestamp(now, ZoneInfo(timezone)).date()


async def read_events(engine: AsyncEngine, start: float, end: float) -> list[RoutingEventValue]:
    """The log's events in ``[start, end)``, in order."""
    ev = models.table(models.RoutingEvent)
    query = (
        select(ev.c.at, ev.c.kind, ev.c.agent, ev.c.entry, ev.c.queue, ev.c.data)
        .where(ev.c.at >= datetime.fromtimestamp(start, UTC), ev.c.at < datetime.fromtimestamp(end, UTC))
        .order_by(ev.c.at, ev.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [RoutingEventValue(r.kind, _epoch(r.at), r.agent, r.entry, r.queue, r.data or {}) for r in rows]


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


async def read_queues(engine: AsyncEngine) -> tuple[QueueSettings, ...]:
    """Every queue (inactive ones too: their past calls keep their thresholds)."""
    q = models.table(models.ServiceQueue)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(q).order_by(q.c.key))).all()
    return tuple(
        queue_settings(
            r.key, service=r.service, municipality=r.municipality, language=r.language,
            config=r.config, name_ar=r.name_ar, name_en=r.name_en,
        )
        for r in rows
    )  # fmt: skip


async def pending_callbacks(engine: AsyncEngine) -> dict[str, tuple[int, float]]:
    """Per queue: callbacks waiting for their turn, and the oldest place (epoch seconds)."""
    cb = models.table(models.Callback)
    query = (
        select(cb.c.queue, func.count(), func.min(cb.c.enqueued_at))
        .where(cb.c.status == "pending")
        .group_by(cb.c.queue)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {str(r[0]): (int(r[1]), float(r[2] or 0.0)) for r in rows}


# -- the wallboard ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueLine:
    settings: QueueSettings
    waiting: int  # callers on the line, waiting (callbacks apart)
    longest_wait: float | None  # seconds, of those waiting
    today: QueueTally
    callbacks_pending: int
    oldest_callback: float | None  # seconds since the oldest pending callback's place
    staffing: Staffing

    @property
    def key(self) -> str:
        return self.settings.queue.id


@dataclass(frozen=True, slots=True)
class AgentLine:
    id: str
    name: str
    state: str
    in_state: float  # seconds
    pause_reason: str | None
    queue: str | None
    today: AgentTally


@dataclass(frozen=True, slots=True)
class Wallboard:
    now: float
    queues: tuple[QueueLine, ...]
    agents: tuple[AgentLine, ...]
    by_state: dict[str, int]
    total: QueueTally  # every queue's figures of today together

    @property
    def staffed(self) -> int:
        return sum(n for state, n in self.by_state.items() if AgentState(state) in STAFFED)


def wallboard_from(
    snap: Snapshot,
    events: Sequence[RoutingEventValue],
    *,
    queues: Sequence[QueueSettings],
    day_start: float,
    callbacks: Mapping[str, tuple[int, float]] | None = None,
) -> Wallboard:
    """The wallboard from values: the live state, the log from before ``day_start`` on, the
    pending callbacks (pure: tests feed it hand-made events)."""
    now = snap.now
    limits = thresholds_of(queues)
    day = tally(events, thresholds=limits, start=day_start, end=now)
    recent = [
        (seconds, tally(events, thresholds=limits, start=now - seconds, end=now))
        for seconds in RATE_WINDOWS_S
    ]
    callbacks = callbacks or {}
    waiting: dict[str, list[float]] = {}
    for w in snap.entries.values():
        if w.entry.kind is EntryKind.CALL:
            waiting.setdefault(w.entry.queue, []).append(now - w.entry.enqueued_at)
    lines = []
    for settings in queues:
        key = settings.queue.id
        waits = waiting.get(key, [])
        staffed = sum(1 for r in snap.agents.values() if r.agent.state in STAFFED and serves(r, settings))
        stats = snap.stats.get(key)
        count, oldest = callbacks.get(key, (0, 0.0))
        lines.append(
            QueueLine(
                settings=settings,
                waiting=len(waits),
                longest_wait=max(waits) if waits else None,
                today=day.queues.get(key, QueueTally()),
                callbacks_pending=count,
                oldest_callback=max(0.0, now - oldest) if count else None,
                staffing=staffing_now(
                    settings=settings,
                    staffed=staffed,
                    recent=[(s, t.queues.get(key, QueueTally()).offered) for s, t in recent],
                    today=day.queues.get(key, QueueTally()),
                    fallback_aht=stats.aht if stats and stats.aht > 0 else None,
                ),
            )
        )
    agents = tuple(
        AgentLine(
            id=r.id,
            name=r.name or r.id,
            state=str(r.agent.state),
            in_state=max(0.0, now - r.agent.since),
            pause_reason=r.agent.pause_reason,
            queue=r.queue,
            today=day.agents.get(r.id, AgentTally()),
        )
        for r in sorted(snap.agents.values(), key=lambda r: (r.name or r.id).casefold())
    )
    by_state: dict[str, int] = {}
    for r in snap.agents.values():
        by_state[str(r.agent.state)] = by_state.get(str(r.agent.state), 0) + 1
    total = QueueTally()
    for line in lines:
        total = total + line.today
    return Wallboard(now, tuple(lines), agents, by_state, total)


async def read_wallboard(engine: AsyncEngine, store: RoutingStore, *, timezone: str) -> Wallboard:
    """Today's wallboard (the local day of ``timezone``) from the store and the log."""
    snap = await store.snapshot()
    day_start, _ = day_bounds(today(snap.now, timezone), timezone)
    queues = await read_queues(engine)
    events = await read_events(engine, day_start - LOOKBACK.total_seconds(), snap.now + 1)
    return wallboard_from(
        snap, events, queues=queues, day_start=day_start, callbacks=await pending_callbacks(engine)
    )


# -- the 15-minute report -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportRow:
    start: float  # epoch seconds
    end: float
    subject: str  # a queue key or an agent id
    queue: QueueTally | None = None
    agent: AgentTally | None = None


@dataclass(frozen=True, slots=True)
class Report:
    day: date
    by: By
    timezone: str
    rows: tuple[ReportRow, ...]  # intervals with something in them, by subject then time
    totals: dict[str, QueueTally | AgentTally]  # per subject, the day
    names: dict[str, tuple[str, str]]  # subject -> (Arabic name, English name)


def report_from(
    events: Sequence[RoutingEventValue],
    *,
    day: date,
    by: By,
    timezone: str,
    queues: Sequence[QueueSettings],
    now: float | None = None,
    names: Mapping[str, str] | None = None,
) -> Report:
    """The day's 15-minute rows from values (up to ``now`` when the day is still going)."""
    start, day_end = day_bounds(day, timezone)
    end = min(day_end, now) if now is not None else day_end
    step = INTERVAL.total_seconds()
    edges = [start]
    while edges[-1] + step < end:
        edges.append(edges[-1] + step)
    if end > start:
        edges.append(end)
    else:
        edges.append(start + step)  # a day not begun yet: one empty interval
    windows = fold(events, thresholds=thresholds_of(queues), edges=edges)
    rows: list[ReportRow] = []
    totals: dict[str, Any] = {}
    for i, window in enumerate(windows):
        subjects = window.queues if by == "queue" else window.agents
        until = min(edges[i] + step, day_end)  # the interval's own end (the current one is not over)
        for subject, figures in subjects.items():
            if figures.empty():
                continue
            if by == "queue":
                assert isinstance(figures, QueueTally)
                rows.append(ReportRow(edges[i], until, subject, queue=figures))
                totals[subject] = totals.get(subject, QueueTally()) + figures
            else:
                assert isinstance(figures, AgentTally)
                rows.append(ReportRow(edges[i], until, subject, agent=figures))
                totals[subject] = totals.get(subject, AgentTally()) + figures
    rows.sort(key=lambda r: (r.subject, r.start))
    if by == "queue":
        labels = {q.queue.id: (q.name_ar or q.queue.id, q.name_en or q.name_ar or q.queue.id) for q in queues}
    else:
        labels = {a: (n, n) for a, n in (names or {}).items()}
    for subject in totals:
        labels.setdefault(subject, (subject, subject))
    return Report(day, by, timezone, tuple(rows), totals, labels)


async def agent_names(engine: AsyncEngine, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted({int(i) for i in ids if i.isdigit()})
    if not wanted:
        return {}
    u = models.table(models.User)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(u.c.id, u.c.name, u.c.email).where(u.c.id.in_(wanted)))).all()
    return {str(r.id): str(r.name or r.email) for r in rows}


async def interval_report(
    engine: AsyncEngine, day: date, by: By, *, timezone: str, now: float | None = None
) -> Report:
    """The day's 15-minute intervals per queue or per agent, from the log."""
    start, end = day_bounds(day, timezone)
    clock = now if now is not None else datetime.now(UTC).timestamp()
    events = await read_events(engine, start - LOOKBACK.total_seconds(), min(end, clock + 1))
    names = await agent_names(engine, {e.agent for e in events if e.agent}) if by == "agent" else {}
    return report_from(
        events, day=day, by=by, timezone=timezone, queues=await read_queues(engine), now=clock, names=names
    )


QUEUE_COLUMNS: Final = (
    "queue", "interval_start", "interval_end", "offered", "answered", "answered_within_threshold",
    "abandoned", "short_abandoned", "callbacks", "service_level", "asa_s", "aht_s", "abandon_rate",
    "ratings", "rating_mean", "transferred",
)  # fmt: skip
AGENT_COLUMNS: Final = (
    "agent", "name", "interval_start", "interval_end", "handled", "talk_s", "wrap_s", "paused_s", "missed",
    "ratings", "rating_mean", "transferred",
)  # fmt: skip


def _num(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def report_csv(report: Report) -> str:
    """The report as CSV text (UTF-8 with a BOM when written: see the page), one line per
    interval; times in the report's time zone."""
    zone = ZoneInfo(report.timezone)
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def hhmm(at: float) -> str:
        return datetime.fromtimestamp(at, zone).strftime("%Y-%m-%d %H:%M")

    if report.by == "queue":
        writer.writerow(QUEUE_COLUMNS)
        for row in report.rows:
            q = row.queue
            assert q is not None
            writer.writerow(
                [
                    row.subject, hhmm(row.start), hhmm(row.end), q.offered, q.answered, q.answered_within,
                    q.abandoned, q.short_abandoned, q.callbacks, _num(q.service_level, 4), _num(q.asa),
                    _num(q.aht), _num(q.abandon_rate, 4), q.rated, _num(q.rating, 2), q.transferred,
                ]
            )  # fmt: skip
    else:
        writer.writerow(AGENT_COLUMNS)
        for row in report.rows:
            a = row.agent
            assert a is not None
            writer.writerow(
                [
                    row.subject, report.names.get(row.subject, ("", ""))[1], hhmm(row.start), hhmm(row.end),
                    a.handled, _num(a.talk), _num(a.wrap), _num(a.paused), a.missed, a.rated,
                    _num(a.rating, 2), a.transferred,
                ]
            )  # fmt: skip
    return buffer.getvalue()
