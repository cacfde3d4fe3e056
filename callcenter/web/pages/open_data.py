"""``GET /open-data/requests.csv``: the anonymised export of service requests
(requests/open_data.py) for admins and supervisors to publish; every download audited.
``?threshold=`` raises the suppression threshold (never below the setting)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from callcenter.audit import audit
from callcenter.requests.open_data import export, to_csv
from callcenter.web.deps import ReaderDep, SessionDep, SettingsDep
from callcenter.web.pages.common import CurrentActor, now

router = APIRouter()


@router.get("/open-data/requests.csv")
async def requests_csv(
    request: Request, actor: CurrentActor, reader: ReaderDep, session: SessionDep, settings: SettingsDep
) -> Response:
    asked = request.query_params.get("threshold", "")
    threshold = settings.suppression_threshold
    if asked.isascii() and asked.isdigit() and len(asked) < 6:
        threshold = max(threshold, int(asked))
    async with reader.connect() as conn:
        data = await export(conn, tz=ZoneInfo(settings.timezone), threshold=threshold)
    audit(
        session, actor=actor, action="requests.open_data.export", target="open-data/requests.csv",
        rows=len(data.rows), suppressed=data.suppressed, threshold=threshold,
    )  # fmt: skip
    name = f"1415-requests-{now():%Y-%m-%d}.csv"
    return Response(
        to_csv(data), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )  # fmt: skip
