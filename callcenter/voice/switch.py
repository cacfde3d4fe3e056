"""The mode switch: citizens who did not finish an inquiry on one channel get the other.

An inquiry with ``switch_after_hours = X`` and ``switch_to = voice`` (or ``sms``) plans, for
each citizen who

* was contacted on the other channel (a delivery with ``sent_at``) more than X hours ago, has
  no newer contact and nothing still open there (no ``pending``/``sending`` retry),
* has not completed the inquiry — whether they never answered or stopped half-way: the other
  channel resumes at the first unanswered question, because both channels share the session
  and its unique answers; a citizen who typed or keyed anything in the last X hours is left
  alone until X hours of silence have passed,
* has not opted out, is under the inquiry's ``max_contacts`` (see :mod:`.dial_rules`),
* and has never had a delivery on the target channel for this inquiry,

a ``pending`` Delivery in the inquiry's switch campaign on the target channel (created and
started if needed; it copies quiet hours and attempts from the latest campaign of the other
channel, so quiet hours apply through the campaign at dial/send time).

Usage::

    planned = await plan_switch(engine, inquiry_id, datetime.now(UTC))   # idempotent

The telephony process runs :func:`plan_switches` every minute (see the dialer).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import and_, exists, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import audit
from callcenter.campaigns.service import Audience, create_campaign, status_key
from callcenter.inquiry.definition import InquiryStatus
from callcenter.sql import insert
from callcenter.voice import dial_rules

D = models.table(models.Delivery)
C = models.table(models.Citizen)
K = models.table(models.Campaign)
S = models.table(models.InquirySession)
I = models.table(models.Inquiry)  # noqa: E741
CHANNELS = ("sms", "voice")
SWITCH_KEY = "switch_from"  # in Campaign.audience: marks the inquiry's switch campaign


async def plan_switches(engine: AsyncEngine, now: datetime, *, redis: Redis | None = None) -> dict[int, int]:
    """:func:`plan_switch` for every running inquiry that has a mode switch; planned rows
    per inquiry (only those that planned some)."""
    async with engine.connect() as conn:
        ids = (
            await conn.execute(
                select(I.c.id).where(
                    I.c.status == InquiryStatus.RUNNING.value,
                    I.c.switch_after_hours.is_not(None),
                    I.c.switch_to.in_(CHANNELS),
                )
            )
        ).scalars()
        inquiries = [int(i) for i in ids]
    planned = {}
    for inquiry_id in inquiries:
        if n := await plan_switch(engine, inquiry_id, now, redis=redis):
            planned[inquiry_id] = n
    return planned


async def plan_switch(
    engine: AsyncEngine, inquiry_id: int, now: datetime, *, redis: Redis | None = None
) -> int:
    """Plan the switch of one inquiry at ``now``; returns how many deliveries it added.

    Runs in one transaction that locks the inquiry row (PostgreSQL), so two planners never
    create two switch campaigns. ``redis`` mirrors a newly started campaign's status."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        query = select(models.Inquiry).where(models.Inquiry.id == inquiry_id)  # type: ignore[arg-type]
        if engine.dialect.name == "postgresql":
            query = query.with_for_update()
        inquiry = (await session.execute(query)).scalar_one_or_none()
        if (
            inquiry is None
            or inquiry.status != InquiryStatus.RUNNING.value
            or not inquiry.switch_after_hours
            or inquiry.switch_to not in CHANNELS
        ):
            return 0
        target = inquiry.switch_to
        source = "sms" if target == "voice" else "voice"
        cutoff = now - timedelta(hours=inquiry.switch_after_hours)
        campaign, started = await _switch_campaign(session, inquiry_id, source, target, now)
        assert campaign.id is not None

        d_src, k_src = D.alias("src_d"), K.alias("src_k")
        on_source = and_(
            d_src.c.citizen_id == C.c.id,
            d_src.c.campaign_id == k_src.c.id,
            k_src.c.inquiry_id == inquiry_id,
            k_src.c.channel == source,
        )
        d_tgt, k_tgt = D.alias("tgt_d"), K.alias("tgt_k")
        on_target = and_(
            d_tgt.c.citizen_id == C.c.id,
            d_tgt.c.campaign_id == k_tgt.c.id,
            k_tgt.c.inquiry_id == inquiry_id,
            k_tgt.c.channel == target,
        )
        recent_input = exists().where(
            S.c.citizen_id == C.c.id, S.c.inquiry_id == inquiry_id, S.c.updated_at >= cutoff
        )
        chosen = select(
            literal(campaign.id, models.BigId).label("campaign_id"),
            C.c.id,
            literal("pending").label("status"),
            literal(0).label("attempts"),
        ).where(
            exists().where(on_source, d_src.c.sent_at < cutoff),
            ~exists().where(on_source, d_src.c.sent_at >= cutoff),
            ~exists().where(on_source, d_src.c.status.in_(("pending", "sending"))),
            ~exists().where(on_target),
            ~recent_input,
            dial_rules.may_contact(C.c.id, C.c.opted_out_at, inquiry_id, inquiry.max_contacts),
        )
        count = select(func.count()).where(D.c.campaign_id == campaign.id)
        before = (await session.execute(count)).scalar_one()
        await session.execute(
            insert(engine.dialect.name, D)
            .from_select(["campaign_id", "citizen_id", "status", "attempts"], chosen)
            .on_conflict_do_nothing()
        )
        after = (await session.execute(count)).scalar_one()
        await session.execute(update(K).where(K.c.id == campaign.id).values(planned=after))
        if after > before:
            audit(
                session,
                actor="switch",
                action="campaign.switch",
                target=str(campaign.id),
                added=after - before,
            )
    if started and redis is not None:
        await redis.set(status_key(campaign.id), "running")
    return int(after - before)


async def _switch_campaign(
    session: AsyncSession, inquiry_id: int, source: str, target: str, now: datetime
) -> tuple[models.Campaign, bool]:
    """The inquiry's open switch campaign on ``target``, or a new running one (True)."""
    Kc = models.Campaign
    found = (
        (
            await session.execute(
                select(Kc)
                .where(
                    Kc.inquiry_id == inquiry_id,  # type: ignore[arg-type]
                    Kc.channel == target,  # type: ignore[arg-type]
                    Kc.status.in_(("draft", "running", "paused")),  # type: ignore[attr-defined]
                )
                .order_by(Kc.id.desc())  # type: ignore[union-attr]
            )
        )
        .scalars()
        .all()
    )
    for campaign in found:
        if campaign.audience.get(SWITCH_KEY) == source:
            if campaign.status != "draft":
                return campaign, False
            campaign.status, campaign.started_at = "running", campaign.started_at or now
            audit(session, actor="switch", action="campaign.running", target=str(campaign.id))
            return campaign, True
    like = (
        await session.execute(
            select(Kc)
            .where(Kc.inquiry_id == inquiry_id, Kc.channel == source)  # type: ignore[arg-type]
            .order_by(Kc.id.desc())  # type: ignore[union-attr]
            .limit(1)
        )
    ).scalar_one_or_none()
    campaign = await create_campaign(
        session,
        inquiry=inquiry_id,
        audience=Audience(),
        actor="switch",
        channel=target,
        max_attempts=like.max_attempts if like is not None else 4,
        quiet_start=like.quiet_start if like is not None else None,
        quiet_end=like.quiet_end if like is not None else None,
    )
    campaign.audience = {**Audience().to_json(), SWITCH_KEY: source}
    campaign.status, campaign.started_at = "running", now
    await session.flush()
    audit(session, actor="switch", action="campaign.running", target=str(campaign.id))
    return campaign, True
