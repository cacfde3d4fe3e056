"""``GET /live?topic=…``: the live updates of one topic as Server-Sent Events.

The route's policy lets any staff member in; each topic then asks for what reading its
subject asks for (a campaign topic: the role and scope that may open the campaign's page;
``desk:<agent>``: that agent only; ``wallboard``: those who may open the wallboard), and a
topic that is unknown, or beyond the user's scope, is simply not found. The stream starts
with the topic's current state (so a page that reconnects is never stale), replays what was
missed after a ``Last-Event-ID``, and re-reads the state whenever a heartbeat passes
(delivery reports and replies change counts without an event of their own).

A desk's stream is the agent's *contact*: while it is open the agent's desk is touched in
the routing store every few seconds; when the browser goes, the touches stop and the next
sweep (the telephony process's, or a wallboard stream's heartbeat) marks the agent
``lost_contact``, so no call is routed to a desk nobody is at.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.accounts.principal import Principal
from callcenter.campaigns.progress import read_progress, visible_campaign
from callcenter.campaigns.progress import topic as campaign_topic
from callcenter.desk.acd import WALLBOARD_TOPIC, Acd, agent_status, desk_topic
from callcenter.errors import CallCenterError, NotFound
from callcenter.live import (
    AGENT_STATUS,
    CAMPAIGN_PROGRESS,
    WALLBOARD_CHANGED,
    Heartbeat,
    subscribe,
    tip,
    valid_id,
)
from callcenter.live.events import validated
from callcenter.messages import N_
from callcenter.settings import Settings
from callcenter.web.deps import EngineDep, RedisDep, SettingsDep
from callcenter.web.guard import Forbidden
from callcenter.web.pages.common import CurrentUser
from callcenter.web.policy import POLICIES

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

#: a comment line this often keeps proxies from closing a quiet connection
HEARTBEAT_S: float = 15.0
#: the browser waits this long before reconnecting (the SSE ``retry:`` field)
RETRY_MS: Final = 3000
QUICK_RETRY_MS: Final = 200
#: a stream ends after this long; the browser reconnects at once and is authenticated again
#: (a logged-out or disabled user stops receiving)
MAX_STREAM_S: float = 600.0
CAMPAIGN_READERS: Final = POLICIES[("GET", "/campaigns/{campaign_id}")]
DESK_READERS: Final = POLICIES[("GET", "/desk")]
WALLBOARD_READERS: Final = POLICIES[("GET", "/wallboard")]
#: a desk's stream touches the agent's contact this often, and the touch lasts CONTACT_TTL_S:
#: a closed browser is lost contact after at most CONTACT_TTL_S plus a sweep's period
DESK_HEARTBEAT_S: float = 5.0
CONTACT_TTL_S: float = 15.0
#: a wallboard's stream sweeps for lost desks this often
WALLBOARD_HEARTBEAT_S: float = 5.0
_CAMPAIGN_TOPIC = re.compile(r"^campaign:([0-9]{1,18})$")
_DESK_TOPIC = re.compile(r"^desk:([0-9]{1,18})$")

State = tuple[str, dict[str, Any]]  # (kind, data)


class BadEventId(CallCenterError):
    status_code = 400
    error_id = "bad_event_id"


@dataclass(frozen=True, slots=True)
class Source:
    topic: str
    #: the topic's current state, as an event's kind and data
    state: Callable[[], Awaitable[State | None]]
    #: called when the stream opens and then every ``heartbeat_s`` while it is open
    beat: Callable[[], Awaitable[None]] | None = None
    heartbeat_s: float | None = None  # None: HEARTBEAT_S
    #: re-read the state on each heartbeat and send it when it changed (False: only on connect)
    rereads: bool = True


async def _source(
    engine: AsyncEngine, redis: Redis, settings: Settings, user: Principal, topic: str
) -> Source:
    """The topic if this user may follow it (403 for a role that may not read its subject,
    404 for a topic that does not exist or is beyond the user's scope)."""
    if topic == WALLBOARD_TOPIC:
        return _wallboard_source(engine, redis, user)
    desk = _DESK_TOPIC.match(topic)
    if desk is not None:
        return _desk_source(engine, redis, user, desk.group(1))
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


def _desk_source(engine: AsyncEngine, redis: Redis, user: Principal, agent_id: str) -> Source:
    """An agent's own desk: their state changes; the stream keeps their contact alive."""
    if not DESK_READERS.allows(user.role) or str(user.user_id) != agent_id:
        raise Forbidden("only the agent follows their own desk")
    acd = Acd(engine, redis)

    async def state() -> State | None:
        record = await acd.store.agent(agent_id)
        return (AGENT_STATUS, validated(AGENT_STATUS, agent_status(record))) if record else None

    async def beat() -> None:
        await acd.store.touch(agent_id, ttl_s=CONTACT_TTL_S)

    return Source(desk_topic(agent_id), state, beat, DESK_HEARTBEAT_S)


def _wallboard_source(engine: AsyncEngine, redis: Redis, user: Principal) -> Source:
    """The wallboard: an event whenever a figure may have changed; its heartbeat sweeps the
    desks that stopped answering (their agents become lost contact, an event of its own)."""
    if not WALLBOARD_READERS.allows(user.role):
        raise Forbidden("your role may not follow the wallboard")
    acd = Acd(engine, redis)

    async def state() -> State | None:
        # a (re)connecting page fetches the figures once: it may have missed events meanwhile
        return (WALLBOARD_CHANGED, validated(WALLBOARD_CHANGED, {"kinds": [], "at": 0.0}))

    async def beat() -> None:
        await acd.sweep_contact()

    return Source(WALLBOARD_TOPIC, state, beat, WALLBOARD_HEARTBEAT_S, rereads=False)


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
    beaten = await _beat(source)
    shown: State | None = None
    after = last_id
    if after is None:
        after = await tip(redis, source.topic)
        shown = await source.state()
        if shown is not None:
            yield frame(*shown, event_id=after if after != "0-0" else None)
    heartbeat = source.heartbeat_s or HEARTBEAT_S
    async for item in subscribe(redis, source.topic, after=after, heartbeat=heartbeat):
        if time.monotonic() - beaten >= heartbeat:
            beaten = await _beat(source)
        if isinstance(item, Heartbeat):
            yield ": heartbeat\n\n"
            if time.monotonic() - started > MAX_STREAM_S:
                yield f"retry: {QUICK_RETRY_MS}\n\n"  # a planned end: come back at once
                return
            fresh = await source.state() if source.rereads else None
            if fresh is not None and not _same(fresh, shown):
                shown = fresh
                yield frame(*fresh)
            continue
        shown = (item.kind, item.data)
        yield frame(item.kind, item.data, event_id=item.id)


async def _beat(source: Source) -> float:
    """The source's beat (a failing one is logged: the stream itself goes on); returns when."""
    if source.beat is not None:
        try:
            await source.beat()
        except (RedisError, SQLAlchemyError, OSError, CallCenterError):
            log.warning("live topic %s: its heartbeat failed", source.topic, exc_info=True)
    return time.monotonic()


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
