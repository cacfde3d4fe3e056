"""Personal API tokens: ``cc_`` and 43 random characters, shown once, stored as a SHA-256,
with scopes, an expiry, and revocation. ``last_used_at`` is written at most once a minute."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callcenter import models
from callcenter.accounts.principal import Principal
from callcenter.accounts.roles import ROLE_SCOPES, Role
from callcenter.accounts.sessions import USER, user_municipalities

TOKEN = models.table(models.ApiToken)
PREFIX = "cc_"


class TokenScopeError(ValueError):
    """A scope the user's role may not grant."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    session: AsyncSession,
    *,
    user_id: int,
    role: Role,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    now: datetime,
) -> tuple[models.ApiToken, str]:
    """A new token row and the token itself (to show once)."""
    allowed = ROLE_SCOPES[role]
    refused = sorted(set(scopes) - allowed)
    if refused:
        raise TokenScopeError(", ".join(refused))
    if not scopes:
        raise TokenScopeError("at least one scope")
    if expires_at is not None and expires_at <= now:
        raise TokenScopeError("expiry in the past")
    token = PREFIX + secrets.token_urlsafe(32)
    row = models.ApiToken(
        user_id=user_id,
        name=name.strip()[:100] or "token",
        prefix=token[:10],
        token_hash=_hash(token),
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row, token


async def load_token(conn: AsyncSession | AsyncConnection, token: str, *, now: datetime) -> Principal | None:
    """The principal of a live token whose user is enabled, or None."""
    if not token.startswith(PREFIX):
        return None
    row = (
        await conn.execute(
            select(
                TOKEN.c.id,
                TOKEN.c.prefix,
                TOKEN.c.scopes,
                TOKEN.c.last_used_at,
                USER.c.id.label("user_id"),
                USER.c.email,
                USER.c.name,
                USER.c.role,
                USER.c.language,
            )
            .join(USER, USER.c.id == TOKEN.c.user_id)
            .where(
                and_(
                    TOKEN.c.token_hash == _hash(token),
                    TOKEN.c.revoked_at.is_(None),
                    or_(TOKEN.c.expires_at.is_(None), TOKEN.c.expires_at > now),
                    USER.c.disabled_at.is_(None),
                )
            )
        )
    ).first()
    if row is None:
        return None
    last = row.last_used_at
    if last is None or (last if last.tzinfo else last.replace(tzinfo=UTC)) < now - timedelta(minutes=1):
        await conn.execute(TOKEN.update().where(TOKEN.c.id == row.id).values(last_used_at=now))
    role = Role(row.role)
    return Principal(
        user_id=row.user_id,
        email=row.email,
        name=row.name,
        role=role,
        municipalities=await user_municipalities(conn, row.user_id),
        language=row.language,
        via="token",
        # a token never carries more than its user's role may grant today
        scopes=frozenset(row.scopes) & ROLE_SCOPES[role],
        token_prefix=row.prefix,
    )


async def revoke_token(session: AsyncSession, *, token_id: int, user_id: int, now: datetime) -> bool:
    if not 0 < token_id < 2**63:  # no bigint id: no token (PostgreSQL would refuse the query: a 500)
        return False
    result = await session.execute(
        TOKEN.update()
        .where(TOKEN.c.id == token_id, TOKEN.c.user_id == user_id, TOKEN.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
