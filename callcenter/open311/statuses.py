"""The life cycle in Open311's words.

GeoReport v2 knows two statuses, ``open`` and ``closed``: a request is closed once it is
resolved, a duplicate or closed (``lifecycle.OPEN`` are open; a resolved request that the
citizen reopens is open again).

mySociety's extension (FixMyStreet's ``extended_statuses``, the statuses its
``servicerequestupdates`` carry) names the steps in between; FixMyStreet reads them case-blind
with ``_`` for spaces, so 1415 sends them as mySociety writes them, upper case:

========================  ================================  ============================
1415 (lifecycle.Status)   mySociety extended status         FixMyStreet shows it as
========================  ================================  ============================
new, sent, reopened       OPEN                              open (confirmed)
acknowledged              INVESTIGATING                     investigating
in_progress               IN_PROGRESS                       in progress
action_scheduled          ACTION_SCHEDULED                  action scheduled
resolved                  FIXED                             fixed
not_responsible           INTERNAL_REFERRAL                 internal referral
duplicate                 DUPLICATE                         duplicate
closed                    CLOSED                            closed
========================  ================================  ============================

A refusal by a body is not the jurisdiction's (the ministry re-routes it to another body, an
internal referral), so 1415 never says NOT_COUNCILS_RESPONSIBILITY; refusals are internal
events in any case, so a client hears of one only through a request's ``status`` (open).
"""

from __future__ import annotations

from typing import Final

from callcenter.requests.lifecycle import OPEN, Status

#: GeoReport v2's two statuses (the ``status`` filter of GET requests takes them, comma-separated).
STANDARD: Final = ("open", "closed")

EXTENDED: Final[dict[Status, str]] = {
    Status.NEW: "OPEN",
    Status.SENT: "OPEN",
    Status.REOPENED: "OPEN",
    Status.ACKNOWLEDGED: "INVESTIGATING",
    Status.IN_PROGRESS: "IN_PROGRESS",
    Status.ACTION_SCHEDULED: "ACTION_SCHEDULED",
    Status.RESOLVED: "FIXED",
    Status.NOT_RESPONSIBLE: "INTERNAL_REFERRAL",
    Status.DUPLICATE: "DUPLICATE",
    Status.CLOSED: "CLOSED",
}


def standard(status: Status | str) -> str:
    """``open`` or ``closed``."""
    return "open" if Status(status) in OPEN else "closed"


def extended(status: Status | str) -> str:
    """mySociety's extended status of a 1415 status."""
    return EXTENDED[Status(status)]


def statuses_for(standard_status: str) -> list[str]:
    """The 1415 statuses an Open311 ``open`` or ``closed`` stands for."""
    wanted = standard_status == "open"
    return sorted(str(s) for s in Status if (s in OPEN) == wanted)
