"""Erasing a citizen's personal data: on request (``callcenter citizen erase PHONE``), and for
numbers nobody has used for a long time (the retention job, ``callcenter.retention``).

The number goes from everywhere the engine wrote it: the citizen's row keeps an irreversible
tombstone instead (``erased:`` and 13 random characters: unique as the column needs, 20
characters like a number, never a number, so nothing dials or texts it — and the row is
opted out too, which every planner and dialer already honours); message bodies and replies
are emptied; calls, callbacks and messages carry the tombstone; tickets and service requests
keep their work but drop the reporter's number (a status lookup from that number then finds
nothing to tell); pending deliveries and live callbacks are cancelled; recordings of the
number's calls are deleted; Redis keys named after the number, the loopback outbox's entries
to it and its callbacks waiting in the routing store go. On request, the pseudonymous
stand-ins retention left (``p:<pseudonym>:<inquiry>``) are tombstoned as well.

What stays: every answer, session and delivery, on the same citizen row (municipality,
language, sex and age band: the weighting needs them, and none names anyone), so results and
exports count the same before and after. The append-only logs (audit, routing events,
request history) only ever hold masked numbers. The audit row of an erasure names the
citizen by the keyed pseudonym, never by the number: that is also how a second request for
the same number is told apart from a number never known.

Usage::

    target = await find(engine, settings, "+218912345678")  # what would go (InvalidPhone,
                                                            # NotFound, AlreadyErased)
    erased = await erase(engine, redis, settings, target, actor="cli")
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from redis.asyncio import Redis
from sqlalchemy import and_, bindparam, case, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.citizens import erasure_edges
from callcenter.citizens.erasure_edges import LIVE_CALLBACK
from callcenter.errors import CallCenterError, NotFound
from callcenter.phones import InvalidPhone, mask_phone, normalize_phone, pseudonym, pseudonymous_prefix
from callcenter.settings import Settings

log = logging.getLogger(__name__)

C = models.table(models.Citizen)
M = models.table(models.Message)
CALL = models.table(models.Call)
D = models.table(models.Delivery)
CB = models.table(models.Callback)
T = models.table(models.Ticket)
R = models.table(models.ServiceRequest)
AUDIT = models.table(models.AuditLog)

ERASED: Final = "erased:"
ERASE_ACTION: Final = "citizen.erase"
_E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")


class AlreadyErased(CallCenterError):
    """Nothing is left of the number, and an erasure of it is on record: nothing to do."""

    status_code = 200
    error_id = "already_erased"


def tombstone() -> str:
    """``erased:`` and 13 random base32 characters (65 bits): as unique as a number, as long as
    one at most (20), and nothing to reverse."""
    return ERASED + base64.b32encode(secrets.token_bytes(10)).decode().lower()[:13]


def is_number(phone: str) -> bool:
    """A stored phone that is still a number (not a tombstone, not a pseudonymous stand-in)."""
    return phone.startswith("+")


def check_phone(raw: str, region: str = "LY") -> str:
    """``raw`` when it is a valid number written in E.164; a clear ``InvalidPhone`` otherwise
    (an erasure acts on exactly the number given: no guessing of a national format)."""
    text = raw.strip()
    if not _E164.fullmatch(text):
        raise InvalidPhone(f"not a number in E.164 ({mask_phone(text)}): write it as +218912345678")
    if normalize_phone(text, region) != text:
        raise InvalidPhone(f"not a valid number: {mask_phone(text)}")
    return text


@dataclass(frozen=True, slots=True)
class Person:
    """A number to erase, the citizen registered with it (if any), and what replaces it."""

    phone: str
    citizen_id: int | None
    tombstone: str = field(default_factory=tombstone)


@dataclass(slots=True)
class Erased:
    """What an erasure touches (or would): rows, files and Redis entries, never numbers."""

    citizens: int = 0
    stand_ins: int = 0
    messages: int = 0
    calls: int = 0
    deliveries_cancelled: int = 0
    callbacks: int = 0
    callbacks_cancelled: int = 0
    tickets: int = 0
    requests: int = 0
    recordings: int = 0
    redis_keys: int = 0
    outbox_entries: int = 0

    def add(self, other: Erased) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def rows(self) -> int:
        """Database rows that hold the number (what tells a known number from an unknown one)."""
        return (
            self.citizens
            + self.stand_ins
            + self.messages
            + self.calls
            + self.callbacks
            + self.tickets
            + self.requests
        )


@dataclass(frozen=True, slots=True)
class Target:
    """One number to erase on request, with what would go."""

    person: Person
    pseudonym: str
    stand_ins: tuple[int, ...]
    found: Erased


# -- finding -----------------------------------------------------------------------------------


async def find(engine: AsyncEngine, settings: Settings, raw_phone: str) -> Target:
    """What an erasure of ``raw_phone`` would touch. ``InvalidPhone`` for a number not in
    E.164, ``AlreadyErased`` when nothing is left and an erasure is on record, ``NotFound``
    when the engine never knew the number."""
    phone = check_phone(raw_phone, settings.default_region)
    key = pseudonym(phone, settings.pseudonym_key)
    async with engine.connect() as conn:
        citizen_id = (await conn.execute(select(C.c.id).where(C.c.phone == phone))).scalar()
        prefix = pseudonymous_prefix(phone, settings.pseudonym_key)
        stand_ins = tuple(
            (
                await conn.execute(select(C.c.id).where(C.c.phone.startswith(prefix, autoescape=True)))
            ).scalars()
        )
        person = Person(phone, citizen_id)
        found = await count(conn, [person], stand_ins)
        found.recordings = len(await erasure_edges.recordings_of(conn, [person]))
        if found.rows == 0:
            erased_at = (
                await conn.execute(
                    select(func.max(AUDIT.c.created_at)).where(
                        AUDIT.c.action == ERASE_ACTION, AUDIT.c.target == f"citizen:{key}"
                    )
                )
            ).scalar()
            if erased_at is not None:
                raise AlreadyErased(
                    f"{mask_phone(phone)} was erased on {erased_at:%Y-%m-%d}: nothing is left to erase",
                    erased_at=erased_at.isoformat(),
                )
            raise NotFound(f"no citizen, message, call or request with {mask_phone(phone)}")
    return Target(person, key, stand_ins, found)


def _of(table: Any, phone_column: str, phones: list[str], ids: list[int]) -> Any:
    """Rows of ``table`` that carry one of the numbers or belong to one of the citizens."""
    return or_(table.c[phone_column].in_(phones), table.c.citizen_id.in_(ids))


async def count(conn: AsyncConnection, people: Sequence[Person], stand_ins: Iterable[int] = ()) -> Erased:
    """What erasing ``people`` (and the stand-ins ``stand_ins``) touches in the database."""
    phones, ids = erasure_edges.holds(people)
    twins = list(stand_ins)

    async def n(query: Any) -> int:
        return int((await conn.execute(query)).scalar_one())

    total = func.count()
    return Erased(
        citizens=len(ids),
        stand_ins=len(twins),
        messages=await n(select(total).where(_of(M, "phone", phones, [*ids, *twins]))),
        calls=await n(select(total).where(_of(CALL, "caller", phones, [*ids, *twins]))),
        deliveries_cancelled=await n(
            select(total).where(D.c.citizen_id.in_(ids), D.c.status.in_(("pending", "sending")))
        ),
        callbacks=await n(select(total).where(_of(CB, "phone", phones, ids))),
        callbacks_cancelled=await n(
            select(total).where(_of(CB, "phone", phones, ids), CB.c.status.in_(LIVE_CALLBACK))
        ),
        tickets=await n(select(total).where(_of(T, "phone", phones, ids), T.c.phone != "")),
        requests=await n(select(total).where(_of(R, "phone", phones, ids), R.c.phone != "")),
    )


# -- erasing -----------------------------------------------------------------------------------


async def erase(
    engine: AsyncEngine, redis: Redis, settings: Settings, target: Target, *, actor: str | Actor
) -> Erased:
    """Erase one number on request (stand-ins included); audited under its pseudonym."""
    return await erase_people(
        engine, redis, settings, [target.person], stand_ins=target.stand_ins,
        actor=actor, action=ERASE_ACTION, target=f"citizen:{target.pseudonym}",
    )  # fmt: skip


async def erase_people(
    engine: AsyncEngine,
    redis: Redis,
    settings: Settings,
    people: Sequence[Person],
    *,
    stand_ins: Sequence[int] = (),
    actor: str | Actor,
    action: str,
    target: str,
    **details: Any,
) -> Erased:
    """Erase ``people`` in one transaction, audited with the counts.

    The files and the Redis entries go first: they are found through the number, which the
    database no longer holds afterwards, so a failure in between leaves a number that a
    second run still finds and finishes.
    """
    async with engine.connect() as conn:
        done = await count(conn, people, stand_ins)
        recordings = await erasure_edges.recordings_of(conn, people)
        live = await erasure_edges.live_callbacks(conn, people)
    done.recordings = erasure_edges.delete_recordings(settings, recordings)
    edges = await erasure_edges.clean_redis(engine, redis, people, live)
    done.redis_keys, done.outbox_entries = edges
    async with AsyncSession(engine) as session, session.begin():
        conn = await session.connection()
        await _rewrite(conn, people, stand_ins)
        audit(session, actor=actor, action=action, target=target, **done.as_dict(), **details)
    return done


def _one_of(column: Any, values: Iterable[str]) -> Any:
    """``column IN (...)`` spelled out: an executemany cannot expand a list parameter."""
    return or_(*(column == value for value in values))


def _b(name: str, type_: Any = None) -> Any:
    return bindparam(f"b_{name}", type_=type_)


async def _rewrite(conn: AsyncConnection, people: Sequence[Person], stand_ins: Sequence[int]) -> None:
    """The statements, each once for all ``people`` (executemany)."""
    now = models.utcnow()
    params = [{"b_p": p.phone, "b_c": p.citizen_id, "b_t": p.tombstone} for p in people]
    phone, tomb, cid = _b("p"), _b("t"), _b("c", models.BigId)
    registered = [x for x in params if x["b_c"] is not None]
    if registered:
        await conn.execute(
            update(C)
            .where(C.c.id == cid)
            .values(phone=tomb, opted_out_at=func.coalesce(C.c.opted_out_at, now)),
            registered,
        )
    await conn.execute(
        update(M)
        .where(or_(M.c.phone == phone, M.c.citizen_id == cid))
        .values(_redacted_message(phone, tomb)),
        params,
    )
    await conn.execute(
        update(CALL)
        .where(or_(CALL.c.caller == phone, CALL.c.citizen_id == cid))
        .values(caller=tomb, channel=func.replace(CALL.c.channel, phone, tomb)),
        params,
    )
    if registered:
        await conn.execute(
            update(D)
            .where(D.c.citizen_id == cid, _one_of(D.c.status, ("pending", "sending")))
            .values(status="cancelled", claimed_at=None, next_attempt_at=None),
            registered,
        )
        await conn.execute(
            update(D)
            .where(D.c.citizen_id == cid, D.c.error.is_not(None))
            .values(error=func.replace(D.c.error, phone, tomb)),
            registered,
        )
    await conn.execute(
        update(CB)
        .where(or_(CB.c.phone == phone, CB.c.citizen_id == cid))
        .values(
            phone=tomb,
            status=case((_one_of(CB.c.status, LIVE_CALLBACK), literal("cancelled")), else_=CB.c.status),
            updated_at=now,
        ),
        params,
    )
    await conn.execute(
        update(T)
        .where(or_(T.c.phone == phone, T.c.citizen_id == cid))
        .values(phone="", notes=func.replace(T.c.notes, phone, "")),
        params,
    )
    await conn.execute(
        update(R)
        .where(or_(R.c.phone == phone, R.c.citizen_id == cid))
        .values(phone="", description=func.replace(R.c.description, phone, "")),
        params,
    )
    if stand_ins:
        twins = [{"b_c": twin, "b_t": tombstone()} for twin in stand_ins]
        await conn.execute(update(C).where(C.c.id == cid).values(phone=tomb), twins)
        await conn.execute(
            update(M).where(M.c.citizen_id == cid).values(_redacted_message(M.c.phone, tomb)), twins
        )
        await conn.execute(update(CALL).where(CALL.c.citizen_id == cid).values(caller=tomb), twins)


def _redacted_message(phone: Any, tomb: Any) -> dict[str, Any]:
    """A message with no body, no reply and the tombstone; one never processed (or never sent)
    is settled, so no reconciler runs it again nor sends it to a tombstone."""
    return {
        "phone": tomb,
        "body": "",
        "reply": case((M.c.reply.is_(None), None), else_=literal("")),
        "error": None,
        "gateway_id": case(
            (M.c.gateway_id.like("svc:%"), func.replace(M.c.gateway_id, phone, tomb)), else_=M.c.gateway_id
        ),
        "status": case(
            (and_(M.c.direction == "in", _one_of(M.c.status, ("received", "failed"))), literal("processed")),
            (and_(M.c.direction == "out", M.c.status == "queued"), literal("failed")),
            else_=M.c.status,
        ),
    }
