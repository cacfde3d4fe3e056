"""The event bus: Redis Streams, so events fan out to every process and can be resumed.

Each topic is one stream, capped at about ``MAXLEN`` entries (older ones are trimmed: a
browser gone longer than that gets the latest state from its page instead) and expiring a
while after its last event. Entry ids are Redis' own (``1718000000000-0``) and double as
the Server-Sent Events ``id:``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from redis.asyncio import Redis

from callcenter.live.events import validated

log = logging.getLogger(__name__)

MAXLEN: Final = 1000
#: a topic nobody publishes to any more is dropped after a week
TTL_S: Final = 7 * 24 * 3600
_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class Event(NamedTuple):
    id: str
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Nothing happened for a heartbeat's time (the connection is alive)."""


HEARTBEAT: Final = Heartbeat()


def stream_key(topic: str) -> str:
    return f"live:{topic}"


def valid_id(value: str) -> bool:
    """A stream entry id (what a browser sends back as ``Last-Event-ID``), or ``0``."""
    return value == "0" or bool(_ID.match(value))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def publish(redis: Redis, topic: str, kind: str, data: Mapping[str, Any] | Any) -> str:
    """Append an event to the topic's stream; returns its id."""
    payload = json.dumps(validated(kind, data), ensure_ascii=False, separators=(",", ":"))
    key = stream_key(topic)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(key, {"kind": kind, "data": payload}, maxlen=MAXLEN, approximate=True)
        pipe.expire(key, TTL_S)
        entry_id, _ = await pipe.execute()
    return _text(entry_id)


async def tip(redis: Redis, topic: str) -> str:
    """The id of the topic's latest event, or ``0-0`` when it has none."""
    latest = await redis.xrevrange(stream_key(topic), count=1)
    return _text(latest[0][0]) if latest else "0-0"


async def subscribe(
    redis: Redis, topic: str, *, after: str = "$", heartbeat: float = 15.0, batch: int = 100
) -> AsyncIterator[Event | Heartbeat]:
    """Events of ``topic`` published after the id ``after`` (``$``: from now on; ``0``: all
    still kept), in order, and a :data:`HEARTBEAT` whenever ``heartbeat`` seconds pass
    without one. Runs until the caller stops iterating."""
    key = stream_key(topic)
    # "$" resolved once: reading from "$" again after each batch would miss what was
    # published in between
    cursor = await tip(redis, topic) if after == "$" else after
    block_ms = max(1, int(heartbeat * 1000))
    while True:
        found = await redis.xread({key: cursor}, count=batch, block=block_ms)
        if not found:
            yield HEARTBEAT
            continue
        for _stream, entries in found:
            for raw_id, fields in entries:
                cursor = _text(raw_id)
                event = _decode(cursor, fields)
                if event is not None:
                    yield event


def _decode(entry_id: str, fields: Mapping[bytes | str, bytes | str]) -> Event | None:
    values = {_text(k): _text(v) for k, v in fields.items()}
    try:
        data = json.loads(values["data"])
    except (KeyError, ValueError):
        log.warning("live event %s is malformed; skipped", entry_id)
        return None
    return Event(entry_id, values.get("kind", ""), data if isinstance(data, dict) else {})
