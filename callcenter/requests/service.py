"""The edge of service requests: make one, move it through its life cycle, find it again.

Every change runs in the caller's session (so a page's audit row and the change commit
together), is checked by ``lifecycle`` (the move, the role), and is written with an
optimistic-concurrency guard: ``UPDATE ... WHERE id = :id AND version = :expected`` bumps
``version``; a change made against an older version raises ``StaleRequest`` (409), which a
page shows as "someone else changed this request" — nothing is overwritten silently. Each
change appends a ``request_event`` (who, when, from/to, note, public or internal) and an
audit row. ``expected_version=None`` (the engine, a citizen by SMS) means "the version just
read": a change racing it still fails rather than overwrite.

Usage::

    made = await create_request(session, Intake(category="water_leak", municipality="benghazi",
                                phone="+218912345678", channel="desk", description="..."),
                                actor=actor, calendar=cal, settings=settings)
    made.reference                     # "1415-8806-3867"
    await change_status(session, made.id, Status.ACKNOWLEDGED, expected_version=made.version,
                        actor=actor, role="officer", calendar=cal, settings=settings)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.errors import CallCenterError, Conflict, InvalidTransition, NotFound
from callcenter.phones import InvalidPhone, normalize_phone
from callcenter.requests import lifecycle
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.lifecycle import BODY, CITIZEN, MINISTRY, SYSTEM, NotAllowed, Status
from callcenter.requests.read import RequestView, aware, find_by_reference, get_request
from callcenter.requests.reference import reference_for
from callcenter.requests.sla import RequestSla, Targets, request_sla
from callcenter.settings import Settings

REQUEST = models.table(models.ServiceRequest)
EVENT = models.table(models.RequestEvent)
CATEGORY = models.table(models.ServiceCategory)
BODY_TABLE = models.table(models.ResponsibleBody)
OVERRIDE = models.table(models.CategoryBody)
MUNICIPALITY = models.table(models.Municipality)
USER = models.table(models.User)

CHANNELS: Final = ("desk", "ivr", "sms", "open311")
DESCRIPTION_LIMIT: Final = 2000
NOTE_LIMIT: Final = 2000
#: staff who may be assigned a request
ASSIGNABLE: Final = frozenset({"officer", "supervisor", "admin"})


class StaleRequest(Conflict):
    error_id = "stale_request"


class BadIntake(CallCenterError):
    status_code = 422
    error_id = "bad_intake"


@dataclass(frozen=True, slots=True)
class Intake:
    """A request as an intake channel took it."""

    category: str  # a category key
    channel: str  # desk | ivr | sms | open311
    description: str = ""
    municipality: str | None = None  # a municipality code
    phone: str = ""  # the reporter's number (normalised to E.164)
    citizen_id: int | None = None
    language: str = "ar"
    details: dict[str, str] = field(default_factory=dict)  # the category's questions answered
    recording_path: str | None = None
    ticket_id: int | None = None


# -- making a request ---------------------------------------------------------------------------


async def create_request(
    session: AsyncSession,
    intake: Intake,
    *,
    actor: str | Actor,
    calendar: WorkingCalendar,
    settings: Settings,
    now: datetime | None = None,
) -> RequestView:
    """Record the request, give it its reference, route it to the responsible body (the
    category's override for the municipality, else its default body: status ``sent``), start
    its SLA clocks, and append its first event."""
    now = _utc(now)
    values = await _intake_values(session, intake, settings)
    conn = await session.connection()
    category = (
        await conn.execute(
            select(CATEGORY).where(CATEGORY.c.key == intake.category, CATEGORY.c.active.is_(True))
        )
    ).mappings().one_or_none()  # fmt: skip
    if category is None:
        raise BadIntake(f"unknown service category {intake.category!r}", field="category")
    body_id = await _route(conn, category, values["municipality_id"])
    sla = request_sla(
        created=now.timestamp(), targets=_targets(category), cal=calendar, now=now.timestamp(),
        due_soon_share=settings.request_due_soon_share,
    )  # fmt: skip
    request_id = (
        await conn.execute(
            insert(REQUEST)
            .values(
                **values,
                category_id=category["id"],
                body_id=body_id,
                status=Status.SENT,
                version=1,
                **_sla_values(sla),
                created_at=now,
                updated_at=now,
            )
            .returning(REQUEST.c.id)
        )
    ).scalar_one()
    reference = reference_for(int(request_id)).display
    await conn.execute(update(REQUEST).where(REQUEST.c.id == request_id).values(reference=reference))
    who = _actor(actor)
    await _event(
        conn, request_id, kind="created", actor=who, role=SYSTEM, now=now, source=None, target=Status.SENT,
        data={"channel": intake.channel, "body_id": body_id, "category": intake.category},
    )  # fmt: skip
    audit(
        session, actor=who, action="requests.create", target=f"request:{request_id}",
        after={"reference": reference, "category": intake.category, "channel": intake.channel,
               "municipality_id": values["municipality_id"], "body_id": body_id},
    )  # fmt: skip
    return await get_request(conn, int(request_id))


async def _intake_values(session: AsyncSession, intake: Intake, settings: Settings) -> dict[str, Any]:
    if intake.channel not in CHANNELS:
        raise BadIntake(f"the channel is one of {', '.join(CHANNELS)}", field="channel")
    description = intake.description.strip()
    if len(description) > DESCRIPTION_LIMIT:
        raise BadIntake(f"the description has at most {DESCRIPTION_LIMIT} characters", field="description")
    try:
        phone = normalize_phone(intake.phone, settings.default_region) if intake.phone.strip() else ""
    except InvalidPhone as exc:
        raise BadIntake(str(exc), field="phone") from exc
    municipality_id = None
    if intake.municipality:
        conn = await session.connection()
        found = await conn.execute(
            select(MUNICIPALITY.c.id).where(MUNICIPALITY.c.code == intake.municipality)
        )
        municipality_id = found.scalar()
        if municipality_id is None:
            raise BadIntake(f"unknown municipality {intake.municipality!r}", field="municipality")
    return {
        "municipality_id": municipality_id, "phone": phone, "citizen_id": intake.citizen_id,
        "channel": intake.channel, "language": intake.language if intake.language in ("ar", "en") else "ar",
        "description": description, "details": {str(k)[:48]: str(v)[:300] for k, v in intake.details.items()},
        "recording_path": intake.recording_path, "ticket_id": intake.ticket_id,
    }  # fmt: skip


async def _route(conn: AsyncConnection, category: RowMapping, municipality_id: int | None) -> int:
    """The override for (category, municipality), else the category's default body."""
    if municipality_id is not None:
        override = await conn.execute(
            select(OVERRIDE.c.body_id).where(
                OVERRIDE.c.category_id == category["id"], OVERRIDE.c.municipality_id == municipality_id
            )
        )
        body = override.scalar()
        if body is not None:
            return int(body)
    return int(category["default_body_id"])


# -- changing -----------------------------------------------------------------------------------


async def change_status(
    session: AsyncSession,
    request_id: int,
    to: Status | str,
    *,
    expected_version: int | None,
    actor: str | Actor,
    role: str,
    calendar: WorkingCalendar,
    settings: Settings,
    note: str = "",
    public_note: bool | None = None,
    now: datetime | None = None,
    data: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> RequestView:
    """Move the request to ``to`` with a note. The note is public when the move is (unless
    ``public_note`` says otherwise); a refusal counts a referral and flags the request to the
    ministry past ``request_max_referrals``; reaching a responded or resolved state stops
    the matching clock; reopening restarts the resolution clock."""
    now = _utc(now)
    conn = await session.connection()
    row = await _current(conn, request_id, expected_version)
    closed = row["closed_at"] if row["resolved_at"] is None else row["resolved_at"]
    move = lifecycle.check(
        row["status"], to, role, note=note, now=now, resolved_at=aware(closed),
        reopen_window=timedelta(days=settings.request_reopen_days),
    )  # fmt: skip
    values: dict[str, Any] = dict(extra or {})
    if move.responded and row["first_response_at"] is None:
        values["first_response_at"] = now
    if move.target is Status.RESOLVED:
        values["resolved_at"] = now
    if move.target in (Status.CLOSED, Status.DUPLICATE):
        values["closed_at"] = now
    if move.target is Status.REOPENED:
        values["resolved_at"] = values["closed_at"] = None
    if move.target not in lifecycle.WORKING and row["paused_since"] is not None:
        values.update(_resumed(row, calendar, now))  # a finished request waits on nobody
    if move.referral:
        values["referrals"], flagged = lifecycle.after_refusal(
            row["referrals"], max_referrals=settings.request_max_referrals
        )
        values["flagged"] = row["flagged"] or flagged
    if move.target in lifecycle.OPEN or move.target is Status.RESOLVED:
        values.update(await _sla(conn, row, values, calendar, settings, now))
    values["status"] = move.target
    public = move.public if public_note is None else public_note
    return await _write(
        session, row, values, actor=actor, role=role, now=now, kind="status", note=note, public=public,
        source=move.source, target=move.target, data=data,
    )  # fmt: skip


async def refuse(
    session: AsyncSession,
    request_id: int,
    *,
    expected_version: int | None,
    actor: str | Actor,
    role: str,
    note: str,
    calendar: WorkingCalendar,
    settings: Settings,
    now: datetime | None = None,
) -> RequestView:
    """The body is not responsible: back to the ministry (a referral, counted; flagged to the
    ministry once bounced more than ``request_max_referrals`` times). Internal: the citizen
    is not told."""
    return await change_status(
        session, request_id, Status.NOT_RESPONSIBLE, expected_version=expected_version, actor=actor,
        role=role, note=note, calendar=calendar, settings=settings, now=now,
    )  # fmt: skip


async def reroute(
    session: AsyncSession,
    request_id: int,
    *,
    body: str,
    expected_version: int | None,
    actor: str | Actor,
    role: str,
    calendar: WorkingCalendar,
    settings: Settings,
    note: str = "",
    now: datetime | None = None,
) -> RequestView:
    """The ministry sends a refused request to another body (``body``: its key)."""
    conn = await session.connection()
    found = await conn.execute(
        select(BODY_TABLE.c.id).where(BODY_TABLE.c.key == body, BODY_TABLE.c.active.is_(True))
    )
    body_id = found.scalar()
    if body_id is None:
        raise BadIntake(f"unknown responsible body {body!r}", field="body")
    return await change_status(
        session, request_id, Status.SENT, expected_version=expected_version, actor=actor, role=role,
        note=note, calendar=calendar, settings=settings, now=now, data={"body_id": int(body_id)},
        extra={"body_id": int(body_id), "assigned_to": None},
    )  # fmt: skip


async def mark_duplicate(
    session: AsyncSession,
    request_id: int,
    *,
    original: str,
    expected_version: int | None,
    actor: str | Actor,
    role: str,
    calendar: WorkingCalendar,
    settings: Settings,
    note: str = "",
    now: datetime | None = None,
) -> RequestView:
    """Link the request to its ``original`` (a reference; a duplicate's own original if that is
    one too); the original's public updates then reach this reporter (``phones_to_notify``)."""
    conn = await session.connection()
    target = await find_by_reference(conn, original)
    if target is not None and target.duplicate_of is not None:
        target = await get_request(conn, target.duplicate_of)
    if target is None:
        raise NotFound("no request has that reference", field="original")
    if target.id == request_id:
        raise BadIntake("a request cannot be a duplicate of itself", field="original")
    return await change_status(
        session, request_id, Status.DUPLICATE, expected_version=expected_version, actor=actor, role=role,
        note=note, calendar=calendar, settings=settings, now=now,
        data={"original": target.reference}, extra={"duplicate_of": target.id},
    )  # fmt: skip


async def reopen(
    session: AsyncSession,
    request_id: int,
    *,
    note: str,
    actor: str | Actor,
    role: str,
    calendar: WorkingCalendar,
    settings: Settings,
    phone: str = "",
    expected_version: int | None = None,
    now: datetime | None = None,
) -> RequestView:
    """The citizen says it is not fixed: only from the reporter's number, within
    ``request_reopen_days`` of its resolution (the ministry at any time)."""
    if role == CITIZEN:
        conn = await session.connection()
        found = await get_request(conn, request_id)
        if not phone or phone != found.phone:
            raise NotAllowed("only the reporter's number can reopen a request")
    return await change_status(
        session, request_id, Status.REOPENED, expected_version=expected_version, actor=actor, role=role,
        note=note, calendar=calendar, settings=settings, now=now,
    )  # fmt: skip


async def assign(
    session: AsyncSession,
    request_id: int,
    *,
    user_id: int | None,
    expected_version: int | None,
    actor: str | Actor,
    role: str,
    now: datetime | None = None,
) -> RequestView:
    """Give the request to a colleague (an officer, supervisor or admin), or to nobody."""
    if role not in BODY:
        raise NotAllowed(f"a {role} cannot assign requests")
    now = _utc(now)
    conn = await session.connection()
    row = await _current(conn, request_id, expected_version)
    if Status(row["status"]) not in lifecycle.OPEN:
        raise InvalidTransition(f"a {row['status']} request is not assigned")
    if user_id is not None:
        user = (
            await conn.execute(select(USER.c.role, USER.c.disabled_at).where(USER.c.id == user_id))
        ).one_or_none()
        if user is None or user.role not in ASSIGNABLE or user.disabled_at is not None:
            raise BadIntake("assign to an active officer, supervisor or admin", field="user")
    return await _write(
        session, row, {"assigned_to": user_id}, actor=actor, role=role, now=now, kind="assigned",
        data={"user_id": user_id},
    )  # fmt: skip


async def add_note(
    session: AsyncSession,
    request_id: int,
    *,
    note: str,
    public: bool,
    expected_version: int | None,
    actor: str | Actor,
    role: str,
    now: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> RequestView:
    """A note without a change of status; ``public`` ones reach the citizen. A citizen's own
    note is one an Open311 client sends on the reporter's behalf (open311/updates.py)."""
    if role not in BODY | MINISTRY | {CITIZEN}:
        raise NotAllowed(f"a {role} cannot add notes to requests")
    if not note.strip():
        raise lifecycle.NoteRequired("write the note")
    conn = await session.connection()
    row = await _current(conn, request_id, expected_version)
    return await _write(
        session, row, {}, actor=actor, role=role, now=_utc(now), kind="note", note=note,
        public=public, data=data,
    )  # fmt: skip


async def wait_on_citizen(
    session: AsyncSession,
    request_id: int,
    *,
    waiting: bool,
    expected_version: int | None,
    actor: str | Actor,
    role: str,
    calendar: WorkingCalendar,
    settings: Settings,
    note: str = "",
    now: datetime | None = None,
) -> RequestView:
    """Pause the SLA clocks while the body waits on the citizen (``waiting=True``, with a
    public note saying what is needed), or start them again."""
    if role not in BODY | {SYSTEM, CITIZEN}:
        raise NotAllowed(f"a {role} cannot pause requests")
    now = _utc(now)
    conn = await session.connection()
    row = await _current(conn, request_id, expected_version)
    if Status(row["status"]) not in lifecycle.WORKING:
        raise InvalidTransition(f"a {row['status']} request has no clock to pause")
    if waiting == (row["paused_since"] is not None):
        raise InvalidTransition("the request is already waiting" if waiting else "it is not waiting")
    values: dict[str, Any] = {"paused_since": now} if waiting else _resumed(row, calendar, now)
    values.update(await _sla(conn, row, values, calendar, settings, now))
    return await _write(
        session, row, values, actor=actor, role=role, now=now, kind="paused" if waiting else "resumed",
        note=note, public=bool(note.strip()),
    )  # fmt: skip


# -- the pieces ---------------------------------------------------------------------------------


async def _current(conn: AsyncConnection, request_id: int, expected_version: int | None) -> RowMapping:
    row = (await conn.execute(select(REQUEST).where(REQUEST.c.id == request_id))).mappings().one_or_none()
    if row is None:
        raise NotFound("no such request", request_id=request_id)
    if expected_version is not None and row["version"] != expected_version:
        raise _stale(row["version"])
    return row


def _stale(current: int) -> StaleRequest:
    return StaleRequest(
        "someone else changed this request meanwhile: look at their change and try again", version=current
    )


async def _write(
    session: AsyncSession,
    row: RowMapping,
    values: dict[str, Any],
    *,
    actor: str | Actor,
    role: str,
    now: datetime,
    kind: str,
    note: str = "",
    public: bool = False,
    source: Status | None = None,
    target: Status | None = None,
    data: dict[str, Any] | None = None,
) -> RequestView:
    """The guarded update, its event and its audit row."""
    if len(note) > NOTE_LIMIT:
        raise BadIntake(f"a note has at most {NOTE_LIMIT} characters", field="note")
    conn = await session.connection()
    done = await conn.execute(
        update(REQUEST)
        .where(and_(REQUEST.c.id == row["id"], REQUEST.c.version == row["version"]))
        .values(**values, version=REQUEST.c.version + 1, updated_at=now)
    )
    if done.rowcount != 1:
        latest = (await conn.execute(select(REQUEST.c.version).where(REQUEST.c.id == row["id"]))).scalar()
        raise _stale(int(latest or 0))
    who = _actor(actor)
    await _event(
        conn, row["id"], kind=kind, actor=who, role=role, now=now, source=source, target=target,
        note=note, public=public, data=data,
    )  # fmt: skip
    changed = {k: _plain(v) for k, v in values.items() if not k.endswith("_due_at") and k != "sla_state"}
    audit(
        session, actor=who, action=f"requests.{kind}", target=f"request:{row['id']}",
        before={k: _plain(row[k]) for k in changed}, after=changed, public=public,
    )  # fmt: skip
    return await get_request(conn, int(row["id"]))


async def _event(
    conn: AsyncConnection,
    request_id: int,
    *,
    kind: str,
    actor: Actor,
    role: str,
    now: datetime,
    source: Status | None,
    target: Status | None,
    note: str = "",
    public: bool = False,
    data: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        insert(EVENT).values(
            request_id=request_id, at=now, kind=kind, actor=actor.name[:100], actor_id=actor.id,
            role=role[:16], from_status=source, to_status=target, note=note.strip(), public=public,
            data=data or {},
        )
    )  # fmt: skip


async def _sla(
    conn: AsyncConnection,
    row: RowMapping,
    values: dict[str, Any],
    calendar: WorkingCalendar,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    """The clocks' due dates and state after ``values`` are applied to ``row``."""
    merged = {**row, **values}
    category = (
        (await conn.execute(select(CATEGORY).where(CATEGORY.c.id == merged["category_id"]))).mappings().one()
    )
    sla = request_sla(
        created=_epoch(merged["created_at"]), targets=_targets(category), cal=calendar, now=now.timestamp(),
        paused_s=merged["paused_seconds"], paused_since=_epoch_or_none(merged["paused_since"]),
        first_response_at=_epoch_or_none(merged["first_response_at"]),
        resolved_at=_epoch_or_none(merged["resolved_at"]), due_soon_share=settings.request_due_soon_share,
    )  # fmt: skip
    return _sla_values(sla)


def _resumed(row: RowMapping, calendar: WorkingCalendar, now: datetime) -> dict[str, Any]:
    """End the pause in progress: its working time joins the paused total."""
    waited = calendar.between_ts(_epoch(row["paused_since"]), now.timestamp())
    return {"paused_since": None, "paused_seconds": row["paused_seconds"] + waited}


def _sla_values(sla: RequestSla) -> dict[str, Any]:
    return {
        "first_response_due_at": datetime.fromtimestamp(sla.first_response_due, UTC),
        "resolution_due_at": datetime.fromtimestamp(sla.resolution_due, UTC),
        "sla_state": str(sla.state),
    }


def _targets(category: RowMapping) -> Targets:
    return Targets(category["first_response_hours"], category["resolution_hours"])


def _actor(actor: str | Actor) -> Actor:
    return actor if isinstance(actor, Actor) else Actor(actor)


def _epoch(moment: datetime) -> float:
    known = aware(moment)
    assert known is not None
    return known.timestamp()


def _epoch_or_none(moment: datetime | None) -> float | None:
    return None if moment is None else _epoch(moment)


def _plain(value: Any) -> Any:
    """A value the audit log's JSON can hold."""
    return value.isoformat() if isinstance(value, datetime) else value


def _utc(now: datetime | None) -> datetime:
    """The moment in UTC: SQLite keeps a datetime's wall time and drops its zone."""
    return models.utcnow() if now is None else now.astimezone(UTC)
