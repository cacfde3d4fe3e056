"""The voice IVR's database work on the tables the SMS side uses: one ``inquiry_session`` per
(inquiry, citizen) with an optimistic ``version``, one ``answer`` per (inquiry, question,
citizen) whatever the channel (``channel="voice"``, ``message_id`` NULL). A call lives through a
database restart: each statement waits for it a while (:data:`OUTAGE_BUDGET_S`).

SQLAlchemy Core, the same statements on PostgreSQL and SQLite. A call holds no transaction
across prompts: the session is read again before each question (a reply by SMS meanwhile
is then not asked), and each engine step is written with a version check; on a conflict
the caller reads again and re-runs the engine.

Which inquiry an inbound caller answers (:meth:`VoiceStore.open_inquiry`): the most recently
created inquiry that is ``running``; if none runs, the most recent ``paused`` one (a paused
inquiry sends nothing, but still takes the answers citizens bring, as on SMS).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.inquiries import DefinitionCache
from callcenter.inquiry.definition import Inquiry, Language
from callcenter.inquiry.engine import SessionStatus, State, Step
from callcenter.inquiry.order import order_text
from callcenter.outages import OutageLog, outage_tolerant
from callcenter.phones import InvalidPhone, normalize_phone
from callcenter.sql import insert

C = models.table(models.Citizen)
S = models.table(models.InquirySession)
I = models.table(models.Inquiry)  # noqa: E741
A = models.table(models.Answer)
K = models.table(models.Campaign)

OPEN = ("running", "paused")
CHANNEL = "voice"
#: how long a caller's next step waits for a database that restarts or fails over (the caller
#: hears silence meanwhile), before the call ends with an apology
OUTAGE_BUDGET_S = 20.0
#: every read and write of a call: safe to run twice (a commit whose answer was lost is met
#: again by ON CONFLICT, or by the session's version check: the question has moved on)
OUTAGE = OutageLog(logging.getLogger(__name__), "IVR calls")  # one line per outage, not per call
_through_outage = outage_tolerant(budget_s=OUTAGE_BUDGET_S, outage=OUTAGE)


@dataclass(frozen=True, slots=True)
class VoiceSession:
    """A session as last read: the engine's state, and the version a write must match."""

    id: int
    inquiry_id: int
    citizen_id: int
    question: str | None
    attempts: int
    status: str
    answered: dict[str, str]
    version: int
    inquiry_status: str

    @property
    def state(self) -> State:
        return State.stored(self.question, self.attempts, self.status, self.answered)


def phone_of(raw: str | None, region: str) -> str | None:
    """E.164, or (like the SMS inbox) the number as given when it does not parse, so that a
    caller still has one identity; None when there is no caller id at all."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return normalize_phone(text, region)
    except InvalidPhone:
        return text[:20] if any(c.isdigit() for c in text) else None


class VoiceStore:
    """Citizens, sessions and answers for the IVR (one instance per AGI server)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.definitions = DefinitionCache(engine)

    # -- who and what ---------------------------------------------------------------------------

    @_through_outage
    async def open_inquiry(self) -> int | None:
        """The inquiry inbound callers answer (see the module docstring), or None."""
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(I.c.id)
                .where(I.c.status.in_(OPEN))
                .order_by(case((I.c.status == "running", 0), else_=1), I.c.id.desc())
                .limit(1)
            )
            value = found.scalar_one_or_none()
        return None if value is None else int(value)

    @_through_outage
    async def campaign_inquiry(self, campaign_id: int) -> int | None:
        async with self.engine.connect() as conn:
            value = (await conn.execute(select(K.c.inquiry_id).where(K.c.id == campaign_id))).scalar()
        return None if value is None else int(value)

    async def citizen_id(self, phone: str) -> int | None:
        found = await self.citizen(phone)
        return None if found is None else found[0]

    @_through_outage
    async def citizen(self, phone: str) -> tuple[int, Language] | None:
        """(id, language) of the citizen with ``phone``, or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(C.c.id, C.c.language).where(C.c.phone == phone))).one_or_none()
        if row is None:
            return None
        return int(row.id), "en" if row.language == "en" else "ar"

    @_through_outage
    async def register(self, phone: str, language: str) -> int:
        """The citizen with ``phone``, registered first if unknown (a caller answering the
        open inquiry becomes a citizen, as the register only learns numbers by contact)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(self.dialect, C)
                .values(phone=phone, language=language, created_at=func.now())
                .on_conflict_do_nothing()
            )
            return int((await conn.execute(select(C.c.id).where(C.c.phone == phone))).scalar_one())

    @_through_outage
    async def definition(self, inquiry_id: int, status: str | None = None) -> Inquiry:
        return await self.definitions.get(inquiry_id, status)

    # -- the session ----------------------------------------------------------------------------

    @_through_outage
    async def session(self, inquiry_id: int, citizen_id: int, language: str) -> VoiceSession:
        """The citizen's session for the inquiry, opened (empty, version 0) if there is none."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(self.dialect, S)
                .values(
                    inquiry_id=inquiry_id,
                    citizen_id=citizen_id,
                    channel=CHANNEL,
                    language=language,
                    question_key=None,
                    attempts=0,
                    answered={},
                    status=SessionStatus.ACTIVE.value,
                    version=0,
                    started_at=func.now(),
                    updated_at=func.now(),
                )
                .on_conflict_do_nothing()
            )
        found = await self._read(S.c.inquiry_id == inquiry_id, S.c.citizen_id == citizen_id)
        assert found is not None
        return found

    @_through_outage
    async def reread(self, session: VoiceSession) -> VoiceSession:
        """The session as it is now (another channel may have moved it)."""
        found = await self._read(S.c.id == session.id)
        if found is None:
            raise LookupError(f"inquiry session {session.id} is gone")
        return found

    async def _read(self, *where: object) -> VoiceSession | None:
        columns = (S.c.id, S.c.inquiry_id, S.c.citizen_id, S.c.question_key, S.c.attempts, S.c.status)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*columns, S.c.answered, S.c.version, I.c.status.label("inquiry_status"))
                    .join(I, I.c.id == S.c.inquiry_id)
                    .where(*where)  # type: ignore[arg-type]
                )
            ).one_or_none()
        if row is None:
            return None
        return VoiceSession(
            id=int(row.id),
            inquiry_id=int(row.inquiry_id),
            citizen_id=int(row.citizen_id),
            question=row.question_key,
            attempts=int(row.attempts),
            status=row.status,
            answered=dict(row.answered or {}),
            version=int(row.version),
            inquiry_status=row.inquiry_status,
        )

    @_through_outage
    async def write_step(self, session: VoiceSession, step: Step, raw: str) -> tuple[bool, bool]:
        """Write one engine step: (applied, answer recorded). Not applied: the session moved
        since it was read (version check); read it again and re-run the engine."""
        state = step.state
        completed = state.status is SessionStatus.COMPLETED and session.status != "completed"
        async with self.engine.begin() as conn:
            updated = (
                await conn.execute(
                    update(S)
                    .where(S.c.id == session.id, S.c.version == session.version)
                    .values(
                        question_key=state.question,
                        attempts=state.attempts,
                        status=state.status.value,
                        answered=dict(state.values),
                        channel=CHANNEL,
                        updated_at=func.now(),
                        version=S.c.version + 1,
                        completed_at=func.now() if completed else S.c.completed_at,
                    )
                )
            ).rowcount
            if not updated:
                return False, False
            if step.answer is None:
                return True, False
            answer = step.answer
            assert answer.question.id is not None
            recorded = (
                await conn.execute(
                    insert(self.dialect, A)
                    .values(
                        inquiry_id=session.inquiry_id,
                        question_id=answer.question.id,
                        citizen_id=session.citizen_id,
                        session_id=session.id,
                        channel=CHANNEL,
                        raw=raw[:2000],
                        value=answer.value[:1000],
                        number=answer.number,
                        option_order=order_text(answer.question.order),
                        message_id=None,
                        created_at=func.now(),
                    )
                    .on_conflict_do_nothing()
                    .returning(A.c.id)
                )
            ).scalar_one_or_none() is not None
        return True, recorded
