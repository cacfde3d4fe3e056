"""A request's life cycle, modelled on FixMyStreet's states, as a pure table.

::

    new ─► sent ─► acknowledged ─► in_progress ⇄ action_scheduled ─► resolved ─► closed
            │            │               │                │              │ ▲       │
            │            └───────────────┴──── resolved ◄─┘              ▼ │       ▼
            │                                                          reopened (citizen, in time)
            ├─► not_responsible ─► sent (the ministry re-routes: an internal referral, counted)
            │                   └► closed
            └─► duplicate (linked to its original) ─► sent (not a duplicate after all)

Who moves a request: the responsible body's officers work it (acknowledge, progress, resolve,
refuse as not responsible, mark duplicate); the ministry (supervisors, admins) routes, re-routes
refused requests, closes and corrects; the citizen (or an agent on their behalf) reopens a
resolved request within the reopening window; the engine (``system``) sends new requests and
closes resolved ones when the window has passed.

Public changes (``Transition.public``) are those the citizen is told of; refusals, routing and
re-routing are internal (the citizen sees the request stay with the ministry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from callcenter.errors import CallCenterError, InvalidTransition


class Status(StrEnum):
    NEW = "new"  # taken, not yet sent to a body
    SENT = "sent"  # with the responsible body (routed or re-routed)
    ACKNOWLEDGED = "acknowledged"  # the body has seen it (the first response)
    IN_PROGRESS = "in_progress"
    ACTION_SCHEDULED = "action_scheduled"
    RESOLVED = "resolved"  # fixed; the citizen may still reopen it
    REOPENED = "reopened"  # the citizen says it is not fixed: the body works it again
    NOT_RESPONSIBLE = "not_responsible"  # refused by the body: back with the ministry
    DUPLICATE = "duplicate"  # final: its original's updates reach its reporter
    CLOSED = "closed"  # final


#: Not finished: the SLA clocks run (or are paused) and the request is in a work queue.
OPEN: Final = frozenset(
    {
        Status.NEW, Status.SENT, Status.ACKNOWLEDGED, Status.IN_PROGRESS,
        Status.ACTION_SCHEDULED, Status.REOPENED, Status.NOT_RESPONSIBLE,
    }
)  # fmt: skip
#: The states a body works a request in.
WORKING: Final = frozenset(
    {Status.SENT, Status.ACKNOWLEDGED, Status.IN_PROGRESS, Status.ACTION_SCHEDULED, Status.REOPENED}
)
#: Reached, the first-response clock stops.
RESPONDED: Final = frozenset({Status.ACKNOWLEDGED, Status.IN_PROGRESS, Status.ACTION_SCHEDULED})

# who acts: the staff roles (accounts.roles.Role values) and two more
CITIZEN: Final = "citizen"
SYSTEM: Final = "system"
OFFICER, SUPERVISOR, ADMIN, AGENT = "officer", "supervisor", "admin", "agent"

BODY: Final = frozenset({OFFICER, SUPERVISOR, ADMIN})  # who works a request
MINISTRY: Final = frozenset({SUPERVISOR, ADMIN})  # who routes, re-routes and corrects
REOPENERS: Final = frozenset({CITIZEN, AGENT})  # within the window; the ministry at any time

#: Statuses the citizen is told of when a request reaches them.
PUBLIC: Final = frozenset(
    {
        Status.ACKNOWLEDGED, Status.IN_PROGRESS, Status.ACTION_SCHEDULED, Status.RESOLVED,
        Status.REOPENED, Status.DUPLICATE, Status.CLOSED,
    }
)  # fmt: skip
#: Moves that need a note saying why (shown to the ministry or the citizen).
NOTE_REQUIRED: Final = frozenset({Status.NOT_RESPONSIBLE, Status.REOPENED})


def _moves() -> dict[tuple[Status, Status], frozenset[str]]:
    s = Status
    table: dict[tuple[Status, Status], frozenset[str]] = {}

    def allow(sources: frozenset[Status] | set[Status], target: Status, roles: frozenset[str]) -> None:
        for source in sources:
            if source is not target:
                table[(source, target)] = table.get((source, target), frozenset()) | roles

    allow({s.NEW}, s.SENT, MINISTRY | {SYSTEM})
    allow({s.NOT_RESPONSIBLE, s.DUPLICATE}, s.SENT, MINISTRY)  # re-route; undo a duplicate
    allow({s.SENT, s.REOPENED}, s.ACKNOWLEDGED, BODY)
    allow(WORKING, s.IN_PROGRESS, BODY)
    allow(WORKING, s.ACTION_SCHEDULED, BODY)
    allow(WORKING, s.RESOLVED, BODY)
    allow(WORKING | {s.NEW}, s.NOT_RESPONSIBLE, BODY)
    allow(OPEN, s.DUPLICATE, BODY)
    allow({s.RESOLVED}, s.CLOSED, BODY | {SYSTEM})
    allow(OPEN, s.CLOSED, MINISTRY)
    allow({s.RESOLVED, s.CLOSED}, s.REOPENED, REOPENERS | MINISTRY)
    return table


MOVES: Final = _moves()


class NotAllowed(CallCenterError):
    """The move exists, but not for this role."""

    status_code = 403
    error_id = "not_allowed"


class ReopenTooLate(InvalidTransition):
    error_id = "reopen_too_late"


class NoteRequired(CallCenterError):
    status_code = 422
    error_id = "note_required"


@dataclass(frozen=True, slots=True)
class Transition:
    source: Status
    target: Status
    public: bool  # the citizen is told
    referral: bool  # a refusal: counts as one bounce between bodies
    responded: bool  # stops the first-response clock (if still running)
    resolved: bool  # stops the resolution clock


def check(
    source: Status | str,
    target: Status | str,
    role: str,
    *,
    note: str = "",
    now: datetime | None = None,
    resolved_at: datetime | None = None,
    reopen_window: timedelta | None = None,
) -> Transition:
    """The move ``source`` -> ``target`` by ``role``, or the error that refuses it.

    A citizen's reopening needs ``now``, ``resolved_at`` and ``reopen_window``: after the
    window only the ministry reopens.
    """
    src, dst = Status(source), Status(target)
    roles = MOVES.get((src, dst))
    if roles is None:
        raise InvalidTransition(f"a request cannot go from {src} to {dst}", source=str(src), target=str(dst))
    if role not in roles:
        raise NotAllowed(f"a {role} cannot move a request from {src} to {dst}", role=role)
    if dst in NOTE_REQUIRED and not note.strip():
        raise NoteRequired(f"say why the request is {dst}", target=str(dst))
    if dst is Status.REOPENED and role not in MINISTRY:
        if now is None or resolved_at is None or reopen_window is None:
            raise ValueError("a citizen's reopening needs now, resolved_at and reopen_window")
        if now - resolved_at > reopen_window:
            raise ReopenTooLate(
                "the request was resolved too long ago to reopen: make a new one",
                days=reopen_window.total_seconds() / 86400,
            )
    return Transition(
        source=src,
        target=dst,
        public=dst in PUBLIC,
        referral=dst is Status.NOT_RESPONSIBLE,
        responded=dst in RESPONDED or dst is Status.RESOLVED,
        resolved=dst in (Status.RESOLVED, Status.DUPLICATE, Status.CLOSED),
    )


def moves_for(source: Status | str, role: str) -> list[Status]:
    """The statuses ``role`` may move a request in ``source`` to (the buttons a page shows)."""
    src = Status(source)
    return [dst for dst in Status if role in MOVES.get((src, dst), frozenset())]


def after_refusal(referrals: int, *, max_referrals: int = 2) -> tuple[int, bool]:
    """A body refused the request: the referral count and whether the ministry is flagged
    (bounced between bodies more than ``max_referrals`` times)."""
    count = referrals + 1
    return count, count > max_referrals
