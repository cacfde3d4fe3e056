"""SLA clocks: a request's first-response and resolution targets, counted in working time.

A clock starts when the request is made, stops when its target is met (the body acknowledges
the request; the request is resolved), and does not run while the request waits on the
citizen: finished pauses are kept as the working seconds they covered (``paused_s``), a pause
in progress as the instant it began (``paused_since``), and both push the due date back.

The state of a clock at ``now``: **breached** once it runs past its due date (a clock
stopped late stays breached), **due soon** when less than ``due_soon_share`` of the target
is left, **ok** otherwise. A request's state is the worse of its two clocks'.

All values are epoch seconds, so a recompute of many requests is arithmetic and bisections
(see calendar.WorkingCalendar); ``request_sla`` is what ``service.recompute_sla`` calls per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from callcenter.requests.calendar import WorkingCalendar

HOUR = 3600.0


class SlaState(StrEnum):
    OK = "ok"
    DUE_SOON = "due_soon"
    BREACHED = "breached"


_RANK = {SlaState.OK: 0, SlaState.DUE_SOON: 1, SlaState.BREACHED: 2}


@dataclass(frozen=True, slots=True)
class Targets:
    """A category's targets, in working hours."""

    first_response_h: float
    resolution_h: float

    def __post_init__(self) -> None:
        if not 0 < self.first_response_h <= self.resolution_h:
            raise ValueError("SLA targets: 0 < first response <= resolution (working hours)")


@dataclass(frozen=True, slots=True)
class Clock:
    started: float
    target_s: float
    paused_s: float = 0.0  # working seconds of finished pauses
    paused_since: float | None = None  # a pause in progress
    stopped: float | None = None  # when the target was met


@dataclass(frozen=True, slots=True)
class Reading:
    due: float
    state: SlaState


def paused_total(paused_s: float, paused_since: float | None, now: float, cal: WorkingCalendar) -> float:
    """Working seconds paused up to ``now``, the pause in progress included."""
    if paused_since is None:
        return paused_s
    return paused_s + cal.between_ts(paused_since, now)


def read(clock: Clock, cal: WorkingCalendar, now: float, *, due_soon_share: float = 0.25) -> Reading:
    """The clock's due date and state at ``now`` (a stopped clock is read at its stop)."""
    end = clock.stopped if clock.stopped is not None else now
    paused = paused_total(clock.paused_s, clock.paused_since, max(end, clock.started), cal)
    due = cal.add_ts(clock.started, clock.target_s + paused)
    if end > due:
        return Reading(due, SlaState.BREACHED)
    if clock.stopped is None and clock.paused_since is None:
        left = cal.between_ts(now, due)
        if left < due_soon_share * clock.target_s:
            return Reading(due, SlaState.DUE_SOON)
    return Reading(due, SlaState.OK)


def worst(*states: SlaState) -> SlaState:
    return max(states, key=_RANK.__getitem__)


@dataclass(frozen=True, slots=True)
class RequestSla:
    first_response_due: float
    resolution_due: float
    first_response: SlaState
    resolution: SlaState

    @property
    def state(self) -> SlaState:
        return worst(self.first_response, self.resolution)


def request_sla(
    *,
    created: float,
    targets: Targets,
    cal: WorkingCalendar,
    now: float,
    paused_s: float = 0.0,
    paused_since: float | None = None,
    first_response_at: float | None = None,
    resolved_at: float | None = None,
    due_soon_share: float = 0.25,
    now_worked: float | None = None,
) -> RequestSla:
    """Both clocks of one request (what ``read`` gives for each, in fewer bisections: a batch
    passes ``now_worked = cal.worked_ts(now)`` once). A resolved request has responded too
    (resolution counts as the first response when nobody acknowledged it first)."""
    at_now = cal.worked_ts(now) if now_worked is None else now_worked
    start = cal.worked_ts(created)
    paused_from = None if paused_since is None else cal.worked_ts(paused_since)
    responded = first_response_at if first_response_at is not None else resolved_at

    def clock(target_h: float, stopped: float | None) -> tuple[float, SlaState]:
        target = target_h * HOUR
        end, at_end = (now, at_now) if stopped is None else (stopped, cal.worked_ts(stopped))
        paused = paused_s
        if paused_from is not None and paused_since is not None and paused_since < end:
            paused += at_end - paused_from
        at_due = start + target + paused
        due = cal.at_worked(at_due)
        if end > due:
            return due, SlaState.BREACHED
        if stopped is None and paused_since is None and at_due - at_now < due_soon_share * target:
            return due, SlaState.DUE_SOON
        return due, SlaState.OK

    first_due, first = clock(targets.first_response_h, responded)
    resolution_due, resolution = clock(targets.resolution_h, resolved_at)
    return RequestSla(first_due, resolution_due, first, resolution)
