"""The edges of an erasure (``citizens.erasure``): call recordings on disk, and what Redis
holds under or about a number.

* Recordings are named after the waiting entry, never after the number; the ``call.recording``
  routing event links a file to its Call row (``data.call``) and entry, so a number's
  recordings are those of its calls and of its callbacks' entries.
* Redis: the keys named after a number (the SMS intake's conversation, the "was it fixed?"
  window), the loopback gateway's outbox entries to it (a capped stream, scanned once per
  batch), and its live callbacks waiting in the routing store (they leave the line).
  A waiting *call* of the number is left alone: the caller is on the line right now.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcenter import models
from callcenter.desk.recordings import NAME, RECORDING_EVENT, resolve
from callcenter.errors import CallCenterError
from callcenter.settings import Settings
from callcenter.sms.gateways.loopback import DEFAULT_STREAM

if TYPE_CHECKING:
    from callcenter.citizens.erasure import Person

log = logging.getLogger(__name__)

CALL = models.table(models.Call)
CB = models.table(models.Callback)
EV = models.table(models.RoutingEvent)
LIVE_CALLBACK: Final = ("pending", "reserved", "dialling")
STREAM_PAGE: Final = 1000


def holds(people: Sequence[Person]) -> tuple[list[str], list[int]]:
    """The people's numbers, and the ids of those registered as citizens."""
    return [p.phone for p in people], [p.citizen_id for p in people if p.citizen_id is not None]


async def recordings_of(conn: AsyncConnection, people: Sequence[Person]) -> list[str]:
    """The recording files (bare names) of the people's calls and callbacks."""
    phones, ids = holds(people)
    calls = list(
        (
            await conn.execute(
                select(CALL.c.id).where(or_(CALL.c.caller.in_(phones), CALL.c.citizen_id.in_(ids)))
            )
        ).scalars()
    )
    entries = list(
        (
            await conn.execute(
                select(CB.c.entry).where(or_(CB.c.phone.in_(phones), CB.c.citizen_id.in_(ids)))
            )
        ).scalars()
    )
    if not calls and not entries:
        return []
    rows = await conn.execute(
        select(EV.c.data).where(
            EV.c.kind == RECORDING_EVENT,
            or_(EV.c.entry.in_(entries), EV.c.data["call"].as_integer().in_(calls)),
        )
    )
    names = {str((data or {}).get("file") or "") for data in rows.scalars()}
    return sorted(name for name in names if NAME.fullmatch(name))


def delete_recordings(settings: Settings, names: Sequence[str]) -> int:
    """Delete the files that are there; how many went."""
    deleted = 0
    for name in names:
        path = resolve(settings, name)
        if path is None:
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        deleted += 1
    return deleted


async def live_callbacks(conn: AsyncConnection, people: Sequence[Person]) -> list[str]:
    """The entries of the people's callbacks still waiting (or being dialled)."""
    phones, ids = holds(people)
    query = select(CB.c.entry).where(
        or_(CB.c.phone.in_(phones), CB.c.citizen_id.in_(ids)), CB.c.status.in_(LIVE_CALLBACK)
    )
    return list((await conn.execute(query)).scalars())


async def clean_redis(
    engine: AsyncEngine, redis: Redis, people: Sequence[Person], callbacks: Sequence[str]
) -> tuple[int, int]:
    """Delete what Redis holds about the people; (keys deleted, outbox entries deleted).
    Redis only carries work, so a Redis that is away is logged, not fatal: the keys expire."""
    from callcenter.requests.notify import FIXED_KEY
    from callcenter.requests.sms_intake import INTAKE_KEY

    phones = {p.phone for p in people}
    keys = 0
    try:
        if phones:
            keys = int(
                await redis.delete(
                    *(prefix + phone for phone in phones for prefix in (FIXED_KEY, INTAKE_KEY))
                )
            )
        outbox = await _drop_from_outbox(redis, phones)
    except (RedisError, OSError) as exc:
        log.warning("redis unavailable during an erasure (%s): its keys expire on their own", exc)
        return keys, 0
    if callbacks:
        from callcenter.desk.acd import Acd

        acd = Acd(engine, redis)
        for entry in callbacks:
            with contextlib.suppress(RedisError, OSError, CallCenterError):
                await acd.leave(entry, reason="erased")
    return keys, outbox


async def _drop_from_outbox(redis: Redis, phones: set[str], stream: str = DEFAULT_STREAM) -> int:
    """XDEL the loopback outbox's entries to ``phones`` (one pass over the capped stream)."""
    if not phones or not await redis.exists(stream):
        return 0
    wanted = {phone.encode() for phone in phones}
    deleted, start = 0, "-"
    while True:
        page = await redis.xrange(stream, min=start, max="+", count=STREAM_PAGE)
        if not page:
            return deleted
        doomed = [entry_id for entry_id, fields in page if _to(fields) in wanted]
        if doomed:
            deleted += int(await redis.xdel(stream, *doomed))
        last = page[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        if len(page) < STREAM_PAGE:
            return deleted


def _to(fields: dict[bytes | str, bytes | str]) -> bytes:
    value = fields.get(b"to", fields.get("to", b""))
    return value.encode() if isinstance(value, str) else value
