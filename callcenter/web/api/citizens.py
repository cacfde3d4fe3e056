"""The citizen register: CSV upload (streamed; bad rows reported, good rows kept)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, UploadFile

from callcenter.audit import audit
from callcenter.citizens.importer import BadHeader, import_citizens
from callcenter.errors import CallCenterError
from callcenter.web.deps import ActorDep, EngineDep, SessionDep, SettingsDep, get_actor

router = APIRouter(prefix="/api/citizens", tags=["citizens"], dependencies=[Depends(get_actor)])


@router.post("/import")
async def upload(
    file: UploadFile, engine: EngineDep, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> dict[str, Any]:
    try:
        report = await import_citizens(engine, file.file, region=settings.default_region)
    except BadHeader as exc:
        raise CallCenterError(str(exc)) from exc
    audit(
        session,
        actor=actor,
        action="citizens.import",
        target=file.filename or "",
        rows=report.rows,
        imported=report.imported,
        rejected=report.rejected,
    )
    data = asdict(report)
    data["errors"] = data["errors"][:1000]
    return data
