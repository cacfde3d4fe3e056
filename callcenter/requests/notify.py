"""Tell the citizen: the confirmation of a new request, an SMS on the changes that matter,
the status a lookup may tell, and "was it fixed?" after resolution.

The changes texted (``TOLD``) are the ones a citizen can act on or wait for: acknowledged,
in progress, work scheduled, resolved (with the question), reopened, duplicate, closed.
Routing (``sent``), a refusal (``not_responsible``) and the ministry's re-routing are
internal and silent, unless the officer wrote a public note. Each SMS goes to the reporter and
to the reporters of the requests marked as its duplicates (one per number), in the language
each reported in, from the texts admins edit (``text_overrides.current_texts``: an edit made
in the app, else the data directory's file, else the default).

Every SMS goes through the service messages' path (``sms.notices.send_notice``: an outbound
``message`` row keyed for idempotency, then the gateway), keyed by what it says: a change by
the request, the version the change made and the number; a confirmation by the request; a
status sent to the reporter because someone else asked by the request, its version and the
day (so keying someone's reference again and again texts them at most once a day per
change). A page retried, or a change notified twice, texts once. Service messages reach
citizens who opted out of polls too (opting out stops inquiries, not the answer to what they
asked for).

After "resolved" the reporter's number is remembered in Redis (``requests:fixed:<phone>``)
for the reopening window: the SMS inbox takes their "2" / "لا" / "no" as "not fixed" and
reopens the request (``sms_intake``).

Call these after the change is committed: the message row is written in its own
transaction, and a citizen must never hear of a change that was rolled back.

Usage::

    sent = await notify_change(settings, engine, redis, request_id=view.id, version=view.version,
                               note="The crew comes on Sunday")
    await confirm_created(settings, engine, redis, made)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcenter import models
from callcenter.requests.citizen_texts import CitizenTexts
from callcenter.requests.lifecycle import Status
from callcenter.requests.read import RequestView, StatusLookup, aware, lookup_status
from callcenter.requests.text_overrides import current_texts, texts_on
from callcenter.settings import Settings
from callcenter.sms.notices import send_notice

REQUEST = models.table(models.ServiceRequest)
CATEGORY = models.table(models.ServiceCategory)
BODY = models.table(models.ResponsibleBody)
NOTE_CHARS: Final = 300

#: the changes the citizen is texted about (others only with a public note)
TOLD: Final = frozenset(
    {
        Status.ACKNOWLEDGED, Status.IN_PROGRESS, Status.ACTION_SCHEDULED, Status.RESOLVED,
        Status.REOPENED, Status.DUPLICATE, Status.CLOSED,
    }
)  # fmt: skip
#: no expected date once the request is finished
FINISHED: Final = frozenset({Status.RESOLVED, Status.CLOSED, Status.DUPLICATE})
FIXED_KEY: Final = "requests:fixed:"


@dataclass(frozen=True, slots=True)
class Recipient:
    phone: str
    language: str
    reference: str
    citizen_id: int | None
    request_id: int


def due_date(due: datetime | None, timezone: str) -> str:
    """The expected date as a citizen reads it (the day, in Libya's time)."""
    return "" if due is None else due.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d")


def note_part(note: str) -> str:
    said = " ".join(note.split())[:NOTE_CHARS]
    return f" {said}" if said else ""


def update_text(
    texts: CitizenTexts,
    *,
    language: str,
    reference: str,
    status: str,
    due: datetime | None,
    note: str,
    timezone: str,
    asks_fixed: bool = False,
) -> str:
    """The SMS of a change: the reference, the status in words, the expected date (while
    open), the public note; after resolution, the question "was it fixed?" (``asks_fixed``)."""
    if status == Status.RESOLVED and asks_fixed:
        return texts.say("resolved", language, reference=reference, note=note_part(note))
    kind = "update_finished" if status in FINISHED or due is None else "update"
    return texts.say(
        kind, language, reference=reference, status=texts.status_word(status, language),
        due=due_date(due, timezone), note=note_part(note),
    )  # fmt: skip


async def recipients(engine: AsyncEngine, request_id: int) -> list[Recipient]:
    """The reporter of the request and those of its duplicates (one SMS per number)."""
    query = (
        select(REQUEST.c.phone, REQUEST.c.language, REQUEST.c.reference, REQUEST.c.citizen_id, REQUEST.c.id)
        .where((REQUEST.c.id == request_id) | (REQUEST.c.duplicate_of == request_id), REQUEST.c.phone != "")
        .order_by(REQUEST.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    seen: dict[str, Recipient] = {}
    for phone, language, reference, citizen_id, own_id in rows:
        seen.setdefault(phone, Recipient(phone, language, reference or "", citizen_id, int(own_id)))
    return list(seen.values())


async def notify_change(
    settings: Settings, engine: AsyncEngine, redis: Redis, *, request_id: int, version: int, note: str = ""
) -> int:
    """Text the request's change (its state after ``version``) to everyone who hears of it, if
    it is one citizens are told of or carries a public ``note``; the number of messages sent
    (a message left queued is sent by the outbox's sweep). After "resolved" the reporter is
    asked whether it was fixed."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(REQUEST.c.status, REQUEST.c.resolution_due_at, REQUEST.c.reference).where(
                    REQUEST.c.id == request_id
                )
            )
        ).one()
    if row.status not in TOLD and not note.strip():
        return 0
    texts = await current_texts(settings, engine)
    sent = 0
    for person in await recipients(engine, request_id):
        reporter = person.request_id == request_id
        text = update_text(
            texts, language=person.language, reference=person.reference or row.reference or "",
            status=row.status, due=aware(row.resolution_due_at), note=note, timezone=settings.timezone,
            asks_fixed=reporter,
        )  # fmt: skip
        key = f"request:{request_id}:v{version}:{person.phone}"
        if await send_notice(
            settings, engine, redis, phone=person.phone, key=key, text=text, citizen_id=person.citizen_id
        ):
            sent += 1
        if reporter and row.status == Status.RESOLVED:
            await remember_fixed_question(redis, settings, person.phone, request_id)
    return sent


async def remember_fixed_question(redis: Redis, settings: Settings, phone: str, request_id: int) -> None:
    """The reporter's next "1"/"2" answers "was it fixed?" (for the reopening window)."""
    ttl = max(60, int(settings.request_reopen_days * 86400))
    await redis.set(FIXED_KEY + phone, json.dumps({"id": request_id}), ex=ttl)


def fixed_question_of(raw: bytes | str | None) -> int | None:
    """The request a ``requests:fixed:<phone>`` value names (None: none, or unreadable)."""
    if raw is None:
        return None
    try:
        return int(json.loads(raw)["id"])
    except (ValueError, KeyError, TypeError):
        return None


async def forget_fixed_question(redis: Redis, phone: str) -> None:
    await redis.delete(FIXED_KEY + phone)


async def names_of(conn: AsyncConnection, view: RequestView, language: str) -> tuple[str, str]:
    """The category's and the responsible body's names in ``language``."""
    en = language == "en"
    category = (
        await conn.execute(
            select(CATEGORY.c.name_ar, CATEGORY.c.name_en).where(CATEGORY.c.id == view.category_id)
        )
    ).one()
    body = (await conn.execute(select(BODY.c.name_ar, BODY.c.name_en).where(BODY.c.id == view.body_id))).one()
    return (
        (category.name_en or category.name_ar) if en else category.name_ar,
        (body.name_en or body.name_ar) if en else body.name_ar,
    )


async def created_text(
    settings: Settings, engine: AsyncEngine, view: RequestView, *, recorded: bool = True
) -> str:
    async with engine.connect() as conn:
        category, _ = await names_of(conn, view, view.language)
        texts = await texts_on(settings, conn)
    kind = "created" if recorded else "created_no_recording"
    return texts.say(
        kind, view.language, reference=view.reference, category=category,
        due=due_date(view.resolution_due_at, settings.timezone),
    )  # fmt: skip


async def confirm_created(
    settings: Settings, engine: AsyncEngine, redis: Redis, view: RequestView, *, recorded: bool = True
) -> bool:
    """The intake's confirmation to the reporter: the reference and the expected date (keyed
    by the request: sent once however often the intake is retried). False when not sent now
    (no number, or left queued for the outbox's sweep)."""
    if not view.phone:
        return False
    text = await created_text(settings, engine, view, recorded=recorded)
    return await send_notice(
        settings, engine, redis, phone=view.phone, key=f"request:{view.id}:created", text=text,
        citizen_id=view.citizen_id,
    )  # fmt: skip


async def status_text(settings: Settings, conn: AsyncConnection, lookup: StatusLookup) -> str:
    """What a lookup tells the reporter: state, responsible body, expected date, last public note."""
    view = lookup.request
    assert view is not None
    _, body = await names_of(conn, view, view.language)
    texts = await texts_on(settings, conn)
    finished = view.status in FINISHED or view.resolution_due_at is None
    return texts.say(
        "status_finished" if finished else "status", view.language, reference=view.reference,
        status=texts.status_word(view.status, view.language), body=body,
        due=due_date(view.resolution_due_at, settings.timezone), note=note_part(lookup.last_public_note),
    )  # fmt: skip


async def send_status_to_reporter(
    settings: Settings, engine: AsyncEngine, redis: Redis, reference: str, *, day: str
) -> bool:
    """Someone else asked for this request's status: text it to the reporter's number instead
    (at most once a day per version of the request). False when there is nobody to text."""
    async with engine.connect() as conn:
        anyone = await lookup_status(conn, reference, "")
        if anyone is None or not anyone.reporter_phone:
            return False
        lookup = await lookup_status(conn, reference, anyone.reporter_phone)
    assert lookup is not None
    return await send_status_to_self(settings, engine, redis, lookup, day=day)


async def send_status_to_self(
    settings: Settings, engine: AsyncEngine, redis: Redis, lookup: StatusLookup, *, day: str
) -> bool:
    """The status of a reporter's lookup by SMS to the reporter (the IVR tells it aloud but
    cannot speak the officer's note); keyed as ``send_status_to_reporter``'s, so a reporter
    is texted a version's status at most once a day however it was asked."""
    view = lookup.request
    if view is None or not view.phone:
        return False
    async with engine.connect() as conn:
        text = await status_text(settings, conn, lookup)
    key = f"request:{view.id}:status:v{view.version}:{day}"
    return await send_notice(
        settings, engine, redis, phone=view.phone, key=key, text=text, citizen_id=view.citizen_id
    )
