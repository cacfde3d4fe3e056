"""Campaigns: push an inquiry to an audience; start, pause, resume, cancel; progress."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field, field_validator

from callcenter import models
from callcenter.audit import Actor
from callcenter.campaigns.control import Action, change, request_start
from callcenter.campaigns.quiet import parse_hhmm
from callcenter.campaigns.service import Audience, counts, create_campaign, get_campaign
from callcenter.web.api.responses import API_ERRORS
from callcenter.web.deps import ActorDep, EngineDep, RedisDep, SessionDep, SettingsDep, get_actor

router = APIRouter(
    prefix="/api/campaigns", tags=["campaigns"], dependencies=[Depends(get_actor)], responses=API_ERRORS
)


#: a campaign's id as PostgreSQL stores it (bigint): a larger number failed the query (500)
CampaignId = Annotated[int, Path(ge=1, le=2**63 - 1)]


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

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _a_real_time(cls, value: str | None) -> str | None:
        """``25:00`` matches the pattern but is no time of day."""
        if value is not None:
            try:
                parse_hhmm(value)
            except ValueError as exc:
                raise ValueError(f"{value} is not a time of day (00:00 to 23:59)") from exc
        return value


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
        await request_start(redis, campaign, actor=actor)
    return _view(campaign)


@router.get("/{campaign_id}")
async def read(campaign_id: CampaignId, session: SessionDep, engine: EngineDep) -> dict[str, Any]:
    return _view(await get_campaign(session, campaign_id), await counts(engine, campaign_id))


@router.post("/{campaign_id}/start", status_code=202)
async def start(
    campaign_id: CampaignId, session: SessionDep, redis: RedisDep, actor: ActorDep
) -> dict[str, Any]:
    await request_start(redis, await get_campaign(session, campaign_id), actor=actor)
    return {"id": campaign_id, "status": "planning"}


async def _change(
    session: SessionDep, engine: EngineDep, redis: RedisDep, settings: SettingsDep, campaign_id: int,
    action: Action, actor: Actor,
) -> dict[str, Any]:  # fmt: skip
    """The same move as the page's buttons: audited, lanes restarted for SMS, published live."""
    campaign = await get_campaign(session, campaign_id)
    return _view(await change(engine, redis, settings, campaign, action, actor=actor))


@router.post("/{campaign_id}/pause")
async def pause(
    campaign_id: CampaignId,
    session: SessionDep,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
    actor: ActorDep,
) -> dict[str, Any]:
    return await _change(session, engine, redis, settings, campaign_id, "pause", actor)


@router.post("/{campaign_id}/resume")
async def resume(
    campaign_id: CampaignId,
    session: SessionDep,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
    actor: ActorDep,
) -> dict[str, Any]:
    return await _change(session, engine, redis, settings, campaign_id, "resume", actor)


@router.post("/{campaign_id}/cancel")
async def cancel(
    campaign_id: CampaignId,
    session: SessionDep,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
    actor: ActorDep,
) -> dict[str, Any]:
    return await _change(session, engine, redis, settings, campaign_id, "cancel", actor)
