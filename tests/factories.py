"""Builders of real rows for tests (through the same code paths the engine uses)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.inquiries import create_inquiry, set_status
from callcenter.inquiry.definition import InquiryStatus
from callcenter.inquiry.schema import parse_inquiry_yaml

SAMPLE = Path(__file__).parents[1] / "callcenter" / "samples" / "return-of-life.yaml"

THREE_QUESTIONS = """
slug: three
title: {ar: ثلاثة أسئلة, en: Three questions}
questions:
  - {key: q1, kind: rating, text: {ar: السؤال الأول, en: First question}}
  - {key: q2, kind: yes_no, text: {ar: السؤال الثاني, en: Second question}}
  - {key: q3, kind: rating, min: 1, max: 3, text: {ar: السؤال الثالث, en: Third question}}
"""


async def make_inquiry(
    engine: AsyncEngine,
    *,
    yaml_text: str | None = None,
    status: InquiryStatus = InquiryStatus.RUNNING,
) -> int:
    data = parse_inquiry_yaml(yaml_text or SAMPLE.read_text(encoding="utf-8"))
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        row = await create_inquiry(session, data, actor="test")
        if status is not InquiryStatus.DRAFT:
            await set_status(session, data.slug, InquiryStatus.RUNNING, actor="test")
        if status not in (InquiryStatus.DRAFT, InquiryStatus.RUNNING):
            await set_status(session, data.slug, status, actor="test")
        assert row.id is not None
        return row.id


async def make_citizens(
    engine: AsyncEngine,
    n: int,
    *,
    language: str = "ar",
    start: int = 0,
    municipality: str | None = None,
) -> list[str]:
    """n citizens with valid Libyan mobile numbers; returns their E.164 phones."""
    phones = [f"+21891{start + i:07d}" for i in range(n)]
    async with engine.begin() as conn:
        muni_id = None
        if municipality:
            M = models.Municipality.__table__
            muni_id = (await conn.execute(select(M.c.id).where(M.c.code == municipality))).scalar()
            if muni_id is None:
                muni_id = (
                    await conn.execute(
                        insert(M)
                        .values(code=municipality, name_ar=municipality, name_en="")
                        .returning(M.c.id)
                    )
                ).scalar_one()
        await conn.execute(
            insert(models.Citizen.__table__),
            [{"phone": p, "language": language, "municipality_id": muni_id} for p in phones],
        )
    return phones


async def invite(engine: AsyncEngine, inquiry_id: int, phones: list[str]) -> int:
    """A campaign whose deliveries to ``phones`` were sent (as if a worker had run)."""
    async with engine.begin() as conn:
        K, D, C = models.Campaign.__table__, models.Delivery.__table__, models.Citizen.__table__
        campaign_id = (
            await conn.execute(
                insert(K).values(inquiry_id=inquiry_id, audience={}, status="running").returning(K.c.id)
            )
        ).scalar_one()
        ids = (await conn.execute(select(C.c.id).where(C.c.phone.in_(phones)))).scalars().all()
        await conn.execute(
            insert(D),
            [
                {
                    "campaign_id": campaign_id,
                    "citizen_id": cid,
                    "status": "sent",
                    "sent_at": datetime.now(UTC),
                }
                for cid in ids
            ],
        )
        return int(campaign_id)
