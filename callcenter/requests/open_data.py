"""The open-data export of service requests: one CSV row per request, anonymised.

What a row says: the category (key and names), the municipality (code and names), the
responsible body, the channel, the status and SLA state, and the day it was opened, first
answered, resolved and closed (local days in ``Settings.timezone``). What it never says: the
reporter's number, the citizen, the reference, the description, the notes, the recording, the
officers — nothing a person typed or said, and no time finer than the day.

Rare cells are suppressed: the requests are counted by category × municipality, and that table
goes through the analysis' small-cell suppression (``analysis.suppression.suppress``: cells
under the threshold, and the further cells that would give them away by subtraction from the
totals). The rows of a hidden cell keep their category but lose their municipality *and*
their responsible body (a municipality's own department names the municipality), and say so
in ``municipality_suppressed``. The threshold is ``CALLCENTER_SUPPRESSION_THRESHOLD`` (5) unless
given.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from callcenter import models
from callcenter.analysis.suppression import suppress
from callcenter.requests.read import aware

REQUEST = models.table(models.ServiceRequest)
CATEGORY = models.table(models.ServiceCategory)
BODY = models.table(models.ResponsibleBody)
MUNICIPALITY = models.table(models.Municipality)

HEADER: Final = (
    "category", "category_ar", "category_en", "municipality", "municipality_ar", "municipality_en",
    "municipality_suppressed", "responsible_body", "channel", "status", "sla_state", "opened_on",
    "first_response_on", "resolved_on", "closed_on",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the export reads it (already without anything personal)."""

    category: str
    category_ar: str
    category_en: str
    municipality: str  # "" when the request named none
    municipality_ar: str
    municipality_en: str
    body: str
    channel: str
    status: str
    sla_state: str
    opened_on: date
    first_response_on: date | None
    resolved_on: date | None
    closed_on: date | None


@dataclass(frozen=True, slots=True)
class OpenData:
    rows: list[tuple[str, ...]]
    suppressed: int  # rows whose municipality was hidden
    threshold: int


def anonymise(requests: Sequence[Request], *, threshold: int) -> OpenData:
    """The rows to publish, rare category × municipality cells suppressed."""
    categories = sorted({r.category for r in requests})
    places = sorted({r.municipality for r in requests})
    hidden: set[tuple[str, str]] = set()
    if requests:
        row_of = {c: i for i, c in enumerate(categories)}
        column_of = {m: j for j, m in enumerate(places)}
        counts = [[0] * len(places) for _ in categories]
        for r in requests:
            counts[row_of[r.category]][column_of[r.municipality]] += 1
        table = suppress(counts, threshold=threshold)
        hidden = {
            (categories[i], places[j]) for i, j in table.hidden if i < len(categories) and j < len(places)
        }
    rows: list[tuple[str, ...]] = []
    suppressed = 0
    for r in requests:
        gone = (r.category, r.municipality) in hidden
        suppressed += gone
        rows.append(
            (
                r.category, r.category_ar, r.category_en,
                "" if gone else r.municipality, "" if gone else r.municipality_ar,
                "" if gone else r.municipality_en, "true" if gone else "false", "" if gone else r.body,
                r.channel, r.status, r.sla_state, _day(r.opened_on), _day(r.first_response_on),
                _day(r.resolved_on), _day(r.closed_on),
            )
        )  # fmt: skip
    return OpenData(rows, suppressed, threshold)


def to_csv(data: OpenData) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(data.rows)
    return out.getvalue()


async def read_requests(conn: AsyncConnection, *, tz: ZoneInfo) -> list[Request]:
    """Every request, oldest first, as the export needs it (no personal column is even read)."""
    r = REQUEST.c
    query = (
        select(
            CATEGORY.c.key.label("category"), CATEGORY.c.name_ar.label("category_ar"),
            CATEGORY.c.name_en.label("category_en"), MUNICIPALITY.c.code.label("municipality"),
            MUNICIPALITY.c.name_ar.label("municipality_ar"), MUNICIPALITY.c.name_en.label("municipality_en"),
            BODY.c.key.label("body"), r.channel, r.status, r.sla_state, r.created_at, r.first_response_at,
            r.resolved_at, r.closed_at,
        )
        .select_from(REQUEST)
        .join(CATEGORY, CATEGORY.c.id == r.category_id)
        .join(BODY, BODY.c.id == r.body_id)
        .outerjoin(MUNICIPALITY, MUNICIPALITY.c.id == r.municipality_id)
        .order_by(r.created_at, r.id)
    )  # fmt: skip
    rows = await conn.execute(query)
    return [_request(row, tz) for row in rows]


async def export(conn: AsyncConnection, *, tz: ZoneInfo, threshold: int) -> OpenData:
    return anonymise(await read_requests(conn, tz=tz), threshold=threshold)


def _request(row: Any, tz: ZoneInfo) -> Request:
    opened = _local_day(row.created_at, tz)
    assert opened is not None
    return Request(
        category=row.category, category_ar=row.category_ar, category_en=row.category_en,
        municipality=row.municipality or "", municipality_ar=row.municipality_ar or "",
        municipality_en=row.municipality_en or "", body=row.body, channel=row.channel, status=row.status,
        sla_state=row.sla_state, opened_on=opened, first_response_on=_local_day(row.first_response_at, tz),
        resolved_on=_local_day(row.resolved_at, tz), closed_on=_local_day(row.closed_at, tz),
    )  # fmt: skip


def _local_day(moment: datetime | None, tz: ZoneInfo) -> date | None:
    known = aware(moment)
    return None if known is None else known.astimezone(tz).date()


def _day(day: date | None) -> str:
    return "" if day is None else day.isoformat()


def counts(rows: Iterable[tuple[str, ...]]) -> dict[tuple[str, str], int]:
    """Rows per (category, municipality) as published (a check for tests and readers)."""
    out: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row[0], row[3])
        out[key] = out.get(key, 0) + 1
    return out
