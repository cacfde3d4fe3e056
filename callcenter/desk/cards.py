"""The caller's card on the agent's desk: who is calling (the number masked), from where, in
which language, the menu keys they pressed, their past calls, their open tickets and their
answers to inquiries still open.

Two queries: the citizen with their municipality, then one ``UNION ALL`` of the three
histories (each its newest few). Agents see a masked number only.

Usage::

    record = await store.agent(agent_id)
    card = await read_card(engine, record)     # None when the agent holds no caller
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, String, cast, literal, null, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.phones import mask_phone
from callcenter.routing.model import AgentState
from callcenter.routing.store import AgentRecord

PAST_CALLS: Final = 5
OPEN_TICKETS: Final = 5
ANSWERS: Final = 10
#: The agent holds a caller in these states (the card shows from the offer to the wrap-up).
HOLDING: Final = frozenset({AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP})
#: Ticket statuses that are no longer open.
CLOSED_TICKETS: Final = ("resolved", "closed")


@dataclass(frozen=True, slots=True)
class PastCall:
    at: datetime
    direction: str  # in | out
    outcome: str | None


@dataclass(frozen=True, slots=True)
class OpenTicket:
    id: int
    kind: str
    status: str
    at: datetime

    @property
    def reference(self) -> str:
        return f"1415-{self.id:06d}"


@dataclass(frozen=True, slots=True)
class InquiryAnswer:
    inquiry_ar: str
    inquiry_en: str
    question_ar: str
    question_en: str
    value: str
    channel: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Card:
    entry: str
    queue: str | None
    callback: bool  # a callback (the citizen is dialled once the agent is ready)
    phone: str  # masked
    known: bool  # the number belongs to a citizen of the register
    municipality_ar: str
    municipality_en: str
    language: str
    path: tuple[str, ...]  # the menu keys pressed
    calls: tuple[PastCall, ...]
    tickets: tuple[OpenTicket, ...]
    answers: tuple[InquiryAnswer, ...]


async def read_card(engine: AsyncEngine, record: AgentRecord | None) -> Card | None:
    """The card of the caller ``record`` holds, or None when it holds none."""
    if record is None or record.entry is None or record.agent.state not in HOLDING:
        return None
    caller = record.caller
    phone = caller.phone if caller else ""
    citizen_id = caller.citizen_id if caller else None
    c, m = models.table(models.Citizen), models.table(models.Municipality)
    async with engine.connect() as conn:
        citizen = None
        if citizen_id is not None or phone:
            who = c.c.id == citizen_id if citizen_id is not None else c.c.phone == phone
            citizen = (
                await conn.execute(
                    select(c.c.id, c.c.phone, c.c.language, m.c.name_ar, m.c.name_en)
                    .select_from(c.outerjoin(m, m.c.id == c.c.municipality_id))
                    .where(who)
                )
            ).first()
        if citizen is not None:
            citizen_id, phone = int(citizen.id), phone or str(citizen.phone)
        history = (
            (await conn.execute(_history(citizen_id, phone, caller.call_id if caller else None))).all()
            if citizen_id is not None or phone
            else []
        )
    calls: list[PastCall] = []
    tickets: list[OpenTicket] = []
    answers: list[InquiryAnswer] = []
    for row in history:
        at = _aware(row.at)
        if row.what == "call":
            calls.append(PastCall(at, str(row.t1), row.t2))
        elif row.what == "ticket":
            tickets.append(OpenTicket(int(row.id), str(row.t1), str(row.t2), at))
        else:
            answers.append(
                InquiryAnswer(
                    inquiry_ar=str(row.t3 or ""), inquiry_en=str(row.t4 or ""), question_ar=str(row.t5 or ""),
                    question_en=str(row.t6 or ""), value=str(row.t1), channel=str(row.t2), at=at,
                )
            )  # fmt: skip
    calls.sort(key=lambda x: x.at, reverse=True)
    tickets.sort(key=lambda x: x.at, reverse=True)
    answers.sort(key=lambda x: x.at, reverse=True)
    return Card(
        entry=record.entry,
        queue=record.queue,
        callback=bool(caller and caller.callback_id),
        phone=mask_phone(phone) if phone else "",
        known=citizen is not None,
        municipality_ar=str(citizen.name_ar or "") if citizen is not None else "",
        municipality_en=str(citizen.name_en or "") if citizen is not None else "",
        language=(caller.language if caller else "")
        or (str(citizen.language) if citizen is not None else ""),
        path=tuple(caller.path) if caller else (),
        calls=tuple(calls),
        tickets=tuple(tickets),
        answers=tuple(answers),
    )


def _aware(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _text(column: Any) -> ColumnElement[Any]:
    return cast(column, String)


def _history(citizen_id: int | None, phone: str, current_call: int | None) -> Any:
    """One statement: the newest past calls, open tickets and answers to open inquiries, as
    rows of (what, id, at, t1 … t6)."""
    call, ticket = models.table(models.Call), models.table(models.Ticket)
    answer, question, inquiry = (
        models.table(models.Answer),
        models.table(models.Question),
        models.table(models.Inquiry),
    )
    blank = _text(null())

    def whose(citizen_col: Any, phone_col: Any) -> ColumnElement[bool]:
        found = []
        if citizen_id is not None:
            found.append(citizen_col == citizen_id)
        if phone:
            found.append(phone_col == phone)
        return or_(*found)

    calls = select(
        literal("call").label("what"), call.c.id.label("id"), call.c.started_at.label("at"),
        _text(call.c.direction).label("t1"), _text(call.c.outcome).label("t2"), blank.label("t3"),
        blank.label("t4"), blank.label("t5"), blank.label("t6"),
    ).where(whose(call.c.citizen_id, call.c.caller))  # fmt: skip
    if current_call is not None:
        calls = calls.where(call.c.id != current_call)
    calls = calls.order_by(call.c.started_at.desc(), call.c.id.desc()).limit(PAST_CALLS)
    tickets = (
        select(
            literal("ticket").label("what"), ticket.c.id.label("id"), ticket.c.created_at.label("at"),
            _text(ticket.c.kind).label("t1"), _text(ticket.c.status).label("t2"), blank.label("t3"),
            blank.label("t4"), blank.label("t5"), blank.label("t6"),
        )
        .where(whose(ticket.c.citizen_id, ticket.c.phone), ticket.c.status.not_in(CLOSED_TICKETS))
        .order_by(ticket.c.created_at.desc(), ticket.c.id.desc())
        .limit(OPEN_TICKETS)
    )  # fmt: skip
    parts = [select(calls.subquery()), select(tickets.subquery())]
    if citizen_id is not None:
        answers = (
            select(
                literal("answer").label("what"), answer.c.id.label("id"), answer.c.created_at.label("at"),
                _text(answer.c.value).label("t1"), _text(answer.c.channel).label("t2"),
                _text(inquiry.c.title_ar).label("t3"), _text(inquiry.c.title_en).label("t4"),
                _text(question.c.text_ar).label("t5"), _text(question.c.text_en).label("t6"),
            )
            .select_from(
                answer.join(question, question.c.id == answer.c.question_id).join(
                    inquiry, inquiry.c.id == answer.c.inquiry_id
                )
            )
            .where(answer.c.citizen_id == citizen_id, inquiry.c.status != "closed")
            .order_by(answer.c.created_at.desc(), answer.c.id.desc())
            .limit(ANSWERS)
        )  # fmt: skip
        parts.append(select(answers.subquery()))
    return union_all(*parts)
