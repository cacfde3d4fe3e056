"""Reading requests for the officers' and the ministry's pages: a work queue by SLA urgency,
one request with the names it points at, the colleagues it may be given to, the overdue
requests escalated to the ministry, and the municipalities ranked.

Every read takes the reader's scope (``municipalities``: empty for the whole country) and
narrows to it in SQL, so a page never loads another municipality's row to drop it after.

The queue orders breached requests first, then due soon, then by the resolution due date:
the urgency is the stored ``sla_state`` (kept current by ``recompute``) and the stored due
date, so the order is one index range (``ix_service_request_municipality_queue``: the
municipality, the open statuses) and a sort of that range, then a page of 50 joined to its
names.

Usage::

    page = await work_queue(conn, QueueFilter(municipalities=frozenset({3}), overdue=True))
    page.rows[0].reference, page.total, page.pages
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, Subquery, and_, case, exists, func, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from callcenter import models
from callcenter.requests.lifecycle import OPEN, Status
from callcenter.requests.read import RequestView, aware, get_request

REQUEST = models.table(models.ServiceRequest)
CATEGORY = models.table(models.ServiceCategory)
BODY = models.table(models.ResponsibleBody)
MUNICIPALITY = models.table(models.Municipality)
USER = models.table(models.User)
SCOPE = models.table(models.UserMunicipality)

PAGE_SIZE: Final = 50
OPEN_STATUSES: Final = tuple(sorted(str(s) for s in OPEN))
#: the roles a request can be given to (service.ASSIGNABLE)
ASSIGNEES: Final = ("officer", "supervisor", "admin")
BREACHED: Final = "breached"


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """What a queue shows. ``status``: '' the open requests, 'all' every one, or one status."""

    municipalities: frozenset[int] = frozenset()  # the reader's scope; empty: all
    status: str = ""
    category_id: int | None = None
    body_id: int | None = None
    assigned_to: int | None = None
    overdue: bool = False
    page: int = 1


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: int
    reference: str
    status: str
    sla_state: str
    category_ar: str
    category_en: str
    body_ar: str
    body_en: str
    municipality_ar: str
    municipality_en: str
    assignee: str
    flagged: bool
    paused: bool
    resolution_due_at: datetime | None
    created_at: datetime | None

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def overdue(self) -> bool:
        """Breached and still open: escalated to the ministry's supervisors."""
        return self.sla_state == BREACHED and self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    pages: int


def _scoped(query: Select[Any], municipalities: frozenset[int]) -> Select[Any]:
    return query.where(REQUEST.c.municipality_id.in_(sorted(municipalities))) if municipalities else query


def _conditions(f: QueueFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.status == "":
        where.append(REQUEST.c.status.in_(OPEN_STATUSES))
    elif f.status != "all":
        where.append(REQUEST.c.status == f.status)
    if f.category_id is not None:
        where.append(REQUEST.c.category_id == f.category_id)
    if f.body_id is not None:
        where.append(REQUEST.c.body_id == f.body_id)
    if f.assigned_to is not None:
        where.append(REQUEST.c.assigned_to == f.assigned_to)
    if f.overdue:
        where += [REQUEST.c.sla_state == BREACHED, REQUEST.c.status.in_(OPEN_STATUSES)]
    return where


_URGENCY = case((REQUEST.c.sla_state == BREACHED, 0), (REQUEST.c.sla_state == "due_soon", 1), else_=2)


async def work_queue(conn: AsyncConnection, f: QueueFilter, *, page_size: int = PAGE_SIZE) -> QueuePage:
    """One page of the queue, the most urgent first, and how many requests match."""
    where = _conditions(f)
    counted = _scoped(select(func.count()).select_from(REQUEST).where(*where), f.municipalities)
    total = int((await conn.execute(counted)).scalar_one())
    pages = max(1, -(-total // page_size))
    number = min(max(1, f.page), pages)
    chosen = (
        _scoped(select(REQUEST.c.id, _URGENCY.label("urgency")).where(*where), f.municipalities)
        .order_by(_URGENCY, REQUEST.c.resolution_due_at, REQUEST.c.id)
        .limit(page_size)
        .offset((number - 1) * page_size)
        .subquery()
    )
    rows = await _rows(conn, chosen, order=(chosen.c.urgency, REQUEST.c.resolution_due_at, REQUEST.c.id))
    return QueuePage(rows, total, number, pages)


async def _rows(
    conn: AsyncConnection,
    which: Subquery | ColumnElement[bool],
    *,
    order: tuple[Any, ...],
    limit: int | None = None,
) -> list[QueueRow]:
    """The rows with their names: those of ``which``, a page of ids (a subquery) or a condition."""
    query = (
        select(
            REQUEST.c.id, REQUEST.c.reference, REQUEST.c.status, REQUEST.c.sla_state, REQUEST.c.flagged,
            REQUEST.c.paused_since, REQUEST.c.resolution_due_at, REQUEST.c.created_at,
            CATEGORY.c.name_ar.label("category_ar"), CATEGORY.c.name_en.label("category_en"),
            BODY.c.name_ar.label("body_ar"), BODY.c.name_en.label("body_en"),
            MUNICIPALITY.c.name_ar.label("municipality_ar"), MUNICIPALITY.c.name_en.label("municipality_en"),
            func.coalesce(func.nullif(USER.c.name, ""), USER.c.email).label("assignee"),
        )
        .select_from(
            REQUEST.join(CATEGORY, CATEGORY.c.id == REQUEST.c.category_id)
            .join(BODY, BODY.c.id == REQUEST.c.body_id)
            .outerjoin(MUNICIPALITY, MUNICIPALITY.c.id == REQUEST.c.municipality_id)
            .outerjoin(USER, USER.c.id == REQUEST.c.assigned_to)
        )
        .order_by(*order)
    )  # fmt: skip
    if isinstance(which, Subquery):
        query = query.join(which, which.c.id == REQUEST.c.id)
    else:
        query = query.where(which)
    if limit is not None:
        query = query.limit(limit)
    return [_row(r) for r in (await conn.execute(query)).mappings()]


def _row(r: RowMapping) -> QueueRow:
    return QueueRow(
        id=int(r["id"]), reference=r["reference"] or "", status=r["status"], sla_state=r["sla_state"],
        category_ar=r["category_ar"], category_en=r["category_en"] or "", body_ar=r["body_ar"],
        body_en=r["body_en"] or "", municipality_ar=r["municipality_ar"] or "",
        municipality_en=r["municipality_en"] or "", assignee=r["assignee"] or "", flagged=bool(r["flagged"]),
        paused=r["paused_since"] is not None, resolution_due_at=aware(r["resolution_due_at"]),
        created_at=aware(r["created_at"]),
    )  # fmt: skip


async def escalated(
    conn: AsyncConnection, municipalities: frozenset[int], *, limit: int = 50
) -> list[QueueRow]:
    """Open requests past their due date, and those bounced between bodies too often: the
    ministry's supervisors' to chase, the longest overdue first."""
    wanted = and_(
        REQUEST.c.status.in_(OPEN_STATUSES),
        or_(REQUEST.c.sla_state == BREACHED, REQUEST.c.flagged.is_(True)),
        *([REQUEST.c.municipality_id.in_(sorted(municipalities))] if municipalities else []),
    )
    return await _rows(conn, wanted, order=(REQUEST.c.resolution_due_at, REQUEST.c.id), limit=limit)


# -- one request --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Named:
    id: int
    key: str
    name_ar: str
    name_en: str


@dataclass(frozen=True, slots=True)
class RequestPage:
    """A request with what its page names: category, body, municipality, assignee, its
    original (a duplicate) and its duplicates."""

    request: RequestView
    category: Named
    body: Named
    municipality: Named | None
    assignee: str
    details: dict[str, str]
    questions: list[dict[str, str]]
    recording_path: str | None
    original: str | None  # the original's reference
    duplicates: list[str] = field(default_factory=list)


def _named(row: RowMapping | None, key: str = "key") -> Named | None:
    if row is None:
        return None
    return Named(int(row["id"]), str(row[key]), row["name_ar"], row["name_en"] or "")


async def request_page(conn: AsyncConnection, request_id: int) -> RequestPage:
    view = await get_request(conn, request_id)
    extra = (
        await conn.execute(
            select(REQUEST.c.details, REQUEST.c.recording_path).where(REQUEST.c.id == request_id)
        )
    ).one()
    category = (
        (await conn.execute(select(CATEGORY).where(CATEGORY.c.id == view.category_id))).mappings().one()
    )
    body = (await conn.execute(select(BODY).where(BODY.c.id == view.body_id))).mappings().one()
    municipality = None
    if view.municipality_id is not None:
        found = await conn.execute(select(MUNICIPALITY).where(MUNICIPALITY.c.id == view.municipality_id))
        municipality = _named(found.mappings().one_or_none(), "code")
    assignee = ""
    if view.assigned_to is not None:
        who = (
            await conn.execute(select(USER.c.name, USER.c.email).where(USER.c.id == view.assigned_to))
        ).one()
        assignee = who.name or who.email
    original = None
    if view.duplicate_of is not None:
        original = (
            await conn.execute(select(REQUEST.c.reference).where(REQUEST.c.id == view.duplicate_of))
        ).scalar()
    duplicates = (
        await conn.execute(
            select(REQUEST.c.reference).where(REQUEST.c.duplicate_of == request_id).order_by(REQUEST.c.id)
        )
    ).scalars()
    named_category, named_body = _named(category), _named(body)
    assert named_category is not None and named_body is not None
    return RequestPage(
        request=view, category=named_category, body=named_body, municipality=municipality,
        assignee=assignee, details=dict(extra.details or {}), questions=list(category["questions"] or []),
        recording_path=extra.recording_path, original=original, duplicates=[r for r in duplicates if r],
    )  # fmt: skip


async def colleagues(conn: AsyncConnection, municipality_id: int | None) -> list[tuple[int, str]]:
    """Who a request of ``municipality_id`` may be given to: the active officers of that
    municipality (or of every one), and the ministry's supervisors and admins."""
    scoped_here = exists().where(SCOPE.c.user_id == USER.c.id, SCOPE.c.municipality_id == municipality_id)
    unscoped = ~exists().where(SCOPE.c.user_id == USER.c.id)
    query = (
        select(USER.c.id, USER.c.name, USER.c.email)
        .where(
            USER.c.disabled_at.is_(None),
            USER.c.role.in_(ASSIGNEES),
            or_(USER.c.role != "officer", unscoped, scoped_here),
        )
        .order_by(USER.c.name, USER.c.email)
        .limit(500)
    )
    return [(int(r.id), r.name or r.email) for r in await conn.execute(query)]


async def bodies(conn: AsyncConnection) -> list[Named]:
    rows = await conn.execute(select(BODY).where(BODY.c.active.is_(True)).order_by(BODY.c.name_ar))
    return [n for n in (_named(r) for r in rows.mappings()) if n is not None]


async def categories(conn: AsyncConnection) -> list[Named]:
    rows = await conn.execute(select(CATEGORY).order_by(CATEGORY.c.keypad))
    return [n for n in (_named(r) for r in rows.mappings()) if n is not None]


# -- the ministry's ranking ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ranked:
    """A municipality's requests opened since the period began, and how they went."""

    municipality_id: int | None
    name_ar: str
    name_en: str
    opened: int
    resolved: int
    open_now: int
    overdue: int  # open and past due: escalated
    on_time: int  # resolved within the resolution target
    median_resolve_s: float | None

    @property
    def compliance(self) -> float | None:
        """Resolved on time, out of those whose resolution clock has a verdict (resolved, or
        still open past due)."""
        judged = self.resolved + self.overdue
        return self.on_time / judged if judged else None


SORTS: Final = ("compliance", "opened", "resolved", "median", "overdue")


async def municipality_ranking(
    conn: AsyncConnection,
    *,
    since: datetime,
    municipalities: frozenset[int] = frozenset(),
    sort: str = "compliance",
) -> list[Ranked]:
    """Every municipality with requests made since ``since``, ranked by ``sort`` (compliance
    and resolved: highest first; median time: fastest first; opened and overdue: most first)."""
    resolved = REQUEST.c.resolved_at.is_not(None)
    open_now = REQUEST.c.status.in_(OPEN_STATUSES)
    in_time = REQUEST.c.resolved_at <= REQUEST.c.resolution_due_at
    one = 1
    query = _scoped(
        select(
            REQUEST.c.municipality_id,
            func.count().label("opened"),
            func.sum(case((resolved, one), else_=0)).label("resolved"),
            func.sum(case((open_now, one), else_=0)).label("open_now"),
            func.sum(case((and_(open_now, REQUEST.c.sla_state == BREACHED), one), else_=0)).label("overdue"),
            func.sum(case((and_(resolved, in_time), one), else_=0)).label("on_time"),
        )
        .where(REQUEST.c.created_at >= since)
        .group_by(REQUEST.c.municipality_id),
        municipalities,
    )  # fmt: skip
    counts = (await conn.execute(query)).mappings().all()
    medians = await _medians(conn, since, municipalities)
    names = {
        int(r.id): (r.name_ar, r.name_en or "")
        for r in await conn.execute(
            select(MUNICIPALITY.c.id, MUNICIPALITY.c.name_ar, MUNICIPALITY.c.name_en).where(
                MUNICIPALITY.c.id.in_(
                    [c["municipality_id"] for c in counts if c["municipality_id"] is not None]
                )
            )
        )
    }
    ranked = [
        Ranked(
            municipality_id=c["municipality_id"],
            name_ar=names.get(c["municipality_id"], ("", ""))[0],
            name_en=names.get(c["municipality_id"], ("", ""))[1],
            opened=int(c["opened"]),
            resolved=int(c["resolved"] or 0),
            open_now=int(c["open_now"] or 0),
            overdue=int(c["overdue"] or 0),
            on_time=int(c["on_time"] or 0),
            median_resolve_s=medians.get(c["municipality_id"]),
        )
        for c in counts
    ]
    return sorted(ranked, key=_sort_key(sort if sort in SORTS else "compliance"))


def _sort_key(sort: str) -> Any:
    inf = float("inf")

    def key(r: Ranked) -> tuple[float, str]:
        value: dict[str, float] = {
            "compliance": -(r.compliance if r.compliance is not None else -1.0),
            "opened": -r.opened,
            "resolved": -r.resolved,
            "median": r.median_resolve_s if r.median_resolve_s is not None else inf,
            "overdue": -r.overdue,
        }
        return value[sort], r.name_ar

    return key


async def _medians(
    conn: AsyncConnection, since: datetime, municipalities: frozenset[int]
) -> dict[int | None, float]:
    """The median calendar time from a request to its resolution, per municipality:
    ``percentile_cont`` on PostgreSQL, in Python on SQLite (which has no percentile)."""
    resolved = and_(REQUEST.c.created_at >= since, REQUEST.c.resolved_at.is_not(None))
    if conn.dialect.name == "postgresql":
        seconds = func.extract("epoch", REQUEST.c.resolved_at - REQUEST.c.created_at)
        query = _scoped(
            select(REQUEST.c.municipality_id, func.percentile_cont(0.5).within_group(seconds))
            .where(resolved)
            .group_by(REQUEST.c.municipality_id),
            municipalities,
        )
        return {mid: float(median) for mid, median in await conn.execute(query)}
    query = _scoped(
        select(REQUEST.c.municipality_id, REQUEST.c.created_at, REQUEST.c.resolved_at).where(resolved),
        municipalities,
    )
    spans: dict[int | None, list[float]] = {}
    for mid, made, done in await conn.execute(query):
        start, end = aware(made), aware(done)
        assert start is not None and end is not None
        spans.setdefault(mid, []).append((end - start).total_seconds())
    return {mid: statistics.median(values) for mid, values in spans.items()}


def statuses() -> list[str]:
    """Every status, in the life cycle's order (the filter's choices)."""
    return [str(s) for s in Status]
