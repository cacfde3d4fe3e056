"""Recordings of calls with agents (``CALLCENTER_RECORD_CALLS``): where Asterisk writes them,
where the web app finds them again, which calls of a day have one, and their deletion after
the retention time.

The caller's FastAGI session starts ``MixMonitor <dir>/<entry>.wav,b`` on the caller's channel
just before it rings an agent (``b``: only while the caller is bridged — the conversation,
never the hold music) and logs a ``call.recording`` event whose ``file`` is the bare name.
Only the bare name is ever stored: the directory is a setting of each process (Asterisk may
see it at another path), and a name read back is checked against :data:`NAME` before the
disk is touched, then resolved and required to sit directly in the directory, so neither
``../`` nor a symlink reaches anything else.

Usage::

    path = resolve(settings, "0f3c….wav")          # None unless a recording file is there
    calls = await recorded_calls(engine, start, end)
    deleted = await delete_expired(engine, settings)  # the worker, hourly; audited
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.settings import Settings

log = logging.getLogger(__name__)

RECORDING_EVENT: Final = "call.recording"
#: a recording's file name: an entry id and ``.wav``, nothing else (no separator, no dots)
NAME: Final = re.compile(r"^[0-9A-Za-z_-]{1,64}\.wav$")
RETENTION_ACTOR: Final = Actor("retention")


def recording_name(entry: str) -> str:
    """The file a call's recording goes to (``ValueError`` for an id that cannot be a name)."""
    name = f"{entry}.wav"
    if not NAME.fullmatch(name):
        raise ValueError(f"not an entry id for a recording: {entry!r}")
    return name


def asterisk_file(settings: Settings, name: str) -> str:
    """The absolute path MixMonitor writes, as the Asterisk host sees it."""
    if not NAME.fullmatch(name):
        raise ValueError(f"not a recording name: {name!r}")
    return str(settings.asterisk_recordings_path / name)


def resolve(settings: Settings, name: str) -> Path | None:
    """The recording file ``name`` in the recordings directory, or None (not a recording name,
    outside the directory, or not there)."""
    if not NAME.fullmatch(name):
        return None
    base = settings.recordings_path.resolve()
    path = (base / name).resolve()
    if path.parent != base or not path.is_file():
        return None
    return path


@dataclass(frozen=True, slots=True)
class RecordedCall:
    entry: str
    at: datetime  # when the recording was started
    queue: str | None
    agent: str | None  # who answered (None: nobody did)
    file: str  # the bare name


async def recording_of(engine: AsyncEngine, entry: str) -> str | None:
    """The file name of ``entry``'s recording, if it was recorded."""
    ev = models.table(models.RoutingEvent)
    query = (
        select(ev.c.data)
        .where(ev.c.entry == entry, ev.c.kind == RECORDING_EVENT)
        .order_by(ev.c.id.desc())
        .limit(1)
    )
    async with engine.connect() as conn:
        data = (await conn.execute(query)).scalar()
    name = str(data.get("file") or "") if isinstance(data, dict) else ""
    return name if NAME.fullmatch(name) else None


async def recorded_calls(
    engine: AsyncEngine, start: float, end: float, *, limit: int = 500
) -> list[RecordedCall]:
    """Calls recorded in ``[start, end)``, newest first, with the agent who answered each."""
    ev = models.table(models.RoutingEvent)
    window = (ev.c.at >= datetime.fromtimestamp(start, UTC), ev.c.at < datetime.fromtimestamp(end, UTC))
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(ev.c.entry, ev.c.at, ev.c.queue, ev.c.data)
                .where(ev.c.kind == RECORDING_EVENT, *window)
                .order_by(ev.c.at.desc(), ev.c.id.desc())
                .limit(limit)
            )
        ).all()
        entries = sorted({str(r.entry) for r in rows if r.entry})
        answered: dict[str, str] = {}
        if entries:
            connected = (
                select(ev.c.entry, ev.c.agent)
                .where(ev.c.kind == "entry.connected", ev.c.entry.in_(entries))
                .order_by(ev.c.id)
            )
            for entry, agent in (await conn.execute(connected)).all():
                if agent:
                    answered.setdefault(str(entry), str(agent))
    out: list[RecordedCall] = []
    for r in rows:
        name = str((r.data or {}).get("file") or "")
        if not r.entry or not NAME.fullmatch(name):
            continue
        at = r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)
        out.append(RecordedCall(str(r.entry), at, r.queue, answered.get(str(r.entry)), name))
    return out


def expired(directory: Path, *, older_than_s: float, now: float | None = None) -> list[Path]:
    """Recording files of ``directory`` last written more than ``older_than_s`` ago."""
    if not directory.is_dir():
        return []
    cutoff = (now if now is not None else time.time()) - older_than_s
    found = []
    for path in directory.iterdir():
        try:
            if NAME.fullmatch(path.name) and path.is_file() and path.stat().st_mtime < cutoff:
                found.append(path)
        except OSError:  # gone meanwhile
            continue
    return sorted(found)


async def delete_expired(engine: AsyncEngine, settings: Settings, *, now: float | None = None) -> list[str]:
    """Delete the recordings older than ``recording_retention_days``; one audit row names
    every file deleted (none when nothing was due). Returns the names."""
    older_than = settings.recording_retention_days * 86400
    deleted: list[str] = []
    for path in expired(settings.recordings_path, older_than_s=older_than, now=now):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("recording %s not deleted: %s", path.name, exc)
            continue
        deleted.append(path.name)
    if deleted:
        async with AsyncSession(engine) as session, session.begin():
            audit(
                session, actor=RETENTION_ACTOR, action="recording.delete", target="recordings",
                files=deleted, count=len(deleted), retention_days=settings.recording_retention_days,
            )  # fmt: skip
        log.info(
            "deleted %d call recording(s) past %.0f days", len(deleted), settings.recording_retention_days
        )
    return deleted
