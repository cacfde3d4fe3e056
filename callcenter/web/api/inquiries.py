"""Inquiries: define (JSON or YAML), list, move through the life cycle, read results, export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import select
from sqlmodel import col

from callcenter import models
from callcenter.audit import audit
from callcenter.inquiries import create_inquiry, get_inquiry_row, load_definition, set_status
from callcenter.inquiry.definition import InquiryStatus
from callcenter.inquiry.schema import InquiryIn, parse_inquiry_yaml
from callcenter.results import EXPORT_HEADER, export_rows, inquiry_results
from callcenter.web.api.responses import API_ERRORS
from callcenter.web.deps import ActorDep, EngineDep, SessionDep, SettingsDep, get_actor

router = APIRouter(
    prefix="/api/inquiries", tags=["inquiries"], dependencies=[Depends(get_actor)], responses=API_ERRORS
)


class StatusIn(BaseModel):
    status: InquiryStatus
    at: AwareDatetime | None = None  # for "scheduled": when to start


def _summary(row: models.Inquiry) -> dict[str, Any]:
    return {
        "id": row.id,
        "slug": row.slug,
        "title": {"ar": row.title_ar, "en": row.title_en},
        "status": row.status,
    }


@router.post("", status_code=201)
async def create(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """JSON body (``InquiryIn``), or YAML with ``Content-Type: application/yaml``."""
    raw = await request.body()
    if "yaml" in request.headers.get("content-type", ""):
        data = parse_inquiry_yaml(raw.decode("utf-8", errors="replace"), source="request body")
    else:
        data = InquiryIn.model_validate_json(raw)
    row = await create_inquiry(session, data, actor=actor)
    return _summary(row)


@router.get("")
async def list_inquiries(session: SessionDep) -> list[dict[str, Any]]:
    rows = (await session.execute(select(models.Inquiry).order_by(col(models.Inquiry.id)))).scalars()
    return [_summary(r) for r in rows]


@router.get("/{ref}")
async def get_one(ref: str, session: SessionDep) -> dict[str, Any]:
    definition = await load_definition(session, ref)
    row = await get_inquiry_row(session, ref)
    from dataclasses import asdict

    return {**_summary(row), "definition": asdict(definition)}


@router.post("/{ref}/status")
async def change_status(ref: str, body: StatusIn, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    return _summary(await set_status(session, ref, body.status, actor=actor, at=body.at))


@router.get("/{ref}/results")
async def results(
    ref: str, engine: EngineDep, session: SessionDep, actor: ActorDep, language: str = "ar"
) -> dict[str, Any]:
    audit(session, actor=actor, action="results.read", target=ref)
    return (await inquiry_results(engine, ref, language=language)).to_json()


@router.get("/{ref}/export.csv")
async def export_csv(
    ref: str, engine: EngineDep, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> StreamingResponse:
    """UTF-8 with a BOM so that Excel shows Arabic; citizens pseudonymised with a keyed HMAC."""
    row = await get_inquiry_row(session, ref)
    audit(session, actor=actor, action="results.export", target=row.slug)
    await session.commit()

    async def body() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_HEADER)
        yield ("\ufeff" + buffer.getvalue()).encode()
        async for values in export_rows(engine, row.slug, key=settings.pseudonym_key):
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(values)
            yield buffer.getvalue().encode()

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{row.slug}-answers.csv"'},
    )
