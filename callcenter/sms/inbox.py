"""Inbound SMS: store first, then run the inquiry engine, then answer.

Every inbound message is committed (deduplicated on the gateway's id) before anything else,
so a crash after the store loses nothing: the reconciler re-processes stored messages that
were never processed. The answer is unique per (inquiry, question, citizen), so a duplicate
webhook or a retry records nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcenter import models
from callcenter.inquiry.definition import Inquiry, InquiryStatus, Language
from callcenter.inquiry.engine import Event, SessionStatus, State, Step, advance
from callcenter.inquiry.parser import Keyword, Keywords, keyword
from callcenter.inquiry.texts import phrase, reply_for
from callcenter.inquiries import load_definition
from callcenter.phones import InvalidPhone, mask_phone, normalize_phone
from callcenter.settings import Settings
from callcenter.sms.gateways.base import InboundSms, StatusReport
from callcenter.sql import insert

log = logging.getLogger(__name__)

M = models.Message.__table__
C = models.Citizen.__table__
S = models.InquirySession.__table__
I = models.Inquiry.__table__  # noqa: E741
A = models.Answer.__table__
D = models.Delivery.__table__
K = models.Campaign.__table__
O = models.OptOut.__table__  # noqa: E741

OPEN = (InquiryStatus.RUNNING.value, InquiryStatus.PAUSED.value)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one inbound message did (for tests, logs and the demo)."""

    reply: str | None
    event: str  # an engine Event, or duplicate / unknown_sender / no_inquiry
    answer_recorded: bool = False


class Inbox:
    """The engine side of the SMS webhooks (``SmsInbox``)."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.dialect = engine.dialect.name
        self.keywords = Keywords.build(
            stop=settings.stop_words, start=settings.start_words, help=settings.help_words
        )
        self._definitions: dict[int, Inquiry] = {}

    # -- SmsInbox -------------------------------------------------------------------------

    async def receive(self, sms: InboundSms) -> str | None:
        return (await self.handle(sms)).reply

    async def status(self, report: StatusReport) -> None:
        """A delivery report: campaign deliveries by our ref ("d<id>") or the gateway's id."""
        values: dict[str, Any] = {"status": report.state}
        if report.state == "delivered":
            values["delivered_at"] = func.now()
        if report.error:
            values["error"] = report.error[:300]
        if report.ref and report.ref.startswith("d") and report.ref[1:].isdigit():
            where = D.c.id == int(report.ref[1:])
        elif report.gateway_id:
            where = D.c.gateway_id == report.gateway_id
        else:
            return
        # A late "sent" never overwrites "delivered"/"failed".
        allowed = ("sending", "sent") if report.state == "sent" else ("sending", "sent", "delivered")
        async with self.engine.begin() as conn:
            await conn.execute(update(D).where(where, D.c.status.in_(allowed)).values(**values))

    # -- the pipeline ---------------------------------------------------------------------

    async def handle(self, sms: InboundSms) -> Outcome:
        phone = self._phone(sms.sender)
        message_id = await self._store(sms, phone)
        if message_id is None:
            log.info("duplicate inbound %s/%s ignored", sms.gateway, sms.gateway_id)
            return Outcome(None, "duplicate")
        return await self.process(message_id, phone, sms.body)

    async def process(self, message_id: int, phone: str, body: str) -> Outcome:
        """Run one stored message through the engine (also used to recover after a crash)."""
        for attempt in range(3):
            try:
                async with self.engine.begin() as conn:
                    outcome = await self._process(conn, message_id, phone, body)
                    await conn.execute(
                        update(M)
                        .where(M.c.id == message_id)
                        .values(status="processed", processed_at=func.now(), reply=outcome.reply)
                    )
                    return outcome
            except IntegrityError:
                # Two replies of one citizen raced to open the session: the loser retries
                # and finds the winner's row.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def reprocess_stuck(self, older_than: datetime, limit: int = 500) -> list[tuple[int, str, Outcome]]:
        """Process stored messages a crash left unprocessed; returns (id, phone, outcome)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(M.c.id, M.c.phone, M.c.body)
                    .where(M.c.direction == "in", M.c.status == "received", M.c.created_at < older_than)
                    .order_by(M.c.id)
                    .limit(limit)
                )
            ).all()
        done = []
        for row in rows:
            done.append((row.id, row.phone, await self.process(row.id, row.phone, row.body)))
        return done

    # -- steps ----------------------------------------------------------------------------

    def _phone(self, sender: str) -> str:
        try:
            return normalize_phone(sender, self.settings.default_region)
        except InvalidPhone:
            return sender.strip()[:20] or "?"

    async def _store(self, sms: InboundSms, phone: str) -> int | None:
        stmt = (
            insert(self.dialect, M)
            .values(
                direction="in",
                gateway=sms.gateway,
                gateway_id=sms.gateway_id[:100],
                phone=phone,
                body=sms.body[:2000],
                status="received",
                created_at=func.now(),
            )
            .on_conflict_do_nothing(index_elements=["gateway", "gateway_id"])
            .returning(M.c.id)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt)).scalar_one_or_none()

    async def _process(self, conn: AsyncConnection, message_id: int, phone: str, body: str) -> Outcome:
        citizen = (
            await conn.execute(select(C.c.id, C.c.language, C.c.opted_out_at).where(C.c.phone == phone))
        ).one_or_none()
        language: Language = "en" if citizen is not None and citizen.language == "en" else "ar"
        command = keyword(body, self.keywords)
        if citizen is None:
            if command is Keyword.STOP:
                # Remember the wish even before the register knows the number.
                await self._opt(conn, await self._new_citizen(conn, phone), "out", message_id)
                return Outcome(phrase("opted_out", language), Event.OPTED_OUT.value)
            log.info("reply from unknown sender %s", mask_phone(phone))
            return Outcome(phrase("unknown_sender", language), "unknown_sender")

        await conn.execute(update(M).where(M.c.id == message_id).values(citizen_id=citizen.id))
        session = await self._session(conn, citizen.id, language)
        if session is None:
            return await self._without_session(conn, citizen, command, language, message_id)

        inquiry = await self._definition(conn, session.inquiry_id, session.inquiry_status)
        state = State(
            question=session.question_key,
            attempts=session.attempts,
            status=SessionStatus(session.status),
            answered=frozenset(session.answered or {}),
            values=tuple((session.answered or {}).items()),
        )
        step = advance(inquiry, state, body, keywords=self.keywords)
        language = "en" if session.language == "en" else "ar"
        recorded = await self._apply(conn, step, session, citizen.id, message_id, body)
        return Outcome(reply_for(inquiry, step, language), step.event.value, recorded)

    async def _apply(
        self, conn: AsyncConnection, step: Step, session: Any, citizen_id: int, message_id: int, raw: str
    ) -> bool:
        recorded = False
        if step.answer is not None:
            assert step.answer.question.id is not None
            result = await conn.execute(
                insert(self.dialect, A)
                .values(
                    inquiry_id=session.inquiry_id,
                    question_id=step.answer.question.id,
                    citizen_id=citizen_id,
                    session_id=session.id,
                    channel="sms",
                    raw=raw[:2000],
                    value=step.answer.value[:1000],
                    number=step.answer.number,
                    message_id=message_id,
                    created_at=func.now(),
                )
                .on_conflict_do_nothing()
                .returning(A.c.id)
            )
            recorded = result.scalar_one_or_none() is not None
        if step.event is Event.OPTED_OUT:
            await self._opt(conn, citizen_id, "out", message_id)
        elif step.event is Event.OPTED_IN:
            await self._opt(conn, citizen_id, "in", message_id)
        new = step.state
        if (new.question, new.attempts, new.status, new.answered) != (
            session.question_key,
            session.attempts,
            session.status,
            frozenset(session.answered or {}),
        ):
            await conn.execute(
                update(S)
                .where(S.c.id == session.id)
                .values(
                    question_key=new.question,
                    attempts=new.attempts,
                    status=new.status.value,
                    answered=dict(new.values),
                    channel="sms",
                    updated_at=func.now(),
                    completed_at=func.now() if step.event is Event.COMPLETED else S.c.completed_at,
                )
            )
        await conn.execute(update(M).where(M.c.id == message_id).values(session_id=session.id))
        return recorded

    async def _session(self, conn: AsyncConnection, citizen_id: int, language: Language) -> Any:
        """The citizen's open session, or a new one for the inquiry they were last sent."""
        query = (
            select(S, I.c.status.label("inquiry_status"))
            .join(I, I.c.id == S.c.inquiry_id)
            .where(S.c.citizen_id == citizen_id, I.c.status.in_(OPEN))
            .order_by((S.c.status == "active").desc(), S.c.updated_at.desc())
            .limit(1)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(of=S)
        row = (await conn.execute(query)).one_or_none()
        if row is not None:
            return row
        invited = (
            await conn.execute(
                select(K.c.inquiry_id)
                .select_from(D.join(K, K.c.id == D.c.campaign_id).join(I, I.c.id == K.c.inquiry_id))
                .where(
                    D.c.citizen_id == citizen_id,
                    D.c.status.in_(("sent", "delivered")),
                    I.c.status.in_(OPEN),
                )
                .order_by(D.c.sent_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if invited is None:
            return None
        inquiry = await self._definition(conn, invited, None)
        await conn.execute(
            insert(self.dialect, S).values(
                inquiry_id=invited,
                citizen_id=citizen_id,
                channel="sms",
                language=language,
                question_key=inquiry.first.key,
                attempts=0,
                answered={},
                status="active",
                started_at=func.now(),
                updated_at=func.now(),
            )
        )
        return (await conn.execute(query)).one()

    async def _without_session(
        self, conn: AsyncConnection, citizen: Any, command: Keyword | None, language: Language, message_id: int
    ) -> Outcome:
        if command is Keyword.STOP:
            await self._opt(conn, citizen.id, "out", message_id)
            return Outcome(phrase("opted_out", language), Event.OPTED_OUT.value)
        if command is Keyword.START:
            await self._opt(conn, citizen.id, "in", message_id)
            return Outcome(phrase("opted_in", language), Event.OPTED_IN.value)
        if command is Keyword.HELP:
            return Outcome(phrase("help", language), Event.HELP.value)
        if citizen.opted_out_at is not None:
            return Outcome(None, Event.IGNORED.value)
        closed = (
            await conn.execute(
                select(S.c.id)
                .join(I, I.c.id == S.c.inquiry_id)
                .where(S.c.citizen_id == citizen.id, I.c.status == InquiryStatus.CLOSED.value)
                .limit(1)
            )
        ).first()
        if closed is not None:
            return Outcome(phrase("closed", language), Event.CLOSED.value)
        return Outcome(phrase("no_inquiry", language), "no_inquiry")

    async def _definition(self, conn: AsyncConnection, inquiry_id: int, status: str | None) -> Inquiry:
        """Questions are frozen once an inquiry leaves draft, so the definition is cached;
        the status comes fresh with every message."""
        cached = self._definitions.get(inquiry_id)
        if cached is None:
            from sqlalchemy.ext.asyncio import AsyncSession

            async with AsyncSession(bind=conn) as session:
                cached = await load_definition(session, inquiry_id)
            self._definitions[inquiry_id] = cached
        if status is not None and status != cached.status:
            from dataclasses import replace

            cached = replace(cached, status=InquiryStatus(status))
            self._definitions[inquiry_id] = cached
        return cached

    async def _new_citizen(self, conn: AsyncConnection, phone: str) -> int:
        await conn.execute(
            insert(self.dialect, C)
            .values(phone=phone, language=self.settings.default_language, created_at=func.now())
            .on_conflict_do_nothing()
        )
        return int((await conn.execute(select(C.c.id).where(C.c.phone == phone))).scalar_one())

    async def _opt(self, conn: AsyncConnection, citizen_id: int, action: str, message_id: int) -> None:
        """Opt a citizen out (or back in) everywhere: the fast flag, the history, the outbox."""
        await conn.execute(
            update(C)
            .where(C.c.id == citizen_id)
            .values(opted_out_at=func.now() if action == "out" else None)
        )
        await conn.execute(
            insert(self.dialect, O).values(
                citizen_id=citizen_id, action=action, channel="sms", message_id=message_id, created_at=func.now()
            )
        )
        if action == "out":
            await conn.execute(
                update(D)
                .where(and_(D.c.citizen_id == citizen_id, D.c.status == "pending"))
                .values(status="skipped", error="opted out")
            )
