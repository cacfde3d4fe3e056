"""The Open311 GeoReport v2 endpoint at ``/open311/v2``, in JSON and XML.

=====================================================  ==========================================
``GET  services.{fmt}``                                the catalogue (public)
``GET  services/{service_code}.{fmt}``                 a service's questions as attributes (public)
``POST requests.{fmt}``                                make a request (``api_key``)
``GET  requests.{fmt}``                                list requests (``api_key``; filters, page)
``GET  requests/{service_request_id}.{fmt}``           one request (``api_key``)
``GET  servicerequestupdates.{fmt}``                   mySociety's updates (``api_key``)
``POST servicerequestupdates.{fmt}``                   a client's update on its request (``api_key``)
=====================================================  ==========================================

``jurisdiction_id`` is a municipality's code. Unlike the specification, reading requests needs
a client key as posting does: 1415's requests come from citizens on the phone who never chose
to publish them, and a status is told only to the reporter (issue 10). Errors are the
specification's list of ``{code, description}`` in the format asked for (JSON when the format
itself is unknown). The guard lets every route in (web/policy.py: the catalogue is public, the
rest is checked here against the key, without CSRF, as a client sends no cookies).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callcenter.open311 import read
from callcenter.open311.clients import Client, verify
from callcenter.open311.formats import CONTENT_TYPES, FORMATS, Format, errors, render, w3c
from callcenter.open311.intake import submit
from callcenter.open311.params import (
    Open311Error,
    dates,
    locale,
    page_of,
    reference,
    request_filter,
    submission,
    update_submission,
)
from callcenter.open311.updates import record_update
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.notify import notify_change
from callcenter.requests.store import load_calendar
from callcenter.settings import Settings
from callcenter.web.deps import SessionDep

router = APIRouter(prefix="/open311/v2", tags=["open311"])


def _format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise Open311Error(404, f"the format is json or xml, not {fmt[:20]!r}")
    return cast(Format, fmt)


def _answer(fmt: str, body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=CONTENT_TYPES[fmt].split(";")[0],
                    headers={"Content-Type": CONTENT_TYPES[fmt]})  # fmt: skip


def _error(fmt: str, exc: Open311Error) -> Response:
    shown = fmt if fmt in FORMATS else "json"
    return _answer(shown, errors(cast(Format, shown), [(exc.code, exc.description)]), exc.code)


async def _client(conn: AsyncConnection, params: Mapping[str, str]) -> Client:
    key = params.get("api_key", "").strip()
    if not key:
        raise Open311Error(403, "api_key was not provided")
    found = await verify(conn, key, now=_now())
    if found is None:
        raise Open311Error(403, "api_key is not valid (unknown or revoked)")
    return found


async def _reading(
    request: Request, fmt: str, body: Callable[[AsyncConnection, Format, Settings], Awaitable[str]]
) -> Response:
    """A read on the reader (autocommit), its Open311Error answered in the format asked."""
    try:
        shown = _format(fmt)
        async with request.app.state.reader.connect() as conn:
            return _answer(shown, await body(conn, shown, request.app.state.settings))
    except Open311Error as exc:
        return _error(fmt, exc)


async def _known_jurisdiction(conn: AsyncConnection, params: Mapping[str, str]) -> None:
    """The catalogue is the same in every municipality; a jurisdiction_id must still be one."""
    if jurisdiction := params.get("jurisdiction_id", "").strip():
        await read.municipality_id(conn, jurisdiction)


Rows = list[dict[str, Any]]


def _now() -> datetime:
    return datetime.now(UTC)


def _tz(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.timezone)


@router.get("/services.{fmt}")
async def services(request: Request, fmt: str) -> Response:
    async def body(conn: AsyncConnection, shown: Format, _: Settings) -> str:
        await _known_jurisdiction(conn, request.query_params)
        found = await read.services(conn, locale=locale(request.query_params))
        return render(shown, "services", "service", found)

    return await _reading(request, fmt, body)


@router.get("/services/{service_code}.{fmt}")
async def service_definition(request: Request, service_code: str, fmt: str) -> Response:
    async def body(conn: AsyncConnection, shown: Format, _: Settings) -> str:
        await _known_jurisdiction(conn, request.query_params)
        found = await read.service_definition(conn, service_code, locale=locale(request.query_params))
        return render(shown, "service_definition", None, found)

    return await _reading(request, fmt, body)


Scope = ColumnElement[bool] | None
ClientRead = Callable[[AsyncConnection, Client, Scope, Settings], Awaitable[list[dict[str, Any]]]]


async def _client_reading(request: Request, fmt: str, root: str, item: str, body: ClientRead) -> Response:
    """A read that needs a client's key: the key checked, the jurisdictions it covers found."""
    params = request.query_params

    async def document(conn: AsyncConnection, shown: Format, settings: Settings) -> str:
        client = await _client(conn, params)
        jurisdiction = params.get("jurisdiction_id", "").strip()
        found = await body(conn, client, read.jurisdiction_scope(client, jurisdiction), settings)
        await read.check_jurisdiction(conn, jurisdiction, found)
        return render(shown, root, item, found)

    return await _reading(request, fmt, document)


@router.get("/requests.{fmt}")
async def requests(request: Request, fmt: str) -> Response:
    params = request.query_params

    async def body(conn: AsyncConnection, _: Client, scope: Scope, settings: Settings) -> Rows:
        wanted = request_filter(params, now=_now())
        return await read.requests(conn, wanted, scope=scope, locale=locale(params), tz=_tz(settings))

    return await _client_reading(request, fmt, "service_requests", "request", body)


@router.get("/requests/{service_request_id}.{fmt}")
async def one_request(request: Request, service_request_id: str, fmt: str) -> Response:
    params = request.query_params

    async def body(conn: AsyncConnection, _: Client, scope: Scope, settings: Settings) -> Rows:
        wanted = request_filter({"service_request_id": reference(service_request_id).digits}, now=_now())
        found = await read.requests(conn, wanted, scope=scope, locale=locale(params), tz=_tz(settings))
        if not found:
            raise Open311Error(404, f"service_request_id {service_request_id[:40]!r} was not found")
        return found

    return await _client_reading(request, fmt, "service_requests", "request", body)


@router.get("/servicerequestupdates.{fmt}")
async def service_request_updates(request: Request, fmt: str) -> Response:
    params = request.query_params

    async def body(conn: AsyncConnection, client: Client, scope: Scope, settings: Settings) -> Rows:
        start, end = dates(params, now=_now())
        return await read.updates(
            conn, client, start=start, end=end, scope=scope, page=page_of(params), tz=_tz(settings)
        )

    return await _client_reading(request, fmt, "service_request_updates", "request_update", body)


@dataclass(frozen=True, slots=True)
class _Posted:
    """What every POST starts from: the format, the form's fields, the client whose
    ``api_key`` it carries, and the working calendar for the clocks it starts."""

    shown: Format
    fields: dict[str, Any]
    client: Client
    calendar: WorkingCalendar


async def _posted(request: Request, fmt: str, session: AsyncSession, settings: Settings) -> _Posted:
    shown = _format(fmt)
    form = await request.form()
    fields: dict[str, Any] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    client = await _client(await session.connection(), fields)
    return _Posted(shown, fields, client, await load_calendar(request.app.state.engine, settings))


@router.post("/requests.{fmt}")
async def post_request(request: Request, fmt: str, session: SessionDep) -> Response:
    settings: Settings = request.app.state.settings
    try:
        posted = await _posted(request, fmt, session, settings)
        shown = posted.shown
        sent = submission(posted.fields)
        made = await submit(session, posted.client, sent, calendar=posted.calendar, settings=settings)
    except Open311Error as exc:
        await session.rollback()
        return _error(fmt, exc)
    record = {
        "service_request_id": made.reference,
        "service_notice": w3c(made.resolution_due_at, _tz(settings)) or "",
        "account_id": None,
    }
    return _answer(shown, render(shown, "service_requests", "request", [record]), 201)


@router.post("/servicerequestupdates.{fmt}")
async def post_service_request_update(request: Request, fmt: str, session: SessionDep) -> Response:
    """mySociety's POST servicerequestupdates (open311/updates.py): a note or the reporter's
    reopening; answered with 1415's ``update_id``, the same however often it is sent."""
    settings: Settings = request.app.state.settings
    try:
        posted = await _posted(request, fmt, session, settings)
        shown = posted.shown
        sent = update_submission(posted.fields)
        recorded = await record_update(
            session, posted.client, sent, calendar=posted.calendar, settings=settings
        )
    except Open311Error as exc:
        await session.rollback()
        return _error(fmt, exc)
    if recorded.changed and not recorded.replayed:
        await session.commit()  # the citizen never hears of a change rolled back
        await notify_change(
            settings, request.app.state.engine, request.app.state.redis, request_id=recorded.request_id,
            version=recorded.version,
        )  # fmt: skip
    record = {"update_id": str(recorded.update_id)}
    return _answer(shown, render(shown, "service_request_updates", "request_update", [record]), 201)
