"""The Open311 reads: the catalogue as services and service definitions, requests as the
specification lists them, and mySociety's ``servicerequestupdates``.

What a client reads of a request made by phone, SMS or at the desk: its category, status,
responsible body and dates, never the reporter's number or words — ``description`` and
``status_notes`` (the last public note) are given only for requests made through Open311,
whose reporters chose a public client. ``servicerequestupdates`` lists the public changes of
the requests the asking client made, and nobody else's.

Each list is one query (joins to the small catalogue tables, the last public note as a
subquery evaluated only for Open311 requests), newest first, a page at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from callcenter import models
from callcenter.open311.clients import Client
from callcenter.open311.formats import w3c
from callcenter.open311.params import Open311Error, Page, RequestFilter
from callcenter.open311.statuses import extended, standard
from callcenter.requests.read import aware as _aware

REQUEST = models.table(models.ServiceRequest)
EVENT = models.table(models.RequestEvent)
CATEGORY = models.table(models.ServiceCategory)
BODY = models.table(models.ResponsibleBody)
MUNICIPALITY = models.table(models.Municipality)
O311 = models.table(models.Open311Request)
OPEN311: Final = "open311"


# -- services -------------------------------------------------------------------------------------


async def services(conn: AsyncConnection, *, locale: str) -> list[dict[str, Any]]:
    """Every active category: ``service_code`` is its key; ``group`` the body responsible by
    default; ``metadata`` true when it asks questions (its definition lists them)."""
    rows = await conn.execute(
        select(CATEGORY.c.key, CATEGORY.c.name_ar, CATEGORY.c.name_en, CATEGORY.c.questions,
               BODY.c.name_ar.label("body_ar"), BODY.c.name_en.label("body_en"))
        .join(BODY, BODY.c.id == CATEGORY.c.default_body_id)
        .where(CATEGORY.c.active.is_(True))
        .order_by(CATEGORY.c.keypad)
    )  # fmt: skip
    return [
        {
            "service_code": row.key,
            "service_name": _name(locale, row.name_ar, row.name_en),
            "description": "",
            "metadata": bool(row.questions),
            "type": "realtime",
            "keywords": "",
            "group": _name(locale, row.body_ar, row.body_en),
        }
        for row in rows
    ]


async def service_definition(conn: AsyncConnection, code: str, *, locale: str) -> dict[str, Any]:
    """The category's questions as attributes: free text (``string``), optional, in order."""
    row = (
        await conn.execute(
            select(CATEGORY.c.key, CATEGORY.c.questions).where(
                CATEGORY.c.key == code[:48], CATEGORY.c.active.is_(True)
            )
        )
    ).first()
    if row is None:
        raise Open311Error(404, f"service_code {code[:48]!r} was not found")
    return {
        "service_code": row.key,
        "attributes": [
            {
                "variable": True,
                "code": question["key"],
                "datatype": "string",
                "required": False,
                "datatype_description": "",
                "order": order,
                "description": _name(locale, question["ar"], question["en"]),
            }
            for order, question in enumerate(row.questions, 1)
        ],
    }


async def municipality_id(conn: AsyncConnection, code: str) -> int:
    """The municipality a ``jurisdiction_id`` names (404 when none does)."""
    found = (await conn.execute(select(MUNICIPALITY.c.id).where(MUNICIPALITY.c.code == code[:64]))).scalar()
    if found is None:
        raise Open311Error(404, f"jurisdiction_id {code[:64]!r} was not found")
    return int(found)


def jurisdiction_scope(client: Client, jurisdiction: str) -> ColumnElement[bool] | None:
    """Which requests a read covers, as a condition: the municipality named (if the key reaches
    it), else the key's own, else all (None). In SQL, so the read is one round trip; a
    ``jurisdiction_id`` that names no municipality is told apart when nothing is found
    (``check_jurisdiction``)."""
    municipality = REQUEST.c.municipality_id
    if jurisdiction:
        if not client.reaches(jurisdiction):
            raise Open311Error(403, f"this api_key does not reach jurisdiction_id {jurisdiction[:64]!r}")
        return (
            municipality
            == select(MUNICIPALITY.c.id).where(MUNICIPALITY.c.code == jurisdiction[:64]).scalar_subquery()
        )
    if client.jurisdictions:
        return municipality.in_(
            select(MUNICIPALITY.c.id).where(MUNICIPALITY.c.code.in_(sorted(client.jurisdictions)))
        )
    return None


async def check_jurisdiction(conn: AsyncConnection, jurisdiction: str, found: Sequence[object]) -> None:
    """Nothing found for a ``jurisdiction_id``: 404 if it names no municipality."""
    if jurisdiction and not found:
        await municipality_id(conn, jurisdiction)


# -- requests -------------------------------------------------------------------------------------


def _last_public_note() -> Any:
    return (
        select(EVENT.c.note)
        .where(EVENT.c.request_id == REQUEST.c.id, EVENT.c.public.is_(True), EVENT.c.note != "")
        .order_by(EVENT.c.at.desc(), EVENT.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _request_columns() -> list[Any]:
    r = REQUEST.c
    opened = r.channel == OPEN311
    return [
        r.id, r.reference, r.status, r.created_at, r.updated_at, r.resolution_due_at,
        case((opened, r.description), else_=literal("")).label("description"),
        case((opened, _last_public_note()), else_=literal("")).label("status_notes"),
        CATEGORY.c.key.label("code"), CATEGORY.c.name_ar, CATEGORY.c.name_en,
        BODY.c.name_ar.label("body_ar"), BODY.c.name_en.label("body_en"),
        O311.c.lat, O311.c.long, O311.c.address, O311.c.address_id, O311.c.media_url,
    ]  # fmt: skip


async def requests(
    conn: AsyncConnection,
    wanted: RequestFilter,
    *,
    scope: ColumnElement[bool] | None,
    locale: str,
    tz: ZoneInfo,
) -> list[dict[str, Any]]:
    """A page of requests, newest first."""
    r = REQUEST.c
    where: list[ColumnElement[bool]] = [] if scope is None else [scope]
    if wanted.references:
        where.append(r.reference.in_([ref.display for ref in wanted.references]))
    else:
        if wanted.service_codes:
            where.append(CATEGORY.c.key.in_(wanted.service_codes))
        if wanted.statuses:
            where.append(r.status.in_(wanted.statuses))
        if wanted.start is not None:
            where.append(r.created_at >= wanted.start)
        if wanted.end is not None:
            where.append(r.created_at <= wanted.end)
    query = (
        select(*_request_columns())
        .select_from(REQUEST)
        .join(CATEGORY, CATEGORY.c.id == r.category_id)
        .join(BODY, BODY.c.id == r.body_id)
        .outerjoin(O311, O311.c.request_id == r.id)
        .where(and_(*where))
        .order_by(r.created_at.desc(), r.id.desc())
        .limit(wanted.page.size)
        .offset(wanted.page.offset)
    )
    return [_request_record(row, locale=locale, tz=tz) for row in await conn.execute(query)]


def _request_record(row: Any, *, locale: str, tz: ZoneInfo) -> dict[str, Any]:
    """The specification's fields, in its order."""
    return {
        "service_request_id": row.reference,
        "status": standard(row.status),
        "status_notes": row.status_notes or "",
        "service_name": _name(locale, row.name_ar, row.name_en),
        "service_code": row.code,
        "description": row.description or "",
        "agency_responsible": _name(locale, row.body_ar, row.body_en),
        "service_notice": "",
        "requested_datetime": w3c(_aware(row.created_at), tz),
        "updated_datetime": w3c(_aware(row.updated_at), tz),
        "expected_datetime": w3c(_aware(row.resolution_due_at), tz),
        "address": row.address or "",
        "address_id": row.address_id or "",
        "zipcode": "",
        "lat": row.lat,
        "long": row.long,
        "media_url": row.media_url or "",
    }


# -- mySociety's servicerequestupdates ------------------------------------------------------------


async def updates(
    conn: AsyncConnection,
    client: Client,
    *,
    start: datetime,
    end: datetime,
    scope: ColumnElement[bool] | None,
    page: Page,
    tz: ZoneInfo,
) -> list[dict[str, Any]]:
    """The public changes (status changes told to the citizen, public notes) of the requests
    this client made, oldest first: ``status`` is mySociety's extended status the request had
    after the change, ``external_status_code`` 1415's own."""
    e, r = EVENT.c, REQUEST.c
    earlier = EVENT.alias("earlier")
    status_then = (
        select(earlier.c.to_status)
        .where(earlier.c.request_id == e.request_id, earlier.c.to_status.is_not(None), earlier.c.id < e.id)
        .order_by(earlier.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    where = [
        O311.c.client_id == client.id, e.public.is_(True), e.at >= start, e.at <= end,
        or_(e.to_status.is_not(None), e.note != ""),
    ]  # fmt: skip
    if scope is not None:
        where.append(scope)
    status = case((e.to_status.is_not(None), e.to_status), else_=status_then).label("status")
    query = (
        select(e.id, e.at, e.note, r.reference, status)
        .select_from(EVENT)
        .join(O311, O311.c.request_id == e.request_id)
        .join(REQUEST, REQUEST.c.id == e.request_id)
        .where(and_(*where))
        .order_by(e.at, e.id)
        .limit(page.size)
        .offset(page.offset)
    )  # fmt: skip
    return [
        {
            "update_id": str(row.id),
            "service_request_id": row.reference,
            "status": extended(row.status or "sent"),
            "updated_datetime": w3c(_aware(row.at), tz),
            "description": row.note or "",
            "media_url": "",
            "external_status_code": row.status or "sent",
        }
        for row in await conn.execute(query)
    ]


def _name(locale: str, ar: str, en: str) -> str:
    return (en or ar) if locale == "en" else ar
