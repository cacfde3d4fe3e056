"""Keys issued to Open311 clients, after the staff's API tokens (accounts/tokens.py): ``o311_``
and 43 random characters, shown once, kept as a SHA-256 with a prefix to recognise it; a key
may be limited to some municipalities (its jurisdictions) and is revoked, never deleted (the
requests it made point at it). Issuing and revoking are audited; ``last_used_at`` is written
at most once a minute.

Usage::

    client, key = await issue(session, name="FixMyStreet Libya", jurisdictions=["benghazi"],
                              actor="cli")
    found = await verify(conn, key, now=now)      # Client or None
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.errors import CallCenterError, NotFound

CLIENT = models.table(models.Open311Client)
MUNICIPALITY = models.table(models.Municipality)
PREFIX: Final = "o311_"
NAME_LIMIT: Final = 100


class BadClient(CallCenterError):
    status_code = 422
    error_id = "open311_bad_client"


@dataclass(frozen=True, slots=True)
class Client:
    id: int
    name: str
    prefix: str
    jurisdictions: frozenset[str]  # municipality codes; empty: every municipality
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def reaches(self, jurisdiction: str) -> bool:
        return not self.jurisdictions or jurisdiction in self.jurisdictions

    @property
    def actor(self) -> Actor:
        """Who acts when the client makes a request (the audit log, the request's history)."""
        return Actor(f"open311:{self.prefix}")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def issue(
    session: AsyncSession, *, name: str, jurisdictions: list[str], actor: str | Actor
) -> tuple[Client, str]:
    """A new client and its key (to hand over once: only its hash is kept)."""
    name = name.strip()
    if not name or len(name) > NAME_LIMIT:
        raise BadClient(f"a client needs a name of 1 to {NAME_LIMIT} characters")
    codes = sorted(set(jurisdictions))
    conn = await session.connection()
    if codes:
        found = await conn.execute(select(MUNICIPALITY.c.code).where(MUNICIPALITY.c.code.in_(codes)))
        known = set(found.scalars())
        unknown = [code for code in codes if code not in known]
        if unknown:
            raise BadClient(f"unknown municipality: {', '.join(unknown)} (not in the register)")
    key = PREFIX + secrets.token_urlsafe(32)
    made = await conn.execute(
        insert(CLIENT)
        .values(
            name=name, prefix=key[:10], key_hash=_hash(key), jurisdictions=codes,
            created_by=str(actor)[:100], created_at=models.utcnow(),
        )
        .returning(CLIENT.c.id)
    )  # fmt: skip
    client_id = int(made.scalar_one())
    audit(
        session, actor=actor, action="open311.client.issue", target=f"open311_client:{client_id}",
        after={"name": name, "prefix": key[:10], "jurisdictions": codes},
    )  # fmt: skip
    return Client(client_id, name, key[:10], frozenset(codes)), key


async def verify(conn: AsyncConnection, key: str, *, now: datetime) -> Client | None:
    """The live client holding ``key``, or None."""
    if not key.startswith(PREFIX) or len(key) > 100:
        return None
    row = (
        await conn.execute(
            select(CLIENT).where(CLIENT.c.key_hash == _hash(key), CLIENT.c.revoked_at.is_(None))
        )
    ).mappings().first()  # fmt: skip
    if row is None:
        return None
    last = row["last_used_at"]
    if last is None or (last if last.tzinfo else last.replace(tzinfo=UTC)) < now - timedelta(minutes=1):
        await conn.execute(update(CLIENT).where(CLIENT.c.id == row["id"]).values(last_used_at=now))
    return _client(row)


async def clients(conn: AsyncConnection) -> list[Client]:
    rows = await conn.execute(select(CLIENT).order_by(CLIENT.c.id))
    return [_client(row) for row in rows.mappings()]


async def revoke(session: AsyncSession, *, prefix: str, actor: str | Actor) -> Client:
    """Revoke the live key that starts with ``prefix`` (as listed)."""
    conn = await session.connection()
    rows = (
        await conn.execute(
            select(CLIENT).where(CLIENT.c.prefix == prefix[:10], CLIENT.c.revoked_at.is_(None))
        )
    ).mappings().all()  # fmt: skip
    if len(rows) != 1:
        raise NotFound("no live Open311 key has that prefix", prefix=prefix[:10])
    now = models.utcnow()
    await conn.execute(update(CLIENT).where(CLIENT.c.id == rows[0]["id"]).values(revoked_at=now))
    audit(
        session, actor=actor, action="open311.client.revoke", target=f"open311_client:{rows[0]['id']}",
        before={"name": rows[0]["name"], "prefix": rows[0]["prefix"]},
    )  # fmt: skip
    return _client({**rows[0], "revoked_at": now})


def _client(row: Mapping[Any, Any]) -> Client:
    return Client(
        id=int(row["id"]), name=row["name"], prefix=row["prefix"],
        jurisdictions=frozenset(row["jurisdictions"] or ()), created_at=row["created_at"],
        last_used_at=row["last_used_at"], revoked_at=row["revoked_at"],
    )  # fmt: skip
