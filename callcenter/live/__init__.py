"""Live updates: one event bus for every ``serve`` process and every browser tab.

An event is published once to a Redis Stream ``live:<topic>``; every subscriber (one per open
``/live`` connection, in any process) reads it from there, and a browser that reconnects
resumes from the last id it saw. Every event kind is declared once, in ``live.events``.

Usage::

    await publish(redis, "campaign:12", CAMPAIGN_PROGRESS, data)
    async for item in subscribe(redis, "campaign:12", after=last_event_id):
        ...
"""

from callcenter.live.bus import HEARTBEAT, Event, Heartbeat, publish, stream_key, subscribe, tip, valid_id
from callcenter.live.events import (
    AGENT_STATUS,
    CAMPAIGN_PROGRESS,
    KINDS,
    WALLBOARD_CHANGED,
    CampaignProgress,
    UnknownEventKind,
)

__all__ = [
    "AGENT_STATUS",
    "CAMPAIGN_PROGRESS",
    "HEARTBEAT",
    "KINDS",
    "WALLBOARD_CHANGED",
    "CampaignProgress",
    "Event",
    "Heartbeat",
    "UnknownEventKind",
    "publish",
    "stream_key",
    "subscribe",
    "tip",
    "valid_id",
]
