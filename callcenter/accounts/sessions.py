"""Server-side login sessions: the cookie carries a random token, the database its SHA-256.

A session ends after ``session_idle_minutes`` without a request, after
``session_absolute_hours`` whatever happens, when the user logs out, changes their password
or is disabled. ``last_seen_at`` is written at most once a minute, so browsing costs reads only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, Text, and_, bindparam, cast, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callcenter import models
from callcenter.accounts.principal import Principal
from callcenter.accounts.roles import Role

COOKIE = "cc_session"
TOUCH_EVERY = timedelta(minutes=1)

SESSION = models.table(models.UserSession)
USER = models.table(models.User)
USER_MUNICIPALITY = models.table(models.UserMunicipality)


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OpenedSession:
    token: str  # for the cookie; never stored
    id: str
    csrf_token: str
    expires_at: datetime


async def open_session(
    session: AsyncSession,
    *,
    user_id: int,
    stage: str,
    address: str,
    user_agent: str,
    absolute: timedelta,
    now: datetime,
) -> OpenedSession:
    token = secrets.token_urlsafe(32)
    opened = OpenedSession(token, token_id(token), secrets.token_urlsafe(32), now + absolute)
    await session.execute(
        SESSION.insert().values(
            id=opened.id,
            user_id=user_id,
            stage=stage,
            csrf_token=opened.csrf_token,
            address=address[:64],
            user_agent=user_agent[:300],
            created_at=now,
            last_seen_at=now,
            expires_at=opened.expires_at,
        )
    )
    return opened


async def user_municipalities(conn: AsyncSession | AsyncConnection, user_id: int) -> frozenset[int]:
    rows = await conn.execute(
        select(USER_MUNICIPALITY.c.municipality_id).where(USER_MUNICIPALITY.c.user_id == user_id)
    )
    return frozenset(int(r[0]) for r in rows)


@cache
def _lookup(dialect: str) -> Select[Any]:
    """The session lookup, built once per dialect (building a statement costs more than
    running it): one row of session, user and the user's municipalities."""
    agg = (
        func.string_agg(cast(USER_MUNICIPALITY.c.municipality_id, Text), ",")
        if dialect == "postgresql"
        else func.group_concat(USER_MUNICIPALITY.c.municipality_id)
    )
    scope = select(agg).where(USER_MUNICIPALITY.c.user_id == USER.c.id).scalar_subquery()
    return (
        select(
            SESSION.c.stage,
            SESSION.c.csrf_token,
            SESSION.c.last_seen_at,
            USER.c.id,
            USER.c.email,
            USER.c.name,
            USER.c.role,
            USER.c.language,
            USER.c.totp_secret,
            scope.label("municipalities"),
        )
        .join(USER, USER.c.id == SESSION.c.user_id)
        .where(
            and_(
                SESSION.c.id == bindparam("sid"),
                SESSION.c.revoked_at.is_(None),
                SESSION.c.expires_at > bindparam("now"),
                SESSION.c.last_seen_at > bindparam("idle_since"),
                USER.c.disabled_at.is_(None),
            )
        )
    )


async def load(conn: AsyncConnection, token: str, *, idle: timedelta, now: datetime) -> Principal | None:
    """The principal of a live session, or None (unknown, expired, idle, revoked, user disabled).
    ``conn`` may be in autocommit: the lookup is one statement, the touch another."""
    sid = token_id(token)
    statement = _lookup(conn.dialect.name)
    row = (await conn.execute(statement, {"sid": sid, "now": now, "idle_since": now - idle})).first()
    if row is None:
        return None
    if _aware(row.last_seen_at) < now - TOUCH_EVERY:
        await conn.execute(SESSION.update().where(SESSION.c.id == sid).values(last_seen_at=now))
    ids = frozenset(int(x) for x in str(row.municipalities or "").split(",") if x)
    return Principal(
        user_id=row.id,
        email=row.email,
        name=row.name,
        role=Role(row.role),
        municipalities=ids,
        language=row.language,
        via="session",
        session_id=sid,
        csrf_token=row.csrf_token,
        stage=row.stage,
        totp_enabled=row.totp_secret is not None,
    )


def _aware(ts: datetime) -> datetime:
    """SQLite gives naive datetimes back (stored as UTC)."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


async def revoke(session: AsyncSession, session_id: str, *, now: datetime) -> None:
    await session.execute(
        update(SESSION)
        .where(SESSION.c.id == session_id, SESSION.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_all(session: AsyncSession, user_id: int, *, now: datetime, keep: str | None = None) -> int:
    """End every live session of a user (password changed, user disabled); ``keep`` one of them."""
    query = update(SESSION).where(SESSION.c.user_id == user_id, SESSION.c.revoked_at.is_(None))
    if keep is not None:
        query = query.where(SESSION.c.id != keep)
    result = await session.execute(query.values(revoked_at=now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
