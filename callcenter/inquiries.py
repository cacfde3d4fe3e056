"""Inquiries in the database: create from a definition, load back as the pure ``Inquiry``,
move through the status life cycle."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.errors import CallCenterError, Conflict, InvalidTransition, NotFound
from callcenter.inquiry.definition import (
    STATUS_MOVES,
    Inquiry,
    InquiryStatus,
    Option,
    Question,
    QuestionKind,
    Text,
)
from callcenter.inquiry.schema import InquiryIn
from callcenter.models import utcnow


async def create_inquiry(
    session: AsyncSession, data: InquiryIn, *, actor: str | Actor, replace_draft: bool = False
) -> models.Inquiry:
    """Store a new inquiry (draft). A draft with the same slug may be replaced; others not."""
    existing = (
        await session.execute(select(models.Inquiry).where(col(models.Inquiry.slug) == data.slug))
    ).scalar_one_or_none()
    if existing is not None:
        if not replace_draft or existing.status != InquiryStatus.DRAFT:
            raise Conflict(f"inquiry {data.slug!r} exists ({existing.status})", slug=data.slug)
        for q in (
            await session.execute(
                select(models.Question).where(col(models.Question.inquiry_id) == existing.id)
            )
        ).scalars():
            await session.delete(q)
        await session.flush()
        row = existing
    else:
        row = models.Inquiry(slug=data.slug, title_ar="")
        session.add(row)
    row.title_ar, row.title_en = data.title.ar, data.title.en
    row.intro_ar, row.intro_en = (data.intro.ar, data.intro.en) if data.intro else ("", "")
    row.thanks_ar, row.thanks_en = (data.thanks.ar, data.thanks.en) if data.thanks else ("", "")
    row.switch_after_hours, row.switch_to = data.switch_after_hours, data.switch_to
    row.max_contacts = data.max_contacts
    row.randomise_options = data.randomise_options
    row.updated_at = utcnow()
    await session.flush()
    assert row.id is not None
    for position, given in enumerate(data.questions):
        session.add(
            models.Question(
                inquiry_id=row.id,
                position=position,
                key=given.key,
                kind=given.kind.value,
                text_ar=given.text.ar,
                text_en=given.text.en,
                options=[o.model_dump() for o in given.options],
                min_value=given.min,
                max_value=given.max,
                retries=given.retries,
                next=dict(given.next),
            )
        )
    audit(session, actor=actor, action="inquiry.create", target=data.slug)
    await session.flush()
    return row


async def get_inquiry_row(session: AsyncSession, ref: int | str) -> models.Inquiry:
    """By id, or by slug."""
    column = models.Inquiry.id if isinstance(ref, int) or str(ref).isdigit() else models.Inquiry.slug
    value: Any = int(ref) if column is models.Inquiry.id else ref
    row = (await session.execute(select(models.Inquiry).where(column == value))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no inquiry {ref!r}")
    return row


async def load_definition(session: AsyncSession, ref: int | str) -> Inquiry:
    row = await get_inquiry_row(session, ref)
    questions = (
        await session.execute(
            select(models.Question)
            .where(col(models.Question.inquiry_id) == row.id)
            .order_by(col(models.Question.position))
        )
    ).scalars()
    return to_definition(row, list(questions))


def to_definition(row: models.Inquiry, questions: list[models.Question]) -> Inquiry:
    default_thanks = Inquiry.__dataclass_fields__["thanks"].default
    return Inquiry(
        id=row.id,
        slug=row.slug,
        title=Text(row.title_ar, row.title_en),
        intro=Text(row.intro_ar, row.intro_en),
        thanks=Text(row.thanks_ar, row.thanks_en) if row.thanks_ar else default_thanks,  # type: ignore[arg-type]
        status=InquiryStatus(row.status),
        randomise_options=bool(row.randomise_options),
        questions=tuple(
            Question(
                id=q.id,
                key=q.key,
                kind=QuestionKind(q.kind),
                text=Text(q.text_ar, q.text_en),
                options=tuple(
                    Option(o["value"], Text(o["ar"], o.get("en", "")), tuple(o.get("synonyms", ())))
                    for o in q.options
                ),
                min_value=q.min_value,
                max_value=q.max_value,
                retries=q.retries,
                next=dict(q.next),
            )
            for q in questions
        ),
    )


async def set_status(
    session: AsyncSession,
    ref: int | str,
    status: InquiryStatus,
    *,
    actor: str | Actor,
    at: datetime | None = None,
) -> models.Inquiry:
    """Move an inquiry along draft -> scheduled -> running <-> paused -> closed.

    ``scheduled`` takes ``at``: the worker's reconciler starts the inquiry (and its draft
    campaigns) then.
    """
    row = await get_inquiry_row(session, ref)
    current = InquiryStatus(row.status)
    if status is InquiryStatus.SCHEDULED:
        if at is None:
            raise CallCenterError("scheduling needs a time (at)")
        row.scheduled_at = at
    if status == current:
        return row
    if status not in STATUS_MOVES[current]:
        raise InvalidTransition(
            f"an inquiry cannot go from {current} to {status}", current=current, wanted=status
        )
    row.status = status.value
    row.updated_at = utcnow()
    audit(session, actor=actor, action=f"inquiry.{status.value}", target=row.slug)
    await session.flush()
    return row


class DefinitionCache:
    """Inquiry definitions by id for the hot paths (SMS inbox, IVR). Questions are frozen once
    an inquiry leaves draft, so they are cached; the status comes fresh with every read."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._definitions: dict[int, Inquiry] = {}

    async def get(self, inquiry_id: int, status: str | None = None) -> Inquiry:
        cached = self._definitions.get(inquiry_id)
        if cached is None:
            async with AsyncSession(self.engine, expire_on_commit=False) as session:
                cached = await load_definition(session, inquiry_id)
            self._definitions[inquiry_id] = cached
        if status is not None and status != cached.status:
            cached = replace(cached, status=InquiryStatus(status))
            self._definitions[inquiry_id] = cached
        return cached
