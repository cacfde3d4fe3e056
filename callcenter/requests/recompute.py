"""Recompute every open request's SLA clocks: after a calendar change (a holiday corrected),
and periodically, so "due soon" and "breached" follow the clock.

One pass: the open requests are read in pages by id with their category's targets (one
query per page), the clocks are computed in memory (a few bisections each, see
calendar.WorkingCalendar), and only the rows whose due dates or state changed are written,
set-based on PostgreSQL (one ``UPDATE ... FROM unnest(...)`` per page) and in one
executemany on SQLite. The requests that became breached in this pass are returned, so a
job can escalate them to the ministry's supervisors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcenter import models
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.lifecycle import OPEN
from callcenter.requests.sla import SlaState, Targets, request_sla

REQUEST = models.table(models.ServiceRequest)
CATEGORY = models.table(models.ServiceCategory)
PAGE = 20_000


@dataclass(slots=True)
class Recomputed:
    open: int = 0
    changed: int = 0
    seconds: float = 0.0
    newly_breached: list[int] = field(default_factory=list)


async def recompute_sla(
    engine: AsyncEngine,
    calendar: WorkingCalendar,
    *,
    now: datetime | None = None,
    due_soon_share: float = 0.25,
    page: int = PAGE,
) -> Recomputed:
    """Recompute the due dates and SLA state of every open request."""
    started = time.perf_counter()
    at = (now or models.utcnow()).timestamp()
    at_worked = calendar.worked_ts(at)
    out = Recomputed()
    targets = await _targets(engine)
    after = 0
    while True:
        async with engine.begin() as conn:
            rows = await _read(conn, after, page)
            if not rows:
                break
            after = rows[-1][0]
            changes: list[tuple[int, float, float, str]] = []
            for (
                rid,
                category,
                created,
                paused_s,
                paused_since,
                responded,
                resolved,
                first,
                last,
                state,
            ) in rows:
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
                    changes.append((rid, sla.first_response_due, sla.resolution_due, new_state))
                    if sla.state is SlaState.BREACHED and state != SlaState.BREACHED:
                        out.newly_breached.append(rid)
            out.open += len(rows)
            out.changed += len(changes)
            if changes:
                await _write(conn, changes)
    out.seconds = time.perf_counter() - started
    return out


Row = tuple[int, int, float, float, float | None, float | None, float | None, float | None, float | None, str]

#: PostgreSQL gives the instants as epoch seconds (float8): no datetime objects for 200,000 rows.
_PG_READ = """SELECT id, category_id, extract(epoch FROM created_at)::float8, paused_seconds,
       extract(epoch FROM paused_since)::float8, extract(epoch FROM first_response_at)::float8,
       extract(epoch FROM resolved_at)::float8, extract(epoch FROM first_response_due_at)::float8,
       extract(epoch FROM resolution_due_at)::float8, sla_state
    FROM service_request WHERE status = ANY($1) AND id > $2 ORDER BY id LIMIT $3"""

_PG_UPDATE = text(
    """UPDATE service_request AS r
    SET first_response_due_at = to_timestamp(v.first), resolution_due_at = to_timestamp(v.resolution),
        sla_state = v.state
    FROM unnest(CAST(:ids AS bigint[]), CAST(:firsts AS float8[]), CAST(:resolutions AS float8[]),
                CAST(:states AS varchar[])) AS v(id, first, resolution, state)
    WHERE r.id = v.id"""
)


async def _read(conn: AsyncConnection, after: int, size: int) -> list[Row]:
    if conn.dialect.name == "postgresql":
        # asyncpg's own fetch, on the transaction's connection: a third faster than going
        # through SQLAlchemy's result rows for a page of 20,000
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        records = await driver.fetch(_PG_READ, [str(s) for s in OPEN], after, size)
        return [tuple(record) for record in records]
    r = REQUEST.c
    query = (
        select(
            r.id, r.category_id, r.created_at, r.paused_seconds, r.paused_since, r.first_response_at,
            r.resolved_at, r.first_response_due_at, r.resolution_due_at, r.sla_state,
        )
        .where(r.status.in_([str(s) for s in OPEN]), r.id > after)
        .order_by(r.id)
        .limit(size)
    )  # fmt: skip
    return [
        (row[0], row[1], _ts(row[2]), row[3], *(_ts_or_none(v) for v in row[4:9]), row[9])
        for row in await conn.execute(query)
    ]


async def _targets(engine: AsyncEngine) -> dict[int, Targets]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(CATEGORY.c.id, CATEGORY.c.first_response_hours, CATEGORY.c.resolution_hours)
        )
        return {int(cid): Targets(first, resolution) for cid, first, resolution in rows}


async def _write(conn: AsyncConnection, changes: list[tuple[int, float, float, str]]) -> None:
    """Set-based on PostgreSQL (the version is not bumped: the clocks are derived, not an
    officer's change, so an officer's open form stays valid)."""
    if conn.dialect.name == "postgresql":
        ids, firsts, resolutions, states = (list(column) for column in zip(*changes, strict=True))
        await conn.execute(
            _PG_UPDATE, {"ids": ids, "firsts": firsts, "resolutions": resolutions, "states": states}
        )
        return
    await conn.execute(
        update(REQUEST)
        .where(REQUEST.c.id == bindparam("rid"))
        .values(
            first_response_due_at=bindparam("first"),
            resolution_due_at=bindparam("resolution"),
            sla_state=bindparam("state"),
        ),
        [
            {"rid": rid, "first": _dt(first), "resolution": _dt(last), "state": state}
            for rid, first, last, state in changes
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
