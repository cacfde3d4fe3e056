"""Retention: what the engine stops knowing with time. Run daily by the worker and by
``callcenter retention run [--dry-run]``.

1. **Answers keep only the pseudonym.** So many days after an inquiry closes
   (``inquiry.retention_days``, else ``CALLCENTER_ANSWER_RETENTION_DAYS``; 0: never), each
   respondent's answers, session, deliveries, calls and messages *of that inquiry* move to a
   pseudonymous stand-in: a citizen row whose "phone" is ``p:<pseudonym>:<inquiry>``
   (``phones.pseudonymous_phone``), with the municipality, language, sex and age band copied
   (the weighting needs them), opted out so nothing ever contacts it. The keyed pseudonym
   is what exports already show, and ``phones.pseudonym`` reads it back from the stand-in,
   so results and exports stay the same, row for row, while nothing links them to the
   number any more. One stand-in per citizen and inquiry: a later change of the citizen's
   profile never moves an inquiry already retained. Messages of the inquiry lose the bodies
   that could identify someone (:func:`identifying`).
2. **Numbers nobody uses are erased.** Citizens with no activity (message, call, session,
   answer, delivery, opt-out, service request, callback, ticket) for
   ``CALLCENTER_CITIZEN_INACTIVE_DAYS`` (0: never) get a tombstone instead of their number
   (``citizens.erasure``), unless a service request of theirs is open (or resolved: it may
   reopen) or a callback live. Their pseudonymous stand-ins stay.

Each step is audited with counts, never a number. ``dry_run`` counts without changing
anything. When an inquiry closed is its ``updated_at``: nothing changes a closed inquiry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from redis.asyncio import Redis
from sqlalchemy import and_, bindparam, exists, func, or_, select, union, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.citizens.erasure import Erased, Person, count, erase_people
from callcenter.citizens.erasure_edges import LIVE_CALLBACK
from callcenter.phones import pseudonymous_phone
from callcenter.requests.lifecycle import OPEN, Status
from callcenter.settings import Settings
from callcenter.sql import insert

ACTOR: Final = Actor("retention")
CHUNK: Final = 500
#: a reply longer than this may be free text that names someone
PLAIN_CHARS: Final = 12
_NUMBER: Final = re.compile(r"\d(?:[\s-]?\d){4,}")  # five digits or more: a number, an id

I = models.table(models.Inquiry)  # noqa: E741
C = models.table(models.Citizen)
S = models.table(models.InquirySession)
A = models.table(models.Answer)
D = models.table(models.Delivery)
K = models.table(models.Campaign)
M = models.table(models.Message)
CALL = models.table(models.Call)
CB = models.table(models.Callback)
T = models.table(models.Ticket)
R = models.table(models.ServiceRequest)
OPT = models.table(models.OptOut)


def identifying(text: str | None) -> bool:
    """Could this reply tell who sent it? A short answer ("2", "نعم", "yes") cannot; free text
    or a run of digits (a phone number, an id) might."""
    if not text:
        return False
    stripped = text.strip()
    return len(stripped) > PLAIN_CHARS or bool(_NUMBER.search(stripped))


@dataclass(frozen=True, slots=True)
class Closed:
    """A closed inquiry and its retention (days after closing; 0: kept for ever)."""

    id: int
    slug: str
    closed_at: datetime
    days: int

    def due(self, now: datetime) -> bool:
        return self.days > 0 and self.closed_at + timedelta(days=self.days) <= now


@dataclass(slots=True)
class Pseudonymised:
    """What one inquiry's retention moved to stand-ins (or would)."""

    citizens: int = 0
    answers: int = 0
    sessions: int = 0
    deliveries: int = 0
    calls: int = 0
    messages: int = 0
    redacted: int = 0

    def add(self, other: Pseudonymised) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass(slots=True)
class Report:
    dry_run: bool
    inquiries: list[tuple[Closed, Pseudonymised]] = field(default_factory=list)
    inactive: Erased = field(default_factory=Erased)
    inactive_days: int = 0


async def run(
    engine: AsyncEngine,
    redis: Redis,
    settings: Settings,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> Report:
    """Both steps, for every inquiry that is due and every inactive citizen."""
    now = now or datetime.now(UTC)
    report = Report(dry_run, inactive_days=settings.citizen_inactive_days)
    async with engine.connect() as conn:
        closed = await closed_inquiries(conn, settings.answer_retention_days)
    for inquiry in closed:
        if inquiry.due(now):
            done = await pseudonymise_inquiry(engine, settings, inquiry, dry_run=dry_run)
            if done.citizens:
                report.inquiries.append((inquiry, done))
    if settings.citizen_inactive_days > 0:
        since = now - timedelta(days=settings.citizen_inactive_days)
        report.inactive = await erase_inactive(engine, redis, settings, since=since, dry_run=dry_run)
    return report


async def closed_inquiries(conn: AsyncConnection, default_days: int) -> list[Closed]:
    rows = await conn.execute(
        select(I.c.id, I.c.slug, I.c.updated_at, I.c.retention_days)
        .where(I.c.status == "closed")
        .order_by(I.c.id)
    )
    return [
        Closed(
            int(r.id),
            r.slug,
            r.updated_at if r.updated_at.tzinfo else r.updated_at.replace(tzinfo=UTC),
            default_days if r.retention_days is None else int(r.retention_days),
        )
        for r in rows
    ]


# -- answers keep only the pseudonym -----------------------------------------------------------


def _sessions(inquiry_id: int) -> Any:
    return select(S.c.id).where(S.c.inquiry_id == inquiry_id)


def _campaigns(inquiry_id: int) -> Any:
    return select(K.c.id).where(K.c.inquiry_id == inquiry_id)


def _calls_of(inquiry_id: int) -> Any:
    return or_(CALL.c.campaign_id.in_(_campaigns(inquiry_id)), CALL.c.session_id.in_(_sessions(inquiry_id)))


def _respondents(inquiry_id: int) -> Any:
    """Every citizen with a row of the inquiry (session, answer, delivery, call)."""
    return union(
        select(S.c.citizen_id).where(S.c.inquiry_id == inquiry_id),
        select(A.c.citizen_id).where(A.c.inquiry_id == inquiry_id),
        select(D.c.citizen_id).where(D.c.campaign_id.in_(_campaigns(inquiry_id))),
        select(CALL.c.citizen_id).where(_calls_of(inquiry_id), CALL.c.citizen_id.is_not(None)),
    ).subquery()


async def pseudonymise_inquiry(
    engine: AsyncEngine, settings: Settings, inquiry: Closed, *, dry_run: bool = False
) -> Pseudonymised:
    """Move the inquiry's rows of every citizen who still has a number to stand-ins, in one
    transaction with its audit row (none when there was nothing to move)."""
    total = Pseudonymised()
    respondents = _respondents(inquiry.id)
    async with AsyncSession(engine) as session, session.begin():
        conn = await session.connection()
        last = 0
        while True:
            rows = (
                await conn.execute(
                    select(C)
                    .where(
                        C.c.id.in_(select(respondents.c.citizen_id)), C.c.phone.startswith("+"), C.c.id > last
                    )
                    .order_by(C.c.id)
                    .limit(CHUNK)
                )
            ).all()
            if not rows:
                break
            last = int(rows[-1].id)
            total.add(await _chunk(conn, settings, inquiry.id, rows, apply=not dry_run))
        if total.citizens and not dry_run:
            audit(
                session, actor=ACTOR, action="retention.pseudonymise", target=f"inquiry:{inquiry.slug}",
                retention_days=inquiry.days, **asdict(total),
            )  # fmt: skip
    return total


async def _chunk(
    conn: AsyncConnection, settings: Settings, inquiry_id: int, rows: Sequence[Any], *, apply: bool
) -> Pseudonymised:
    ids, phones = [int(r.id) for r in rows], [str(r.phone) for r in rows]

    async def n(table: Any, *where: Any) -> int:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())

    in_sessions = M.c.session_id.in_(_sessions(inquiry_id))
    messages = (
        await conn.execute(
            select(M.c.id, M.c.body, M.c.reply).where(
                in_sessions, or_(M.c.citizen_id.in_(ids), M.c.phone.in_(phones))
            )
        )
    ).all()
    redact = [m for m in messages if identifying(m.body) or bool(m.reply and _NUMBER.search(m.reply))]
    done = Pseudonymised(
        citizens=len(ids),
        answers=await n(A, A.c.inquiry_id == inquiry_id, A.c.citizen_id.in_(ids)),
        sessions=await n(S, S.c.inquiry_id == inquiry_id, S.c.citizen_id.in_(ids)),
        deliveries=await n(D, D.c.campaign_id.in_(_campaigns(inquiry_id)), D.c.citizen_id.in_(ids)),
        calls=await n(
            CALL, _calls_of(inquiry_id), or_(CALL.c.citizen_id.in_(ids), CALL.c.caller.in_(phones))
        ),
        messages=len(messages),
        redacted=len(redact),
    )
    if not apply:
        return done
    stand_ins = {int(r.id): pseudonymous_phone(r.phone, settings.pseudonym_key, inquiry_id) for r in rows}
    now = models.utcnow()
    await conn.execute(
        insert(conn.dialect.name, C)
        .values(
            [
                {
                    "phone": stand_ins[int(r.id)], "municipality_id": r.municipality_id,
                    "language": r.language, "sex": r.sex, "age_band": r.age_band,
                    "opted_out_at": r.opted_out_at or now, "created_at": r.created_at,
                }
                for r in rows
            ]
        )
        .on_conflict_do_nothing(index_elements=["phone"])
    )  # fmt: skip
    found = await conn.execute(select(C.c.phone, C.c.id).where(C.c.phone.in_(list(stand_ins.values()))))
    twin_of = {str(phone): int(twin) for phone, twin in found}
    params = [
        {
            "b_real": int(r.id),
            "b_twin": twin_of[stand_ins[int(r.id)]],
            "b_phone": r.phone,
            "b_stand_in": stand_ins[int(r.id)],
        }
        for r in rows
    ]
    real, twin = bindparam("b_real", type_=models.BigId), bindparam("b_twin", type_=models.BigId)
    phone: Any = bindparam("b_phone")
    stand_in: Any = bindparam("b_stand_in")
    moves = (
        update(A).where(A.c.inquiry_id == inquiry_id, A.c.citizen_id == real).values(citizen_id=twin),
        update(S).where(S.c.inquiry_id == inquiry_id, S.c.citizen_id == real).values(citizen_id=twin),
        update(D)
        .where(D.c.campaign_id.in_(_campaigns(inquiry_id)), D.c.citizen_id == real)
        .values(citizen_id=twin),
        update(CALL)
        .where(_calls_of(inquiry_id), or_(CALL.c.citizen_id == real, CALL.c.caller == phone))
        .values(
            citizen_id=twin,
            caller=func.replace(CALL.c.caller, phone, stand_in),
            channel=func.replace(CALL.c.channel, phone, stand_in),
        ),
        update(M)
        .where(in_sessions, or_(M.c.citizen_id == real, M.c.phone == phone))
        .values(citizen_id=twin, phone=stand_in),
    )
    for statement in moves:
        await conn.execute(statement, params)
    if redact:
        await conn.execute(
            update(M)
            .where(M.c.id == bindparam("b_id"))
            .values(body=bindparam("b_body"), reply=bindparam("b_reply")),
            [
                {
                    "b_id": m.id,
                    "b_body": "" if identifying(m.body) else m.body,
                    "b_reply": "" if m.reply and _NUMBER.search(m.reply) else m.reply,
                }
                for m in redact
            ],
        )
    return done


# -- numbers nobody uses -----------------------------------------------------------------------


def inactive_since(since: datetime) -> Any:
    """Citizens with a number and no activity since ``since``, nothing open, nothing live."""
    kept = [*OPEN, Status.RESOLVED]  # resolved may still reopen
    return and_(
        C.c.phone.startswith("+"),
        C.c.created_at < since,
        ~exists().where(M.c.phone == C.c.phone, M.c.created_at >= since),
        ~exists().where(CALL.c.citizen_id == C.c.id, CALL.c.started_at >= since),
        ~exists().where(S.c.citizen_id == C.c.id, S.c.updated_at >= since),
        ~exists().where(A.c.citizen_id == C.c.id, A.c.created_at >= since),
        ~exists().where(
            D.c.citizen_id == C.c.id, or_(D.c.sent_at >= since, D.c.status.in_(("pending", "sending")))
        ),
        ~exists().where(OPT.c.citizen_id == C.c.id, OPT.c.created_at >= since),
        ~exists().where(
            or_(R.c.citizen_id == C.c.id, R.c.phone == C.c.phone),
            or_(R.c.status.in_([str(s) for s in kept]), R.c.updated_at >= since),
        ),
        ~exists().where(
            CB.c.phone == C.c.phone, or_(CB.c.status.in_(LIVE_CALLBACK), CB.c.updated_at >= since)
        ),
        ~exists().where(T.c.citizen_id == C.c.id, T.c.updated_at >= since),
    )


async def erase_inactive(
    engine: AsyncEngine, redis: Redis, settings: Settings, *, since: datetime, dry_run: bool = False
) -> Erased:
    """Tombstone the numbers of citizens inactive since ``since``, a chunk per transaction
    (each audited with its counts)."""
    total = Erased()
    last = 0
    while True:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(C.c.id, C.c.phone)
                    .where(inactive_since(since), C.c.id > last)
                    .order_by(C.c.id)
                    .limit(CHUNK)
                )
            ).all()
            people = [Person(r.phone, int(r.id)) for r in rows]
            if people and dry_run:
                total.add(await count(conn, people))
        if not people:
            return total
        last = int(rows[-1].id)
        if not dry_run:
            total.add(
                await erase_people(
                    engine,
                    redis,
                    settings,
                    people,
                    actor=ACTOR,
                    action="retention.erase_inactive",
                    target="citizens",
                    inactive_since=since.isoformat(),
                )
            )


async def set_retention(
    session: AsyncSession, ref: int | str, days: int | None, *, actor: str | Actor
) -> str:
    """An inquiry's own retention (``None``: the setting again; 0: never); audited. Returns
    the inquiry's slug."""
    from callcenter.errors import CallCenterError
    from callcenter.inquiries import get_inquiry_row

    if days is not None and days < 0:
        raise CallCenterError("retention days cannot be negative (0: keep for ever)", days=days)
    row = await get_inquiry_row(session, ref)
    before = row.retention_days
    row.retention_days = days
    audit(
        session, actor=actor, action="inquiry.retention", target=row.slug,
        before={"retention_days": before}, after={"retention_days": days},
    )  # fmt: skip
    await session.flush()
    return row.slug
