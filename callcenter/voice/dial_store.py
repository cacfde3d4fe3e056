"""The dialer's database work: which voice campaigns run, claiming the outbox, and writing
what each call did.

Mirrors the SMS sender: a claim takes ``pending`` rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several dialers never take the same row) and marks them ``sending``; what is
not dialled goes back. Unlike SMS, the claim does not count an attempt: the attempt is
counted when the Originate is accepted (:func:`mark_dialled`), or with its outcome.
A row the dialer tracks keeps a fresh ``claimed_at`` (:func:`heartbeat`), so the reconciler
only ever sees rows whose dialer is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.campaigns.quiet import parse_hhmm
from callcenter.settings import Settings
from callcenter.voice import dial_rules
from callcenter.voice.outcomes import Decision

D = models.table(models.Delivery)
C = models.table(models.Citizen)
K = models.table(models.Campaign)
I = models.table(models.Inquiry)  # noqa: E741
S = models.table(models.InquirySession)
CALL = models.table(models.Call)


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    """What dialling a running voice campaign needs, read once per refresh."""

    id: int
    inquiry_id: int
    max_attempts: int
    max_contacts: int
    quiet: tuple[time | None, time | None]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for dialling (``sending``, attempt not yet counted)."""

    delivery_id: int
    campaign_id: int
    citizen_id: int
    attempts: int  # tries so far: this one will be attempts + 1
    phone: str


async def running_campaigns(engine: AsyncEngine, settings: Settings) -> dict[int, CampaignInfo]:
    """Voice campaigns that are running, of inquiries that are running."""
    query = (
        select(K.c.id, K.c.inquiry_id, K.c.max_attempts, K.c.quiet_start, K.c.quiet_end, I.c.max_contacts)
        .select_from(K.join(I, I.c.id == K.c.inquiry_id))
        .where(K.c.channel == "voice", K.c.status == "running", I.c.status == "running")
        .order_by(K.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {
        int(r.id): CampaignInfo(
            int(r.id),
            int(r.inquiry_id),
            int(r.max_attempts),
            int(r.max_contacts),
            (
                parse_hhmm(r.quiet_start) or settings.quiet_start,
                parse_hhmm(r.quiet_end) or settings.quiet_end,
            ),
        )
        for r in rows
    }


async def claim(engine: AsyncEngine, campaign: CampaignInfo, limit: int) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries; rows whose citizen may no longer be contacted
    (completed, opted out, max contacts) are marked ``skipped`` on the way."""
    due = or_(D.c.next_attempt_at.is_(None), D.c.next_attempt_at <= func.now())
    page = (
        select(
            D.c.id,
            D.c.attempts,
            D.c.citizen_id,
            C.c.phone,
            C.c.opted_out_at,
            dial_rules.finished_session(C.c.id, campaign.inquiry_id).label("finished"),
            dial_rules.contacts(C.c.id, campaign.inquiry_id, besides_delivery=D.c.id).label("contacts"),
        )
        .select_from(D.join(C, C.c.id == D.c.citizen_id))
        .where(D.c.campaign_id == campaign.id, D.c.status == "pending", due)
        .order_by(D.c.id)
        .limit(limit)
    )
    if engine.dialect.name == "postgresql":
        page = page.with_for_update(of=D, skip_locked=True)
    async with engine.begin() as conn:
        rows = (await conn.execute(page)).all()
        if not rows:
            return []
        skipped: list[dict[str, Any]] = []
        chosen: dict[int, Any] = {}
        for row in rows:
            reason = dial_rules.skip_reason(
                opted_out=row.opted_out_at is not None,
                finished=bool(row.finished),
                contacts=int(row.contacts),
                cap=campaign.max_contacts,
            )
            if reason is None:
                chosen[int(row.id)] = row
            else:
                skipped.append({"b_id": int(row.id), "b_err": reason})
        if skipped:
            await conn.execute(
                update(D)
                .where(D.c.id == bindparam("b_id"), D.c.status == "pending")
                .values(status="skipped", error=bindparam("b_err")),
                skipped,
            )
        if not chosen:
            return []
        # "status = pending" again: on SQLite (no row locks) a second dialer may have won.
        taken = (
            await conn.execute(
                update(D)
                .where(D.c.id.in_(list(chosen)), D.c.status == "pending")
                .values(status="sending", claimed_at=func.now())
                .returning(D.c.id)
            )
        ).scalars()
        won = set(taken)
    return [
        Claimed(int(r.id), campaign.id, int(r.citizen_id), int(r.attempts), str(r.phone))
        for did, r in sorted(chosen.items())
        if did in won
    ]


async def release(engine: AsyncEngine, ids: Sequence[int], *, not_before: datetime | None = None) -> None:
    """Claimed but not dialled (paused, cancelled, stopping): back to the outbox, no attempt
    counted. ``not_before`` delays the next claim (the citizen is on another call)."""
    if not ids:
        return
    values: dict[str, Any] = {"status": "pending", "claimed_at": None}
    if not_before is not None:
        values["next_attempt_at"] = not_before
    async with engine.begin() as conn:
        await conn.execute(update(D).where(D.c.id.in_(list(ids)), D.c.status == "sending").values(**values))


async def mark_dialled(
    engine: AsyncEngine, *, delivery_id: int, attempt: int, action_id: str, at: datetime
) -> None:
    """The Originate was accepted: the attempt counts and the delivery is a contact.

    Guarded so that it never undoes an outcome written first (a fast failure's event can be
    handled before the Originate's response is)."""
    async with engine.begin() as conn:
        await conn.execute(
            update(D)
            .where(D.c.id == delivery_id, D.c.status == "sending", D.c.attempts < attempt)
            .values(
                attempts=attempt,
                sent_at=func.coalesce(D.c.sent_at, at),
                gateway_id=action_id,
                claimed_at=func.now(),
            )
        )


@dataclass(frozen=True, slots=True)
class Result:
    """One finished try, as written to the outbox (and the CDR for calls the IVR never saw)."""

    delivery_id: int
    campaign_id: int
    citizen_id: int
    attempt: int
    decision: Decision
    action_id: str
    dialled_at: datetime
    contact: bool  # the call went out (False: Asterisk refused the Originate)
    error: str | None = None
    channel: str = ""
    phone: str = ""
    hangup_cause: str | None = None
    cdr: bool = False  # write a Call row (unanswered outcomes and machines: the IVR never ran)


async def write_result(engine: AsyncEngine, result: Result) -> None:
    decision = result.decision
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        # a cancelled campaign stays cancelled: the outcome is still worth keeping
        "status": case((D.c.status == "cancelled", "cancelled"), else_=decision.status),
        "outcome": decision.outcome.value,
        "attempts": func.max(D.c.attempts, result.attempt)
        if engine.dialect.name == "sqlite"
        else func.greatest(D.c.attempts, result.attempt),
        "next_attempt_at": decision.next_attempt_at,
        "claimed_at": None,
        "gateway_id": result.action_id,
        "error": (result.error or "")[:300] or None,
    }
    if result.contact:
        values["sent_at"] = func.coalesce(D.c.sent_at, result.dialled_at)
    if decision.status == "delivered":
        values["delivered_at"] = now
    async with engine.begin() as conn:
        await conn.execute(update(D).where(D.c.id == result.delivery_id).values(**values))
        if result.cdr:
            await conn.execute(
                CALL.insert().values(
                    direction="out",
                    channel=result.channel[:128],
                    caller=result.phone[:32],
                    citizen_id=result.citizen_id,
                    campaign_id=result.campaign_id,
                    delivery_id=result.delivery_id,
                    outcome=decision.outcome.value,
                    hangup_cause=(result.hangup_cause or None),
                    started_at=result.dialled_at,
                    ended_at=now,
                )
            )


async def heartbeat(engine: AsyncEngine, ids: Iterable[int]) -> None:
    """Keep ``claimed_at`` fresh on the rows this dialer tracks (the reconciler's deadline)."""
    ids = list(ids)
    if not ids:
        return
    async with engine.begin() as conn:
        await conn.execute(
            update(D).where(D.c.id.in_(ids), D.c.status == "sending").values(claimed_at=func.now())
        )


async def answered_evidence(engine: AsyncEngine, calls: Sequence[tuple[int, int, int, datetime]]) -> set[int]:
    """Deliveries among ``(delivery_id, citizen_id, inquiry_id, dialled_at)`` whose call was
    answered although its events were missed: the IVR wrote the Call row (``answered_at``)
    or the citizen answered a question by voice since the call was placed."""
    if not calls:
        return set()
    found: set[int] = set()
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(CALL.c.delivery_id, CALL.c.answered_at).where(
                CALL.c.delivery_id.in_([c[0] for c in calls]), CALL.c.answered_at.is_not(None)
            )
        )
        since = {c[0]: c[3] for c in calls}
        for delivery_id, answered_at in rows:
            if _aware(answered_at) >= since[int(delivery_id)] - timedelta(seconds=5):
                found.add(int(delivery_id))
        for delivery_id, citizen_id, inquiry_id, dialled_at in calls:
            if delivery_id in found:
                continue
            spoke = (
                await conn.execute(
                    select(S.c.id).where(
                        S.c.citizen_id == citizen_id,
                        S.c.inquiry_id == inquiry_id,
                        S.c.channel == "voice",
                        S.c.updated_at >= dialled_at,
                    )
                )
            ).first()
            if spoke is not None:
                found.add(delivery_id)
    return found


async def stale_rows(engine: AsyncEngine, older_than: datetime, exclude: Iterable[int]) -> list[Any]:
    """Voice rows left ``sending`` by a dialer that is gone (no heartbeat since ``older_than``)."""
    query = (
        select(
            D.c.id,
            D.c.campaign_id,
            D.c.citizen_id,
            D.c.attempts,
            D.c.gateway_id,
            D.c.claimed_at,
            K.c.max_attempts,
            K.c.quiet_start,
            K.c.quiet_end,
        )
        .select_from(D.join(K, K.c.id == D.c.campaign_id))
        .where(K.c.channel == "voice", D.c.status == "sending", D.c.claimed_at < older_than)
        .limit(500)
    )
    skip = set(exclude)
    async with engine.connect() as conn:
        return [row for row in (await conn.execute(query)).all() if int(row.id) not in skip]


async def open_count(engine: AsyncEngine, campaign_id: int) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count()).where(
                        D.c.campaign_id == campaign_id, D.c.status.in_(("pending", "sending"))
                    )
                )
            ).scalar_one()
        )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
