"""Starting, pausing, resuming and cancelling a campaign on a person's request.

The same domain calls as the JSON API (``service.move``, the ``plan_campaign`` job, the
send lanes), plus what a page needs: which moves a status allows, a refusal of a move to
the status the campaign already has (a double-clicked button audits nothing twice), and the
live event of the change.
"""

from __future__ import annotations

from typing import Final, Literal

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.audit import Actor
from callcenter.campaigns.progress import plan_job_id, publish_progress
from callcenter.campaigns.service import MOVES, move
from callcenter.errors import InvalidTransition
from callcenter.jobs import enqueue_lanes
from callcenter.settings import Settings

Action = Literal["start", "pause", "resume", "cancel"]
ACTIONS: Final[tuple[Action, ...]] = ("start", "pause", "resume", "cancel")
#: the status each move leads to (start: planning first, then running)
TARGET: Final[dict[Action, str]] = {
    "start": "running",
    "pause": "paused",
    "resume": "running",
    "cancel": "cancelled",
}


def allowed(status: str, action: Action) -> bool:
    """Whether ``action`` is a valid move from ``status``."""
    if action == "start":
        return status == "draft"
    if action == "resume":
        return status == "paused"
    return TARGET[action] in MOVES.get(status, frozenset())


def actions_for(status: str) -> list[Action]:
    return [a for a in ACTIONS if allowed(status, a)]


async def request_start(redis: ArqRedis, campaign: models.Campaign, *, actor: Actor | str) -> bool:
    """Queue the campaign's planning (the worker then marks it running and starts its lanes);
    False if a planning job was queued already."""
    assert campaign.id is not None
    if not allowed(campaign.status, "start"):
        raise InvalidTransition(
            f"campaign {campaign.id} is {campaign.status}", current=campaign.status, wanted="running"
        )
    job = await redis.enqueue_job("plan_campaign", campaign.id, actor, _job_id=plan_job_id(campaign.id))
    return job is not None


async def change(
    engine: AsyncEngine,
    redis: ArqRedis,
    settings: Settings,
    campaign: models.Campaign,
    action: Action,
    *,
    actor: Actor | str,
) -> models.Campaign:
    """Pause, resume or cancel (audited by ``move``), restart the lanes of a resumed SMS
    campaign, and publish the new state at once."""
    assert campaign.id is not None
    if action == "start" or not allowed(campaign.status, action):
        raise InvalidTransition(
            f"a campaign cannot go from {campaign.status} to {TARGET[action]}",
            current=campaign.status,
            wanted=TARGET[action],
        )
    moved = await move(engine, redis, campaign.id, TARGET[action], actor=actor)
    if moved.status == "running" and moved.channel == "sms":  # voice: the dialer picks it up
        await enqueue_lanes(redis, campaign.id)
    await publish_progress(engine, redis, settings, campaign.id)
    return moved
