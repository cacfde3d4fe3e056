"""``/admin/audit``: the audit log, newest first, filtered and paged by id, and the same rows
as a CSV download streamed in chunks (the download is itself audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import audit_query
from callcenter.accounts.principal import Principal
from callcenter.audit import audit
from callcenter.web.deps import EngineDep, ReadSessionDep, SettingsDep
from callcenter.web.guard import Forbidden, client_address
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentUser, now
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)
FILTERS = ("actor", "action", "target", "from", "to")


def _everywhere(user: Principal) -> None:
    """The log covers every municipality (rows carry no municipality): a scoped admin may not read it."""
    if user.scoped:
        raise Forbidden("the audit log covers every municipality")


def _given(request: Request) -> dict[str, str]:
    """The filters as typed (shown back in the form), cut to a sane length."""
    return {name: request.query_params.get(name, "")[:300] for name in FILTERS}


def _parse(given: dict[str, str], timezone: str) -> audit_query.AuditFilter:
    return audit_query.parse_filter(
        actor=given["actor"],
        action=given["action"],
        target=given["target"],
        date_from=given["from"],
        date_to=given["to"],
        timezone=timezone,
    )


@router.get("/admin/audit")
async def audit_page(
    request: Request,
    user: CurrentUser,
    session: ReadSessionDep,
    settings: SettingsDep,
    before: str | None = None,
) -> HTMLResponse:
    _everywhere(user)
    given = _given(request)
    errors: dict[str, str] = {}
    rows: list[AuditLine] = []
    next_link = None
    try:
        flt = _parse(given, settings.timezone)
        cursor = audit_query.parse_before(before)
    except audit_query.BadAuditFilter as exc:
        errors = {name: _(reason) for name, reason in exc.errors.items()}
    else:
        page = await audit_query.audit_page(session, flt, before=cursor)
        rows = [_view(r, settings.timezone) for r in page.rows]
        kept = {k: v for k, v in given.items() if v}
        if page.next_before is not None:
            next_link = "/admin/audit?" + urlencode(kept | {"before": str(page.next_before)})
    filtered = {k: v for k, v in given.items() if v}
    return render(
        request,
        "admin/audit.html",
        {
            "given": given,
            "errors": errors,
            "rows": rows,
            "next_link": next_link,
            "first_link": ("/admin/audit?" + urlencode(filtered)) if before else None,
            "export_link": "/admin/audit.csv" + ("?" + urlencode(filtered) if filtered else ""),
        },
        status_code=400 if errors else 200,
    )


@dataclass(frozen=True, slots=True)
class AuditLine:
    """One row as the page shows it."""

    id: int
    time: str
    actor: str
    actor_id: int | None
    action: str
    target: str
    before: str
    after: str
    details: str
    address: str


def _view(row: Any, timezone: str) -> AuditLine:
    when: datetime = audit_query.local_time(row.created_at, timezone)
    return AuditLine(
        id=row.id,
        time=when.strftime("%Y-%m-%d %H:%M:%S"),
        actor=row.actor,
        actor_id=row.actor_id,
        action=row.action,
        target=row.target,
        before=audit_query.compact(row.before),
        after=audit_query.compact(row.after),
        details=audit_query.compact(row.details),
        address=row.address,
    )


@router.get("/admin/audit.csv")
async def audit_export(
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
) -> Response:
    _everywhere(user)
    given = _given(request)
    try:
        flt = _parse(given, settings.timezone)
    except audit_query.BadAuditFilter as exc:
        errors = {name: _(reason) for name, reason in exc.errors.items()}
        return render(
            request,
            "admin/audit.html",
            {
                "given": given,
                "errors": errors,
                "rows": [],
                "next_link": None,
                "first_link": None,
                "export_link": None,
            },
            status_code=400,
        )
    # committed before the first byte goes out: an export the client abandons half-way
    # was still an export
    async with AsyncSession(engine) as log, log.begin():
        audit(log, actor=user.actor(client_address(request)), action="audit.export", filters=flt.as_dict())
    stamp = now().strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        audit_query.csv_chunks(engine, flt, timezone=settings.timezone),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="audit-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )
