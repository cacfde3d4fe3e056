"""The citizen register: CSV upload (streamed; bad rows reported, good rows kept).

Municipalities are matched against the register; a row naming one the register lacks is
rejected unless the form says ``create_municipalities=true``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, UploadFile

from callcenter.audit import audit
from callcenter.citizens.importer import BadHeader, import_citizens
from callcenter.errors import CallCenterError
from callcenter.web.api.responses import API_ERRORS
from callcenter.web.deps import ActorDep, EngineDep, SessionDep, SettingsDep, get_actor

router = APIRouter(
    prefix="/api/citizens", tags=["citizens"], dependencies=[Depends(get_actor)], responses=API_ERRORS
)


@router.post("/import")
async def upload(
    file: UploadFile,
    engine: EngineDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
    create_municipalities: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    try:
        report = await import_citizens(
            engine, file.file, region=settings.default_region, create_municipalities=create_municipalities
        )
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
        municipalities_created=report.municipalities_created,
    )
    data = asdict(report)
    data["errors"] = data["errors"][:1000]
    return data
