"""Campaigns: an inquiry pushed to an audience over one channel.

The database is the outbox: planning writes one ``Delivery`` row per citizen; workers only
carry the work of sending them. The campaign's status lives in the database and is mirrored
in Redis so that senders see pause / cancel within a chunk (well under a second).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import and_, exists, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.errors import InvalidTransition, NotFound
from callcenter.inquiries import get_inquiry_row, set_status
from callcenter.inquiry.definition import InquiryStatus

D = models.table(models.Delivery)
C = models.table(models.Citizen)
S = models.table(models.InquirySession)
K = models.table(models.Campaign)
MU = models.table(models.Municipality)

# draft -> running <-> paused -> done | cancelled (final)
MOVES: dict[str, frozenset[str]] = {
    "draft": frozenset({"running", "cancelled"}),
    "running": frozenset({"paused", "cancelled", "done"}),
    "paused": frozenset({"running", "cancelled"}),
    "done": frozenset(),
    "cancelled": frozenset(),
}


def status_key(campaign_id: int) -> str:
    return f"campaign:{campaign_id}:status"


def epoch_key(campaign_id: int) -> str:
    return f"campaign:{campaign_id}:epoch"


@dataclass(frozen=True, slots=True)
class Audience:
    municipalities: tuple[str, ...] = ()  # codes; empty = all
    languages: tuple[str, ...] = ()  # empty = all

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        return cls(tuple(data.get("municipalities", ())), tuple(data.get("languages", ())))

    def to_json(self) -> dict[str, Any]:
        return {"municipalities": list(self.municipalities), "languages": list(self.languages)}


async def create_campaign(
    session: AsyncSession,
    *,
    inquiry: int | str,
    audience: Audience,
    actor: str | Actor,
    channel: str = "sms",
    gateway: str = "loopback",
    rate_per_s: float | None = None,
    max_attempts: int = 4,
    quiet_start: str | None = None,
    quiet_end: str | None = None,
) -> models.Campaign:
    row = await get_inquiry_row(session, inquiry)
    if row.status == InquiryStatus.CLOSED:
        raise InvalidTransition(f"inquiry {row.slug!r} is closed")
    assert row.id is not None
    campaign = models.Campaign(
        inquiry_id=row.id,
        channel=channel,
        gateway=gateway,
        audience=audience.to_json(),
        rate_per_s=rate_per_s,
        max_attempts=max_attempts,
        quiet_start=quiet_start,
        quiet_end=quiet_end,
    )
    session.add(campaign)
    await session.flush()
    audit(session, actor=actor, action="campaign.create", target=str(campaign.id), inquiry=row.slug)
    return campaign


async def get_campaign(session: AsyncSession, campaign_id: int) -> models.Campaign:
    campaign = await session.get(models.Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    return campaign


async def plan(engine: AsyncEngine, campaign_id: int) -> int:
    """Write the outbox: a pending Delivery per citizen in the audience (idempotent).

    Opted-out citizens and citizens who already completed the inquiry are left out.
    """
    async with AsyncSession(engine, expire_on_commit=False) as session:
        campaign = await get_campaign(session, campaign_id)
    audience = Audience.from_json(campaign.audience)
    done = exists().where(
        and_(
            S.c.citizen_id == C.c.id,
            S.c.inquiry_id == campaign.inquiry_id,
            S.c.status.in_(("completed", "opted_out")),
        )
    )
    chosen = select(
        literal(campaign_id, models.BigId).label("campaign_id"),
        C.c.id,
        literal("pending").label("status"),
        literal(0).label("attempts"),
    ).where(C.c.opted_out_at.is_(None), ~done)
    if audience.languages:
        chosen = chosen.where(C.c.language.in_(audience.languages))
    if audience.municipalities:
        chosen = chosen.where(
            C.c.municipality_id.in_(select(MU.c.id).where(MU.c.code.in_(audience.municipalities)))
        )
    from callcenter.sql import insert

    stmt = (
        insert(engine.dialect.name, D)
        .from_select(["campaign_id", "citizen_id", "status", "attempts"], chosen)
        .on_conflict_do_nothing()
    )
    async with engine.begin() as conn:
        await conn.execute(stmt)
        planned = (
            await conn.execute(select(func.count()).where(D.c.campaign_id == campaign_id))
        ).scalar_one()
        await conn.execute(update(K).where(K.c.id == campaign_id).values(planned=planned))
    return int(planned)


async def move(
    engine: AsyncEngine, redis: Redis, campaign_id: int, status: str, *, actor: str | Actor
) -> models.Campaign:
    """Change a campaign's status in the database and mirror it in Redis at once."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        campaign = await get_campaign(session, campaign_id)
        if status != campaign.status and status not in MOVES[campaign.status]:
            raise InvalidTransition(
                f"a campaign cannot go from {campaign.status} to {status}",
                current=campaign.status,
                wanted=status,
            )
        if status == "running":
            inquiry = await session.get(models.Inquiry, campaign.inquiry_id)
            assert inquiry is not None
            if inquiry.status in (InquiryStatus.DRAFT, InquiryStatus.SCHEDULED):
                await set_status(session, inquiry.id or 0, InquiryStatus.RUNNING, actor=actor)
            elif inquiry.status != InquiryStatus.RUNNING:
                raise InvalidTransition(f"inquiry {inquiry.slug!r} is {inquiry.status}")
            campaign.started_at = campaign.started_at or models.utcnow()
        if status in ("done", "cancelled"):
            campaign.finished_at = models.utcnow()
        if status == "cancelled":
            await session.execute(
                update(D)
                .where(D.c.campaign_id == campaign_id, D.c.status.in_(("pending", "sending")))
                .values(status="cancelled")
            )
        campaign.status = status
        audit(session, actor=actor, action=f"campaign.{status}", target=str(campaign_id))
    await redis.set(status_key(campaign_id), status)
    if status == "running":
        await redis.incr(epoch_key(campaign_id))
    return campaign


async def cached_status(engine: AsyncEngine, redis: Redis, campaign_id: int) -> str:
    """The campaign's status from Redis, or from the database (and re-mirrored) after a
    Redis restart lost it."""
    value = await redis.get(status_key(campaign_id))
    if value is not None:
        return value.decode() if isinstance(value, bytes) else str(value)
    async with engine.connect() as conn:
        status = (await conn.execute(select(K.c.status).where(K.c.id == campaign_id))).scalar_one()
    await redis.set(status_key(campaign_id), status)
    return str(status)


async def counts(engine: AsyncEngine, campaign_id: int) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(D.c.status, func.count()).where(D.c.campaign_id == campaign_id).group_by(D.c.status)
            )
        ).all()
    return {str(status): int(n) for status, n in rows}
