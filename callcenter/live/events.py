"""Every kind of live event, declared once: its name and the shape of its data.

Publishing an undeclared kind, or data that does not fit its kind, is refused at the
publisher, so a subscriber (a browser page) can rely on what it receives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from callcenter.campaigns.waiting import Code


class UnknownEventKind(ValueError):
    """A kind that is not declared in ``KINDS``."""


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgressCounts(_Data):
    planned: int
    sent: int
    delivered: int
    replied: int
    completed: int
    opted_out: int
    failed: int
    remaining: int  # pending or being sent


class WaitingReason(_Data):
    code: Code
    params: dict[str, str] = {}


class CampaignProgress(_Data):
    """A campaign's counts, status and why it waits, as of ``at``."""

    campaign_id: int
    status: str
    counts: ProgressCounts
    reason: WaitingReason | None
    at: datetime


CAMPAIGN_PROGRESS: Final = "campaign.progress"


class AgentStatus(_Data):
    """An agent's state changed (the desk re-reads its card when ``entry`` changes)."""

    agent: str
    state: str
    since: float
    pause_reason: str | None = None
    entry: str | None = None
    queue: str | None = None
    event: str = ""  # the routing event that caused it (agent.state, entry.offered ...)
    at: float = 0.0  # when the routing event happened (Redis' clock): event-to-desk latency


class WallboardChanged(_Data):
    """Something the wallboard shows changed; it re-reads its figures (at most so often)."""

    kinds: list[str]
    at: float


AGENT_STATUS: Final = "desk.agent"
WALLBOARD_CHANGED: Final = "wallboard.changed"

#: kind -> the model of its data
KINDS: Final[dict[str, type[_Data]]] = {
    CAMPAIGN_PROGRESS: CampaignProgress,
    AGENT_STATUS: AgentStatus,
    WALLBOARD_CHANGED: WallboardChanged,
}


def validated(kind: str, data: Any) -> dict[str, Any]:
    """The event's data checked against its kind, as plain JSON values."""
    model = KINDS.get(kind)
    if model is None:
        raise UnknownEventKind(f"no live event kind {kind!r} is declared")
    return model.model_validate(data).model_dump(mode="json")
