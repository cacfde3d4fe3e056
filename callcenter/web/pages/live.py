"""``GET /live?topic=…``: the live updates of one topic as Server-Sent Events.

The route's policy lets any staff member in; each topic then asks for what reading its
subject asks for (a campaign topic: the role and scope that may open the campaign's page),
and a topic that is unknown, or beyond the user's scope, is simply not found. The stream
starts with the topic's current state (so a page that reconnects is never stale), replays
what was missed after a ``Last-Event-ID``, and re-reads the state whenever a heartbeat
passes (delivery reports and replies change counts without an event of their own).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.accounts.principal import Principal
from callcenter.campaigns.progress import read_progress, visible_campaign
from callcenter.campaigns.progress import topic as campaign_topic
from callcenter.errors import CallCenterError, NotFound
from callcenter.live import CAMPAIGN_PROGRESS, Heartbeat, subscribe, tip, valid_id
from callcenter.live.events import validated
from callcenter.messages import N_
from callcenter.settings import Settings
from callcenter.web.deps import EngineDep, RedisDep, SettingsDep
from callcenter.web.guard import Forbidden
from callcenter.web.pages.common import CurrentUser
from callcenter.web.policy import POLICIES

router = APIRouter(include_in_schema=False)

#: a comment line this often keeps proxies from closing a quiet connection
HEARTBEAT_S: float = 15.0
#: the browser waits this long before reconnecting (the SSE ``retry:`` field)
RETRY_MS: Final = 3000
QUICK_RETRY_MS: Final = 200
#: a stream ends after this long; the browser reconnects at once and is authenticated again
#: (a logged-out or disabled user stops receiving)
MAX_STREAM_S: float = 600.0
CAMPAIGN_READERS: Final = POLICIES[("GET", "/campaigns/{campaign_id}")]
_CAMPAIGN_TOPIC = re.compile(r"^campaign:([0-9]{1,18})$")

State = tuple[str, dict[str, Any]]  # (kind, data)


class BadEventId(CallCenterError):
    status_code = 400
    error_id = "bad_event_id"


@dataclass(frozen=True, slots=True)
class Source:
    topic: str
    #: the topic's current state, as an event's kind and data
    state: Callable[[], Awaitable[State | None]]


async def _source(
    engine: AsyncEngine, redis: Redis, settings: Settings, user: Principal, topic: str
) -> Source:
    """The topic if this user may follow it (403 for a role that may not read its subject,
    404 for a topic that does not exist or is beyond the user's scope)."""
    found = _CAMPAIGN_TOPIC.match(topic)
    if found is None:
        raise NotFound(N_("There is no such live topic."))
    if not CAMPAIGN_READERS.allows(user.role) or not user.has_scope("campaigns:read"):
        raise Forbidden("your role may not follow campaigns")
    campaign_id = int(found.group(1))
    if await visible_campaign(engine, campaign_id, user.municipalities) is None:
        raise NotFound(N_("There is no such live topic."))

    async def state() -> State | None:
        progress = await read_progress(engine, redis, settings, campaign_id)
        return (CAMPAIGN_PROGRESS, validated(CAMPAIGN_PROGRESS, progress.event())) if progress else None

    return Source(campaign_topic(campaign_id), state)


def frame(kind: str, data: dict[str, Any], event_id: str | None = None) -> str:
    """One SSE message: ``id:`` (when the event has one), ``event:`` and a one-line JSON ``data:``."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _same(a: State | None, b: State | None) -> bool:
    def bare(s: State | None) -> Any:
        return None if s is None else (s[0], {k: v for k, v in s[1].items() if k != "at"})

    return bool(bare(a) == bare(b))


async def stream(redis: Redis, source: Source, last_id: str | None) -> AsyncIterator[str]:
    """The event stream of one connection (ends after ``MAX_STREAM_S``; the browser reconnects)."""
    started = time.monotonic()
    yield f"retry: {RETRY_MS}\n\n"
    shown: State | None = None
    after = last_id
    if after is None:
        after = await tip(redis, source.topic)
        shown = await source.state()
        if shown is not None:
            yield frame(*shown, event_id=after if after != "0-0" else None)
    async for item in subscribe(redis, source.topic, after=after, heartbeat=HEARTBEAT_S):
        if isinstance(item, Heartbeat):
            yield ": heartbeat\n\n"
            if time.monotonic() - started > MAX_STREAM_S:
                yield f"retry: {QUICK_RETRY_MS}\n\n"  # a planned end: come back at once
                return
            fresh = await source.state()
            if fresh is not None and not _same(fresh, shown):
                shown = fresh
                yield frame(*fresh)
            continue
        shown = (item.kind, item.data)
        yield frame(item.kind, item.data, event_id=item.id)


@router.get("/live")
async def live(
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
    topic: str = "",
    last_event_id: str = "",
) -> StreamingResponse:
    """Follow ``topic``; a reconnecting browser sends ``Last-Event-ID`` (or, through a new
    EventSource, ``?last_event_id=``) and gets only what came after it."""
    source = await _source(engine, redis, settings, user, topic[:100])
    last = (request.headers.get("last-event-id") or last_event_id).strip()[:64]
    if last and not valid_id(last):
        raise BadEventId(N_("Last-Event-ID is not an event id of this stream."))
    return StreamingResponse(
        stream(redis, source, last or None),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )
