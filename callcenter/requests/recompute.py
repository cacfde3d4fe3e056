"""Recompute the open requests' SLA clocks: after a calendar change (a holiday corrected),
and periodically (the worker's hourly job, ``callcenter requests recompute``), so "due soon"
and "breached" follow the clock.

**Whole or one day.** Without ``day`` every open request is recomputed (the hourly job, the
command line, a change of the targets). With ``day`` (a holiday correction of that day) only
the requests whose clocks run across it are read (``spans``): the working time up to an
instant moves by the same amount for every instant after the day and not at all before it,
so a clock that starts after the day only shifts and keeps its due date, and a clock whose
every instant (start, stop or now, due date) falls before the day never meets it. The due
dates it reads are those stored, computed with the calendar before the correction: correct
each day and recompute it before correcting another, or recompute whole. Time passing is not
a correction: the other requests' "due soon" and "breached" follow at the next whole pass.

**One pass**: the open requests are read in pages by id with their category's targets, the
clocks are computed in memory (a few bisections each, see calendar.WorkingCalendar), and only
the rows whose due dates or state changed are written: set-based on PostgreSQL (one
``UPDATE ... FROM unnest(...)`` per page, bounded to the page's ids so that it walks the
primary key, not the whole table), one executemany on SQLite. On PostgreSQL two pages are
written at once, each on a connection of its own, while the next is read and computed on a
third: the writes are what cost (a new version of the row and of its twelve index entries),
and the rest hides behind them. A row is written only if its
``version`` is still the one read, so an officer's change made meanwhile (which computed the
clocks itself) is never overwritten by clocks computed before it. The requests that became
breached in this pass are returned, so a job can escalate them to the ministry's supervisors.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

from sqlalchemy import bindparam, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcenter import models
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.lifecycle import OPEN
from callcenter.requests.sla import SlaState, Targets, request_sla

REQUEST = models.table(models.ServiceRequest)
CATEGORY = models.table(models.ServiceCategory)
PAGE = 10_000
#: Pages written at once on PostgreSQL (each on its own connection; the reader has one more).
WRITERS = 2


@dataclass(slots=True)
class Recomputed:
    open: int = 0  # the open requests read (with ``day``: those spanning it)
    changed: int = 0
    seconds: float = 0.0
    newly_breached: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DayWindow:
    """A corrected day as epoch seconds in the calendar's zone: from its first instant
    (``start``) to the next day's (``end``)."""

    start: float
    end: float

    @classmethod
    def of(cls, day: date, calendar: WorkingCalendar) -> DayWindow:
        return cls(
            datetime.combine(day, clock_time(0), calendar.tz).timestamp(),
            datetime.combine(day + timedelta(days=1), clock_time(0), calendar.tz).timestamp(),
        )


def spans(
    window: DayWindow,
    *,
    now: float,
    created: float,
    first_due: float | None,
    resolution_due: float | None,
    first_response_at: float | None,
    resolved_at: float | None,
) -> bool:
    """Whether a correction of ``window``'s day can move this request's clocks: it was made
    before the day ended, and its clocks reach past the day's start — a due date after it, a
    clock stopped after it, or a running clock (the resolution clock runs until resolved) now
    after it. Due dates never computed count as reaching it. What the SQL of ``_read`` asks."""
    if created >= window.end:
        return False
    if first_due is None or resolution_due is None:
        return True
    ends = [first_due, resolution_due, first_response_at, resolved_at, now if resolved_at is None else None]
    return any(end is not None and end > window.start for end in ends)


async def recompute_sla(
    engine: AsyncEngine,
    calendar: WorkingCalendar,
    *,
    now: datetime | None = None,
    due_soon_share: float = 0.25,
    page: int = PAGE,
    day: date | None = None,
) -> Recomputed:
    """Recompute the due dates and SLA state of every open request, or with ``day`` (just
    corrected in ``calendar``) of those whose clocks span that day.

    Usage::

        await recompute_sla(engine, await load_calendar(engine, settings), day=date(2026, 3, 30))
    """
    started = time.perf_counter()
    at = (now or models.utcnow()).timestamp()
    at_worked = calendar.worked_ts(at)
    window = None if day is None else DayWindow.of(day, calendar)
    targets = await _targets(engine)
    out = Recomputed()

    def compute(rows: list[Row]) -> list[Change]:
        changes: list[Change] = []
        for row in rows:
            rid, category, created, paused_s, paused_since, responded, resolved = row[:7]
            first, last, state, version = row[7:]
            sla = request_sla(
                created=created, targets=targets[category], cal=calendar, now=at, paused_s=paused_s,
                paused_since=paused_since, first_response_at=responded, resolved_at=resolved,
                due_soon_share=due_soon_share, now_worked=at_worked,
            )  # fmt: skip
            new_state = str(sla.state)
            if (
                new_state != state
                or _moved(first, sla.first_response_due)
                or _moved(last, sla.resolution_due)
            ):
                changes.append((rid, version, sla.first_response_due, sla.resolution_due, new_state))
                if sla.state is SlaState.BREACHED and state != SlaState.BREACHED:
                    out.newly_breached.append(rid)
        out.open += len(rows)
        out.changed += len(changes)
        return changes

    if engine.dialect.name == "postgresql":
        await _pipelined(engine, compute, page=page, window=window, now=at)
    else:
        after = 0
        while True:
            async with engine.begin() as conn:
                rows = await _read(conn, after, page, window, at)
                if not rows:
                    break
                after = rows[-1][0]
                changes = compute(rows)
                if changes:
                    await _write(conn, changes)
    out.seconds = time.perf_counter() - started
    return out


# id, category, created, paused_s, paused_since, first_response_at, resolved_at, first due,
# resolution due, state, version
Row = tuple[
    int, int, float, float, float | None, float | None, float | None, float | None, float | None, str, int
]
Change = tuple[int, int, float, float, str]  # id, version read, first due, resolution due, state


async def _pipelined(
    engine: AsyncEngine,
    compute: Callable[[list[Row]], list[Change]],
    *,
    page: int,
    window: DayWindow | None,
    now: float,
) -> None:
    """Read and compute the next page while up to ``WRITERS`` pages are written, each on a
    connection of its own (PostgreSQL)."""
    writing: set[asyncio.Task[None]] = set()
    try:
        async with engine.connect() as reader:
            await reader.execution_options(isolation_level="AUTOCOMMIT")
            after = 0
            while rows := await _read(reader, after, page, window, now):
                after = rows[-1][0]
                changes = compute(rows)
                while len(writing) >= WRITERS:
                    done, writing = await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # a failed write fails the pass
                if changes:
                    writing.add(asyncio.create_task(_write_page(engine, changes)))
        while writing:
            done, writing = await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
    finally:
        for task in writing:  # something failed: leave no write running behind
            task.cancel()
        for task in writing:  # the first failure is the one raised
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _write_page(engine: AsyncEngine, changes: list[Change]) -> None:
    async with engine.begin() as conn:
        await _write(conn, changes)


#: PostgreSQL gives the instants as epoch seconds (float8): no datetime objects for 200,000 rows.
_PG_COLUMNS = """SELECT id, category_id, extract(epoch FROM created_at)::float8, paused_seconds,
       extract(epoch FROM paused_since)::float8, extract(epoch FROM first_response_at)::float8,
       extract(epoch FROM resolved_at)::float8, extract(epoch FROM first_response_due_at)::float8,
       extract(epoch FROM resolution_due_at)::float8, sla_state, version
    FROM service_request WHERE status = ANY($1) AND id > $2"""
_PG_READ = _PG_COLUMNS + " ORDER BY id LIMIT $3"
#: ``spans`` in SQL: $4 the day's end, $5 its start (epoch seconds), $6 whether now is after its start.
_PG_READ_DAY = (
    _PG_COLUMNS
    + """ AND created_at < to_timestamp($4)
      AND (first_response_due_at IS NULL OR resolution_due_at IS NULL
           OR first_response_due_at > to_timestamp($5) OR resolution_due_at > to_timestamp($5)
           OR first_response_at > to_timestamp($5) OR resolved_at > to_timestamp($5)
           OR ($6 AND resolved_at IS NULL))
    ORDER BY id LIMIT $3"""
)

#: $6/$7: the page's first and last id, so that the join walks the primary key's range.
_PG_UPDATE = """UPDATE service_request AS r
    SET first_response_due_at = to_timestamp(v.first), resolution_due_at = to_timestamp(v.resolution),
        sla_state = v.state
    FROM unnest($1::bigint[], $2::int[], $3::float8[], $4::float8[], $5::varchar[])
         AS v(id, version, first, resolution, state)
    WHERE r.id = v.id AND r.version = v.version AND r.id BETWEEN $6 AND $7"""


async def _driver(conn: AsyncConnection) -> Any:
    """asyncpg's own connection, inside the transaction SQLAlchemy began on it: a third faster
    than SQLAlchemy's result rows for a page of 20,000."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    return driver


async def _read(
    conn: AsyncConnection, after: int, size: int, window: DayWindow | None, now: float
) -> list[Row]:
    statuses = [str(s) for s in OPEN]
    if conn.dialect.name == "postgresql":
        driver = await _driver(conn)
        if window is None:
            records = await driver.fetch(_PG_READ, statuses, after, size)
        else:
            records = await driver.fetch(
                _PG_READ_DAY, statuses, after, size, window.end, window.start, now > window.start
            )
        return [tuple(record) for record in records]
    r = REQUEST.c
    query = (
        select(
            r.id, r.category_id, r.created_at, r.paused_seconds, r.paused_since, r.first_response_at,
            r.resolved_at, r.first_response_due_at, r.resolution_due_at, r.sla_state, r.version,
        )
        .where(r.status.in_(statuses), r.id > after)
        .order_by(r.id)
        .limit(size)
    )  # fmt: skip
    if window is not None:
        start, end = _dt(window.start), _dt(window.end)
        query = query.where(
            r.created_at < end,
            or_(
                r.first_response_due_at.is_(None), r.resolution_due_at.is_(None),
                r.first_response_due_at > start, r.resolution_due_at > start,
                r.first_response_at > start, r.resolved_at > start,
                r.resolved_at.is_(None) if now > window.start else false(),
            ),
        )  # fmt: skip
    return [
        (row[0], row[1], _ts(row[2]), row[3], *(_ts_or_none(v) for v in row[4:9]), row[9], row[10])
        for row in await conn.execute(query)
    ]


async def _targets(engine: AsyncEngine) -> dict[int, Targets]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(CATEGORY.c.id, CATEGORY.c.first_response_hours, CATEGORY.c.resolution_hours)
        )
        return {int(cid): Targets(first, resolution) for cid, first, resolution in rows}


async def _write(conn: AsyncConnection, changes: Sequence[Change]) -> None:
    """Set-based on PostgreSQL. The version is checked, not bumped: the clocks are derived,
    not an officer's change, so an officer's open form stays valid."""
    if conn.dialect.name == "postgresql":
        ids, versions, firsts, resolutions, states = (list(column) for column in zip(*changes, strict=True))
        await (await _driver(conn)).execute(
            _PG_UPDATE, ids, versions, firsts, resolutions, states, min(ids), max(ids)
        )
        return
    await conn.execute(
        update(REQUEST)
        .where(REQUEST.c.id == bindparam("rid"), REQUEST.c.version == bindparam("read_version"))
        .values(
            first_response_due_at=bindparam("first"),
            resolution_due_at=bindparam("resolution"),
            sla_state=bindparam("state"),
        ),
        [
            {
                "rid": rid,
                "read_version": version,
                "first": _dt(first),
                "resolution": _dt(last),
                "state": state,
            }
            for rid, version, first, last, state in changes
        ],
    )


def _moved(stored: float | None, due: float) -> bool:
    """The databases keep microseconds: a due date within a millisecond has not moved."""
    return stored is None or abs(stored - due) > 1e-3


def _ts(moment: datetime) -> float:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def _ts_or_none(moment: datetime | None) -> float | None:
    return None if moment is None else _ts(moment)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
