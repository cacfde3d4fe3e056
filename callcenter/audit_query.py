"""Reading the audit log: filters, keyset pages (newest first) and a CSV export streamed in
chunks, so a log of millions of rows is read with bounded memory.

Only reads: the log is append-only (see ``callcenter.audit``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from callcenter import models
from callcenter.messages import N_

PER_PAGE = 50
CHUNK = 1000
MAX_ID = 2**63 - 1
AUDIT = models.table(models.AuditLog)
COLUMNS = (
    AUDIT.c.id,
    AUDIT.c.created_at,
    AUDIT.c.actor,
    AUDIT.c.actor_id,
    AUDIT.c.action,
    AUDIT.c.target,
    AUDIT.c.before,
    AUDIT.c.after,
    AUDIT.c.details,
    AUDIT.c.address,
)
CSV_HEADER = (
    "id",
    "time",
    "actor",
    "actor_id",
    "action",
    "target",
    "before",
    "after",
    "details",
    "address",
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
LIMITS = {"actor": 100, "action": 64, "target": 200}


class BadAuditFilter(ValueError):
    """Filters that cannot be used: field -> catalogue id (every mistake at once)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(sorted(errors)))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str = ""  # a piece of the actor's name (case-insensitive)
    action: str = ""  # the start of the action: "login" matches login.failed
    target: str = ""  # "user:3" exactly; "user" or "user:" every user
    start: datetime | None = None  # UTC, inclusive
    end: datetime | None = None  # UTC, exclusive

    def conditions(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.actor:
            out.append(AUDIT.c.actor.icontains(self.actor, autoescape=True))
        if self.action:
            out.append(AUDIT.c.action.startswith(self.action, autoescape=True))
        if self.target:
            kind, colon, rest = self.target.partition(":")
            if colon and rest:
                out.append(AUDIT.c.target == self.target)
            else:
                out.append(AUDIT.c.target.startswith(kind + ":", autoescape=True))
        if self.start is not None:
            out.append(AUDIT.c.created_at >= self.start)
        if self.end is not None:
            out.append(AUDIT.c.created_at < self.end)
        return out

    def as_dict(self) -> dict[str, Any]:
        """For the export's own audit row."""
        out: dict[str, Any] = {k: v for k in ("actor", "action", "target") if (v := getattr(self, k))}
        if self.start is not None:
            out["from"] = self.start.isoformat()
        if self.end is not None:
            out["to"] = self.end.isoformat()
        return out


def _day(value: str) -> date:
    text = value.strip().translate(_DIGITS)
    if not _DATE.fullmatch(text):
        raise ValueError(text)
    return date.fromisoformat(text)


def parse_filter(
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    timezone: str = "Africa/Tripoli",
) -> AuditFilter:
    """Filters from a query string; dates are days (YYYY-MM-DD) in ``timezone``, ``date_to``
    included. Raise BadAuditFilter naming every bad value."""
    errors: dict[str, str] = {}
    texts: dict[str, str] = {}
    for name, value in (("actor", actor), ("action", action), ("target", target)):
        text = (value or "").strip()
        if len(text) > LIMITS[name]:
            errors[name] = N_("This filter is too long.")
        texts[name] = text
    zone = ZoneInfo(timezone)
    bounds: dict[str, datetime | None] = {"from": None, "to": None}
    days: dict[str, date] = {}
    for name, value, shift in (("from", date_from, 0), ("to", date_to, 1)):
        if not value or not value.strip():
            continue
        try:
            day = _day(value)
            bounds[name] = datetime.combine(day + timedelta(days=shift), time(), zone).astimezone(UTC)
            days[name] = day
        except (ValueError, OverflowError):
            errors[name] = N_("Enter a date like 2026-03-31.")
    if "from" in days and "to" in days and days["from"] > days["to"]:
        errors["to"] = N_("The end date is before the start date.")
    if errors:
        raise BadAuditFilter(errors)
    return AuditFilter(texts["actor"], texts["action"], texts["target"], bounds["from"], bounds["to"])


def parse_before(value: str | None) -> int | None:
    """The keyset cursor ``?before=<id>``; raise BadAuditFilter when it is not an id."""
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 19 or not 0 < int(value) <= MAX_ID:
        raise BadAuditFilter({"before": N_("The page link is not valid.")})
    return int(value)


@dataclass(frozen=True, slots=True)
class AuditPage:
    rows: list[Row[Any]]
    next_before: int | None  # the cursor of the next (older) page; None: this is the last


async def audit_page(
    session: AsyncSession, flt: AuditFilter, *, before: int | None = None, per_page: int = PER_PAGE
) -> AuditPage:
    """One page, newest first, of the rows older than ``before`` (keyset: no OFFSET scan)."""
    rows = await _rows(session, flt, before=before, limit=per_page + 1)
    more = len(rows) > per_page
    rows = rows[:per_page]
    return AuditPage(rows, int(rows[-1].id) if more and rows else None)


async def _rows(
    conn: AsyncSession | AsyncConnection, flt: AuditFilter, *, before: int | None, limit: int
) -> list[Row[Any]]:
    query = select(*COLUMNS).where(*flt.conditions())
    if before is not None:
        query = query.where(AUDIT.c.id < before)
    result = await conn.execute(query.order_by(AUDIT.c.id.desc()).limit(limit))
    return cast(list[Row[Any]], list(result.all()))


async def iter_rows(
    engine: AsyncEngine, flt: AuditFilter, *, chunk: int = CHUNK
) -> AsyncIterator[list[Row[Any]]]:
    """Every matching row, newest first, ``chunk`` at a time. Each chunk is its own short query
    (keyset on id), so no transaction stays open while a slow client downloads, and rows
    written during the export (higher ids) are not mixed in."""
    before: int | None = None
    while True:
        async with engine.connect() as conn:
            rows = await _rows(conn, flt, before=before, limit=chunk)
        if not rows:
            return
        yield rows
        if len(rows) < chunk:
            return
        before = int(rows[-1].id)


def compact(value: Any) -> str:
    """JSON on one line, for the page and the export ('' for nothing)."""
    if value is None or value == {}:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (an actor can be a typed e-mail)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def local_time(value: datetime, timezone: str) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(timezone))


def csv_line(row: Row[Any], timezone: str) -> Sequence[str]:
    return [
        str(row.id),
        local_time(row.created_at, timezone).isoformat(timespec="seconds"),
        _cell(row.actor),
        "" if row.actor_id is None else str(row.actor_id),
        _cell(row.action),
        _cell(row.target),
        _cell(compact(row.before)),
        _cell(compact(row.after)),
        _cell(compact(row.details)),
        _cell(row.address),
    ]


async def csv_chunks(
    engine: AsyncEngine, flt: AuditFilter, *, timezone: str = "Africa/Tripoli", chunk: int = CHUNK
) -> AsyncIterator[bytes]:
    """The export as UTF-8 bytes: a BOM (so spreadsheets read the Arabic), the header, then
    one piece per chunk of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    yield b"\xef\xbb\xbf" + buffer.getvalue().encode()
    async for rows in iter_rows(engine, flt, chunk=chunk):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerows(csv_line(r, timezone) for r in rows)
        yield buffer.getvalue().encode()
