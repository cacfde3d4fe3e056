"""Recomputing the SLA clocks after a holiday correction, on the real databases: with the
corrected day only the open requests whose clocks span it are read and the ones that move are
written; a whole recompute afterwards finds nothing left to change. A request an officer
changed after the recompute read it keeps the clocks the officer's change computed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.requests import recompute
from callcenter.requests.calendar import HolidayCorrection, WorkingCalendar
from callcenter.requests.lifecycle import OPEN
from callcenter.requests.recompute import Recomputed, recompute_sla
from callcenter.requests.store import load
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities

TRIPOLI = ZoneInfo("Africa/Tripoli")
NOW = datetime(2026, 4, 12, 10, tzinfo=TRIPOLI)  # a Sunday
WEEK = WorkingCalendar()  # the Libyan week without holidays
NEXT_TUESDAY = date(2026, 4, 14)
LAST_WEDNESDAY = date(2026, 4, 8)
R = models.table(models.ServiceRequest)
H = timedelta(hours=1)
STATUSES = ["sent", "acknowledged", "in_progress", "action_scheduled", "reopened", "new", "resolved"]


def paused(n: int, made: datetime) -> datetime | None:
    """Some wait on the citizen since just after they were made; some old ones only since
    long after they were overdue (their due dates then come before the pause, yet move with
    every working day from the pause to now)."""
    if n % 7 == 3 and n > 0:
        return made + 2 * H
    if n % 7 == 5 and n >= 100:
        return made + 240 * H
    return None


def corrected(*days: date) -> WorkingCalendar:
    return WorkingCalendar(corrections=[HolidayCorrection(day, "add") for day in days])


@pytest.fixture
async def requests(engine: AsyncEngine) -> dict[str, int]:
    """240 requests made every five hours back from NOW (50 days), over every category and
    state: some answered, some waiting on the citizen (``paused``), some with pauses behind
    them, a few resolved (not open: never recomputed); their clocks computed as of NOW without
    holidays.
    Returns a few ids by what they are."""
    municipalities = await add_municipalities(engine)
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    C = models.table(models.ServiceCategory)
    async with engine.begin() as conn:
        categories = [(row.id, row.default_body_id) for row in await conn.execute(select(C).order_by(C.c.id))]
        rows: list[dict[str, Any]] = []
        for n in range(240):
            made = (NOW - n * 5 * H).astimezone(UTC)
            category, body = categories[n % len(categories)]
            status = STATUSES[n % len(STATUSES)]
            answered = status in ("acknowledged", "in_progress", "action_scheduled", "resolved")
            rows.append({
                "category_id": category, "body_id": body, "municipality_id": municipalities["benghazi"],
                "phone": f"+2189100{n:05d}", "channel": "desk", "language": "ar", "description": "",
                "details": {}, "status": status, "version": 1, "referrals": 0, "flagged": False,
                "sla_state": "ok", "paused_seconds": 3600.0 if n % 5 == 0 else 0.0,
                "paused_since": paused(n, made),
                "first_response_at": made + H if answered and n > 0 else None,
                "resolved_at": made + 30 * H if status == "resolved" and n > 6 else None,
                "created_at": made, "updated_at": made,
            })  # fmt: skip
        await conn.execute(insert(R), rows)
        ids = [int(i) for i in (await conn.execute(select(R.c.id).order_by(R.c.id))).scalars()]
    baseline = await recompute_sla(engine, WEEK, now=NOW)
    assert baseline.open == sum(1 for n in range(240) if STATUSES[n % len(STATUSES)] in OPEN)
    return {"newest": ids[0], "made_after_wednesday": ids[4], "oldest": ids[-2]}


async def clocks(engine: AsyncEngine) -> dict[int, tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(R.c.id, R.c.first_response_due_at, R.c.resolution_due_at, R.c.sla_state)
        )
        return {row.id: tuple(row[1:]) for row in rows}


def aware(moment: datetime) -> datetime:
    """SQLite gives UTC back without its zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def whole_afterwards(engine: AsyncEngine, calendar: WorkingCalendar) -> Recomputed:
    return await recompute_sla(engine, calendar, now=NOW)


async def test_a_day_ahead_recomputes_only_the_clocks_running_across_it(
    engine: AsyncEngine, requests: dict[str, int]
) -> None:
    before = await clocks(engine)
    calendar = corrected(NEXT_TUESDAY)
    done = await recompute_sla(engine, calendar, now=NOW, day=NEXT_TUESDAY)
    after = await clocks(engine)
    moved = {rid for rid in before if before[rid] != after[rid]}
    assert 0 < done.changed == len(moved) <= done.open < 100  # of 206 open: only those due after it read
    assert requests["newest"] in moved  # made this morning, due after Tuesday: a day later now
    assert aware(after[requests["newest"]][1]) - aware(before[requests["newest"]][1]) == timedelta(days=1)
    assert requests["oldest"] not in moved  # due weeks ago: Tuesday changes nothing for it
    assert (await whole_afterwards(engine, calendar)).changed == 0  # the same as recomputing all


async def test_a_day_past_leaves_the_requests_made_after_it(
    engine: AsyncEngine, requests: dict[str, int]
) -> None:
    before = await clocks(engine)
    calendar = corrected(LAST_WEDNESDAY)
    done = await recompute_sla(engine, calendar, now=NOW, day=LAST_WEDNESDAY)
    after = await clocks(engine)
    moved = {rid for rid in before if before[rid] != after[rid]}
    assert done.changed == len(moved) > 0
    assert requests["made_after_wednesday"] not in moved and requests["newest"] not in moved
    assert (await whole_afterwards(engine, calendar)).changed == 0


async def test_a_correction_of_a_weekend_day_moves_nothing(
    engine: AsyncEngine, requests: dict[str, int]
) -> None:
    saturday = date(2026, 4, 18)
    done = await recompute_sla(engine, corrected(saturday), now=NOW, day=saturday)
    assert done.changed == 0


async def test_an_officers_change_after_the_read_is_not_overwritten(
    engine: AsyncEngine, requests: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the recompute's read of a page and its write, an officer changes the newest
    request (its version goes up, its clocks are computed by that change): the recompute's
    write, made from the old read, skips it."""
    officers_due = datetime(2026, 5, 1, 12, tzinfo=UTC)
    read = recompute._read

    async def read_then_officer(*args: Any) -> list[recompute.Row]:
        rows = await read(*args)
        if any(row[0] == requests["newest"] for row in rows):
            async with engine.begin() as conn:
                await conn.execute(
                    update(R).where(R.c.id == requests["newest"])
                    .values(version=R.c.version + 1, resolution_due_at=officers_due)
                )  # fmt: skip
        return rows

    monkeypatch.setattr(recompute, "_read", read_then_officer)
    done = await recompute_sla(engine, corrected(NEXT_TUESDAY), now=NOW, day=NEXT_TUESDAY)
    assert done.changed > 0
    async with engine.connect() as conn:
        due, version = (
            await conn.execute(select(R.c.resolution_due_at, R.c.version).where(R.c.id == requests["newest"]))
        ).one()
    assert (aware(due), version) == (officers_due, 2)
