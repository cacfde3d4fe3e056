"""Campaigns: push an inquiry to an audience; start, pause, resume, cancel; progress."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from callcenter import models
from callcenter.audit import Actor
from callcenter.campaigns.service import Audience, counts, create_campaign, get_campaign, move
from callcenter.web.deps import ActorDep, EngineDep, RedisDep, SessionDep, SettingsDep, get_actor

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"], dependencies=[Depends(get_actor)])


class CampaignIn(BaseModel):
    inquiry: str
    channel: Literal["sms", "voice"] = "sms"
    municipalities: list[str] = Field(default_factory=list)
    languages: list[Literal["ar", "en"]] = Field(default_factory=list)
    rate_per_s: float | None = Field(default=None, ge=0)
    max_attempts: int = Field(default=4, ge=1, le=10)
    quiet_start: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    quiet_end: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    start: bool = False


def _view(c: models.Campaign, progress: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": c.id,
        "inquiry_id": c.inquiry_id,
        "channel": c.channel,
        "gateway": c.gateway,
        "status": c.status,
        "audience": c.audience,
        "planned": c.planned,
        "rate_per_s": c.rate_per_s,
        "deliveries": progress or {},
    }


@router.post("", status_code=201)
async def create(
    body: CampaignIn, session: SessionDep, settings: SettingsDep, redis: RedisDep, actor: ActorDep
) -> dict[str, Any]:
    campaign = await create_campaign(
        session,
        inquiry=body.inquiry,
        audience=Audience(tuple(body.municipalities), tuple(body.languages)),
        actor=actor,
        channel=body.channel,
        gateway=settings.sms_gateway if body.channel == "sms" else "trunk",
        rate_per_s=body.rate_per_s,
        max_attempts=body.max_attempts,
        quiet_start=body.quiet_start,
        quiet_end=body.quiet_end,
    )
    await session.commit()
    if body.start:
        await redis.enqueue_job("plan_campaign", campaign.id, actor)
    return _view(campaign)


@router.get("/{campaign_id}")
async def read(campaign_id: int, session: SessionDep, engine: EngineDep) -> dict[str, Any]:
    return _view(await get_campaign(session, campaign_id), await counts(engine, campaign_id))


@router.post("/{campaign_id}/start", status_code=202)
async def start(campaign_id: int, session: SessionDep, redis: RedisDep, actor: ActorDep) -> dict[str, Any]:
    campaign = await get_campaign(session, campaign_id)
    if campaign.status != "draft":
        from callcenter.errors import InvalidTransition

        raise InvalidTransition(f"campaign {campaign_id} is {campaign.status}")
    await redis.enqueue_job("plan_campaign", campaign_id, actor, _job_id=f"plan:{campaign_id}")
    return {"id": campaign_id, "status": "planning"}


async def _move(engine: Any, redis: RedisDep, campaign_id: int, status: str, actor: Actor) -> dict[str, Any]:
    campaign = await move(engine, redis, campaign_id, status, actor=actor)
    if status == "running":
        from callcenter.jobs import enqueue_lanes

        await enqueue_lanes(redis, campaign_id)
    return _view(campaign)


@router.post("/{campaign_id}/pause")
async def pause(campaign_id: int, engine: EngineDep, redis: RedisDep, actor: ActorDep) -> dict[str, Any]:
    return await _move(engine, redis, campaign_id, "paused", actor)


@router.post("/{campaign_id}/resume")
async def resume(campaign_id: int, engine: EngineDep, redis: RedisDep, actor: ActorDep) -> dict[str, Any]:
    return await _move(engine, redis, campaign_id, "running", actor)


@router.post("/{campaign_id}/cancel")
async def cancel(campaign_id: int, engine: EngineDep, redis: RedisDep, actor: ActorDep) -> dict[str, Any]:
    return await _move(engine, redis, campaign_id, "cancelled", actor)
