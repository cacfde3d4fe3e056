"""Who may still be contacted for an inquiry, as SQL expressions every channel can share.

A citizen is left alone for an inquiry once they completed it (on any channel), opted out
(``Citizen.opted_out_at``, or the session's ``opted_out``), or reached the inquiry's
``max_contacts``. A *contact* is one delivery that went out (``Delivery.sent_at`` set: an SMS
handed to the gateway, a call dialled at least once — the retries of one delivery are
attempts of the same contact, capped by the campaign's ``max_attempts``) plus every callback
the citizen asked for during the inquiry (a ``Call`` with outcome ``callback``).

The expressions are correlated on a citizen id column and an inquiry id column (or value),
so the claim of the dialer, the SMS sender and the mode-switch planner ask the same question.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Exists, and_, exists, func, select

from callcenter import models

D = models.table(models.Delivery)
K = models.table(models.Campaign)
S = models.table(models.InquirySession)
CALL = models.table(models.Call)

#: why a claimed delivery is skipped (``Delivery.error`` of a ``skipped`` row)
COMPLETED = "completed the inquiry"
OPTED_OUT = "opted out"
MAX_CONTACTS = "max contacts reached"


def finished_session(citizen_id: Any, inquiry_id: Any) -> Exists:
    """The citizen completed the inquiry or opted out of it (any channel)."""
    return exists().where(
        and_(
            S.c.citizen_id == citizen_id,
            S.c.inquiry_id == inquiry_id,
            S.c.status.in_(("completed", "opted_out")),
        )
    )


def contacts(citizen_id: Any, inquiry_id: Any, *, besides_delivery: Any = None) -> Any:
    """How many contacts the citizen had for the inquiry (a scalar subquery), leaving out
    ``besides_delivery`` (a retry of a delivery is not a new contact)."""
    d2, k2, k3 = D.alias("contact_d"), K.alias("contact_k"), K.alias("callback_k")
    sent = [
        d2.c.citizen_id == citizen_id,
        k2.c.inquiry_id == inquiry_id,
        d2.c.sent_at.is_not(None),
    ]
    if besides_delivery is not None:
        sent.append(d2.c.id != besides_delivery)
    deliveries = (
        select(func.count()).select_from(d2.join(k2, k2.c.id == d2.c.campaign_id)).where(*sent)
    ).scalar_subquery()
    callbacks = (
        select(func.count())
        .select_from(CALL.join(k3, k3.c.id == CALL.c.campaign_id))
        .where(CALL.c.citizen_id == citizen_id, k3.c.inquiry_id == inquiry_id, CALL.c.outcome == "callback")
    ).scalar_subquery()
    return deliveries + callbacks


def may_contact(
    citizen_id: Any, opted_out_at: Any, inquiry_id: Any, max_contacts: Any, *, besides_delivery: Any = None
) -> ColumnElement[bool]:
    """True when the citizen may get one more contact (or one more try of ``besides_delivery``)."""
    return and_(
        opted_out_at.is_(None),
        ~finished_session(citizen_id, inquiry_id),
        contacts(citizen_id, inquiry_id, besides_delivery=besides_delivery) < max_contacts,
    )


def skip_reason(*, opted_out: bool, finished: bool, contacts: int, cap: int) -> str | None:
    """Why a claimed delivery must not go out (None: it may)."""
    if opted_out:
        return OPTED_OUT
    if finished:
        return COMPLETED
    if contacts >= cap:
        return MAX_CONTACTS
    return None
