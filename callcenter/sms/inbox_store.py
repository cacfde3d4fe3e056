"""The inbox's database work, in two shapes with one contract.

``PgStore`` is the hot path of a national poll (a thousand replies a second): plain asyncpg,
three round trips per reply (store, read the context, write the step), the step written in
one statement with data-modifying CTEs and an optimistic version check on the session, so
no transaction is held open across the engine. ``CoreStore`` does the same with SQLAlchemy
Core for SQLite (the embedded default), where one writer at a time makes locking moot.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcenter import models
from callcenter.inquiry.engine import State
from callcenter.sms.gateways.base import InboundSms, StatusReport
from callcenter.sql import insert

M = models.table(models.Message)
C = models.table(models.Citizen)
S = models.table(models.InquirySession)
I = models.table(models.Inquiry)  # noqa: E741
A = models.table(models.Answer)
D = models.table(models.Delivery)
K = models.table(models.Campaign)
O = models.table(models.OptOut)  # noqa: E741

OPEN = ("running", "paused")
INVITED = ("sending", "sent", "delivered")  # "sending": a reply can overtake the recorded send


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session as read, or (``id`` None) the one a first reply opens with its step."""

    id: int | None
    inquiry_id: int
    question_key: str | None
    attempts: int
    status: str
    answered: dict[str, str]
    language: str
    version: int
    inquiry_status: str

    def state(self) -> State:
        return State.stored(self.question_key, self.attempts, self.status, self.answered)


@dataclass(frozen=True, slots=True)
class Context:
    citizen_id: int | None
    language: str = "ar"
    opted_out: bool = False
    session: SessionRow | None = None
    invited: int | None = None  # without a session: the open inquiry last sent to them
    had_closed: bool = False  # without a session: took part in an inquiry now closed


@dataclass(frozen=True, slots=True)
class AnswerRow:
    question_id: int
    value: str
    number: float | None
    raw: str
    option_order: str | None = None  # the options' order as this citizen saw them


@dataclass(frozen=True, slots=True)
class StepWrite:
    message_id: int
    citizen_id: int
    session: SessionRow
    state: State
    completed: bool
    answer: AnswerRow | None
    reply: str | None
    opt: str | None  # "out" | "in" | None


class Store(Protocol):
    async def warm(self) -> None:
        """Open connections before the first reply needs them."""
        ...

    async def save(self, sms: InboundSms, phone: str) -> tuple[int | None, Context | None]:
        """Store the message (None: a duplicate); may read the citizen's context on the way."""
        ...

    async def context(self, phone: str) -> Context: ...
    async def pending(self, message_id: int) -> bool:
        """Whether the message still waits for the engine (``received``)."""
        ...

    async def find(self, gateway: str, gateway_id: str) -> tuple[int, str, str, str] | None:
        """A stored inbound message by its gateway id: (id, phone, body, status)."""
        ...

    async def reply_of(self, message_id: int) -> str | None:
        """The reply the engine gave to a processed message (None: none, or not processed)."""
        ...

    async def open_session(self, citizen_id: int, inquiry_id: int, first: str, language: str) -> None: ...
    async def write_step(self, step: StepWrite) -> tuple[bool, bool]:
        """(applied, answer recorded); not applied when the session moved meanwhile or the
        message was processed already (each message is processed once, whoever tries)."""
        ...

    async def finish(
        self, message_id: int, citizen_id: int | None, reply: str | None, opt: str | None
    ) -> bool:
        """False: the message was processed already, by someone else."""
        ...

    async def new_citizen(self, phone: str, language: str) -> int: ...
    async def stuck(self, older_than: datetime, limit: int) -> list[tuple[int, str, str]]: ...
    async def status(self, report: StatusReport) -> None: ...
    async def aclose(self) -> None: ...


def _status_values(report: StatusReport) -> tuple[dict[str, Any], tuple[str, ...]] | None:
    values: dict[str, Any] = {"status": report.state}
    if report.state == "delivered":
        values["delivered_at"] = func.now()
    if report.error:
        values["error"] = report.error[:300]
    # a late "sent" never overwrites "delivered" or "failed"
    allowed = ("sending", "sent") if report.state == "sent" else ("sending", "sent", "delivered")
    return values, allowed


class CoreStore:
    """SQLAlchemy Core, for SQLite (and any database without the PostgreSQL fast path)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    async def save(self, sms: InboundSms, phone: str) -> tuple[int | None, Context | None]:
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
            return (await conn.execute(stmt)).scalar_one_or_none(), None

    async def context(self, phone: str) -> Context:
        async with self.engine.connect() as conn:
            citizen = (
                await conn.execute(select(C.c.id, C.c.language, C.c.opted_out_at).where(C.c.phone == phone))
            ).one_or_none()
            if citizen is None:
                return Context(None)
            base = Context(citizen.id, citizen.language, citizen.opted_out_at is not None)
            row = (
                await conn.execute(
                    select(S, I.c.status.label("inquiry_status"))
                    .join(I, I.c.id == S.c.inquiry_id)
                    .where(S.c.citizen_id == citizen.id, I.c.status.in_(OPEN))
                    .order_by((S.c.status == "active").desc(), S.c.updated_at.desc())
                    .limit(1)
                )
            ).one_or_none()
            if row is not None:
                session = SessionRow(
                    row.id,
                    row.inquiry_id,
                    row.question_key,
                    row.attempts,
                    row.status,
                    dict(row.answered or {}),
                    row.language,
                    row.version,
                    row.inquiry_status,
                )
                return Context(base.citizen_id, base.language, base.opted_out, session)
            invited = (
                await conn.execute(
                    select(K.c.inquiry_id)
                    .select_from(D.join(K, K.c.id == D.c.campaign_id).join(I, I.c.id == K.c.inquiry_id))
                    .where(D.c.citizen_id == citizen.id, D.c.status.in_(INVITED), I.c.status.in_(OPEN))
                    .order_by(D.c.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            closed = (
                await conn.execute(
                    select(S.c.id)
                    .join(I, I.c.id == S.c.inquiry_id)
                    .where(S.c.citizen_id == citizen.id, I.c.status == "closed")
                    .limit(1)
                )
            ).first()
        return Context(base.citizen_id, base.language, base.opted_out, None, invited, closed is not None)

    async def open_session(self, citizen_id: int, inquiry_id: int, first: str, language: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(self.dialect, S)
                .values(
                    inquiry_id=inquiry_id,
                    citizen_id=citizen_id,
                    channel="sms",
                    language=language,
                    question_key=first,
                    attempts=0,
                    answered={},
                    status="active",
                    version=0,
                    started_at=func.now(),
                    updated_at=func.now(),
                )
                .on_conflict_do_nothing()
            )

    async def write_step(self, step: StepWrite) -> tuple[bool, bool]:
        s = step.session
        async with self.engine.begin() as conn:
            if not await self._claim(conn, step.message_id):
                return False, False
            if s.id is None:
                created = (
                    await conn.execute(
                        insert(self.dialect, S)
                        .values(
                            inquiry_id=s.inquiry_id,
                            citizen_id=step.citizen_id,
                            channel="sms",
                            language=s.language,
                            question_key=step.state.question,
                            attempts=step.state.attempts,
                            answered=dict(step.state.values),
                            status=step.state.status.value,
                            version=1,
                            started_at=func.now(),
                            updated_at=func.now(),
                            completed_at=func.now() if step.completed else None,
                        )
                        .on_conflict_do_nothing()
                        .returning(S.c.id)
                    )
                ).scalar_one_or_none()
                if created is None:  # another reply opened it first
                    return False, False
                s = replace(s, id=created)
            updated = (
                1
                if step.session.id is None
                else (
                    await conn.execute(
                        update(S)
                        .where(S.c.id == s.id, S.c.version == s.version)
                        .values(
                            question_key=step.state.question,
                            attempts=step.state.attempts,
                            status=step.state.status.value,
                            answered=dict(step.state.values),
                            channel="sms",
                            updated_at=func.now(),
                            version=S.c.version + 1,
                            completed_at=func.now() if step.completed else S.c.completed_at,
                        )
                    )
                ).rowcount
            )
            if not updated:
                return False, False
            assert s.id is not None
            recorded = False
            if step.answer is not None:
                a = step.answer
                recorded = (
                    await conn.execute(
                        insert(self.dialect, A)
                        .values(
                            inquiry_id=s.inquiry_id,
                            question_id=a.question_id,
                            citizen_id=step.citizen_id,
                            session_id=s.id,
                            channel="sms",
                            raw=a.raw[:2000],
                            value=a.value[:1000],
                            number=a.number,
                            option_order=a.option_order,
                            message_id=step.message_id,
                            created_at=func.now(),
                        )
                        .on_conflict_do_nothing()
                        .returning(A.c.id)
                    )
                ).scalar_one_or_none() is not None
            await self._finish(conn, step.message_id, step.citizen_id, step.reply, step.opt, s.id)
        return True, recorded

    async def finish(
        self, message_id: int, citizen_id: int | None, reply: str | None, opt: str | None
    ) -> bool:
        async with self.engine.begin() as conn:
            if not await self._claim(conn, message_id):
                return False
            await self._finish(conn, message_id, citizen_id, reply, opt, None)
        return True

    @staticmethod
    async def _claim(conn: AsyncConnection, message_id: int) -> bool:
        """Lock the message's row for this transaction if it still waits for the engine: a
        second processing of it (a replayed spool, the reconciler meeting a slow request)
        waits here, then finds it processed and records nothing."""
        claimed = await conn.execute(
            update(M).where(M.c.id == message_id, M.c.status == "received").values(status="received")
        )
        return bool(claimed.rowcount)

    async def pending(self, message_id: int) -> bool:
        async with self.engine.connect() as conn:
            status = (await conn.execute(select(M.c.status).where(M.c.id == message_id))).scalar_one_or_none()
        return status == "received"

    async def find(self, gateway: str, gateway_id: str) -> tuple[int, str, str, str] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(M.c.id, M.c.phone, M.c.body, M.c.status).where(
                        M.c.gateway == gateway, M.c.gateway_id == gateway_id[:100], M.c.direction == "in"
                    )
                )
            ).one_or_none()
        return None if row is None else (int(row.id), row.phone, row.body, row.status)

    async def reply_of(self, message_id: int) -> str | None:
        async with self.engine.connect() as conn:
            reply = (
                await conn.execute(select(M.c.reply).where(M.c.id == message_id, M.c.status == "processed"))
            ).scalar_one_or_none()
        return None if reply is None else str(reply)

    async def _finish(
        self,
        conn: AsyncConnection,
        message_id: int,
        citizen_id: int | None,
        reply: str | None,
        opt: str | None,
        session_id: int | None,
    ) -> None:
        if opt is not None and citizen_id is not None:
            await conn.execute(
                update(C)
                .where(C.c.id == citizen_id)
                .values(opted_out_at=func.now() if opt == "out" else None)
            )
            await conn.execute(
                insert(self.dialect, O).values(
                    citizen_id=citizen_id,
                    action=opt,
                    channel="sms",
                    message_id=message_id,
                    created_at=func.now(),
                )
            )
            if opt == "out":
                await conn.execute(
                    update(D)
                    .where(and_(D.c.citizen_id == citizen_id, D.c.status == "pending"))
                    .values(status="skipped", error="opted out")
                )
        await conn.execute(
            update(M)
            .where(M.c.id == message_id)
            .values(
                status="processed",
                processed_at=func.now(),
                reply=reply,
                citizen_id=citizen_id,
                session_id=session_id,
            )
        )

    async def new_citizen(self, phone: str, language: str) -> int:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(self.dialect, C)
                .values(phone=phone, language=language, created_at=func.now())
                .on_conflict_do_nothing()
            )
            return int((await conn.execute(select(C.c.id).where(C.c.phone == phone))).scalar_one())

    async def stuck(self, older_than: datetime, limit: int) -> list[tuple[int, str, str]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(M.c.id, M.c.phone, M.c.body)
                .where(M.c.direction == "in", M.c.status == "received", M.c.created_at < older_than)
                .order_by(M.c.id)
                .limit(limit)
            )
            return [(r.id, r.phone, r.body) for r in rows]

    async def status(self, report: StatusReport) -> None:
        shaped = _status_values(report)
        if shaped is None:
            return
        values, allowed = shaped
        if report.ref and report.ref.startswith("d") and report.ref[1:].isdigit():
            where = D.c.id == int(report.ref[1:])
        elif report.gateway_id:
            where = D.c.gateway_id == report.gateway_id
        else:
            return
        async with self.engine.begin() as conn:
            await conn.execute(update(D).where(where, D.c.status.in_(allowed)).values(**values))

    async def warm(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class PgStore(CoreStore):
    """The PostgreSQL fast path: asyncpg prepared statements, three round trips a reply (behind
    PgBouncer each statement is prepared again where it runs: one round trip more per statement)."""

    SAVE = (
        "INSERT INTO message (direction, gateway, gateway_id, phone, body, status, created_at) "
        "VALUES ('in', $1, $2, $3, $4, 'received', now()) "
        "ON CONFLICT (gateway, gateway_id) DO NOTHING RETURNING id"
    )
    CONTEXT = """
        SELECT c.id AS citizen_id, c.language, c.opted_out_at IS NOT NULL AS opted_out,
               s.id AS session_id, s.inquiry_id, s.question_key, s.attempts, s.status, s.answered,
               s.language AS session_language, s.version, s.inquiry_status,
               CASE WHEN s.id IS NULL THEN (
                   SELECT k.inquiry_id FROM delivery d
                   JOIN campaign k ON k.id = d.campaign_id JOIN inquiry i ON i.id = k.inquiry_id
                   WHERE d.citizen_id = c.id AND d.status IN ('sending', 'sent', 'delivered')
                     AND i.status IN ('running', 'paused')
                   ORDER BY d.id DESC LIMIT 1) END AS invited,
               CASE WHEN s.id IS NULL THEN EXISTS (
                   SELECT 1 FROM inquiry_session s2 JOIN inquiry i2 ON i2.id = s2.inquiry_id
                   WHERE s2.citizen_id = c.id AND i2.status = 'closed') END AS had_closed
        FROM citizen c
        LEFT JOIN LATERAL (
            SELECT s.*, i.status AS inquiry_status FROM inquiry_session s
            JOIN inquiry i ON i.id = s.inquiry_id
            WHERE s.citizen_id = c.id AND i.status IN ('running', 'paused')
            ORDER BY (s.status = 'active') DESC, s.updated_at DESC LIMIT 1) s ON true
        WHERE c.phone = $1
    """
    OPEN_SESSION = (
        "INSERT INTO inquiry_session (inquiry_id, citizen_id, channel, language, question_key, "
        "attempts, answered, status, version, started_at, updated_at) "
        "VALUES ($1, $2, 'sms', $3, $4, 0, '{}', 'active', 0, now(), now()) ON CONFLICT DO NOTHING"
    )
    # g locks the message first (as CoreStore's claim does, so the two never deadlock) and
    # only while it still waits for the engine: each message is processed once, whoever tries.
    STEP = """
        WITH g AS (SELECT id FROM message WHERE id = $14 AND status = 'received' FOR UPDATE),
        s AS (
            UPDATE inquiry_session SET question_key = $2, attempts = $3, status = $4,
                   answered = $5::json, channel = 'sms', updated_at = now(), version = version + 1,
                   completed_at = CASE WHEN $6::bool THEN now() ELSE completed_at END
            WHERE id = $1 AND version = $7 AND EXISTS (SELECT 1 FROM g)
            RETURNING id),
        a AS (
            INSERT INTO answer (inquiry_id, question_id, citizen_id, session_id, channel, raw,
                                value, number, message_id, created_at, option_order)
            SELECT $8, $9::bigint, $10, s.id, 'sms', $11, $12, $13, $14, now(), $16::text FROM s
            WHERE $9::bigint IS NOT NULL
            ON CONFLICT DO NOTHING RETURNING id),
        m AS (
            UPDATE message SET status = 'processed', processed_at = now(), reply = $15,
                   citizen_id = $10, session_id = (SELECT id FROM s)
            WHERE id = $14 AND EXISTS (SELECT 1 FROM s) RETURNING id)
        SELECT (SELECT count(*) FROM s) AS updated, (SELECT count(*) FROM a) AS answered,
               (SELECT count(*) FROM m) AS finished
    """

    # A first reply opens the session in the same statement (no extra round trips): the
    # INSERT either wins or meets the row a concurrent reply created, and then retries.
    STEP_NEW = STEP.replace(
        """UPDATE inquiry_session SET question_key = $2, attempts = $3, status = $4,
                   answered = $5::json, channel = 'sms', updated_at = now(), version = version + 1,
                   completed_at = CASE WHEN $6::bool THEN now() ELSE completed_at END
            WHERE id = $1 AND version = $7 AND EXISTS (SELECT 1 FROM g)
            RETURNING id""",
        """INSERT INTO inquiry_session (inquiry_id, citizen_id, channel, language, question_key,
                   attempts, answered, status, version, started_at, updated_at, completed_at)
            SELECT $8, $10, 'sms', $1, $2, $3, $5::json, $4, $7 + 1, now(), now(),
                   CASE WHEN $6::bool THEN now() END
            WHERE EXISTS (SELECT 1 FROM g)
            ON CONFLICT DO NOTHING RETURNING id""",
    )
    assert STEP_NEW != STEP

    SAVE_AND_CONTEXT = (
        "WITH m AS (" + SAVE + ") SELECT (SELECT id FROM m) AS message_id, ctx.* "
        "FROM (SELECT 1) AS one LEFT JOIN (" + CONTEXT.replace("$1", "$3") + ") AS ctx ON true"
    )

    def __init__(
        self, engine: AsyncEngine, *, pool_size: int = 20, connect_args: dict[str, Any] | None = None
    ) -> None:
        super().__init__(engine)
        self.dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.pool_size = pool_size
        #: behind PgBouncer: ``statement_cache_size=0`` (see ``callcenter.db.pooler_connect_args``)
        self.connect_args = connect_args or {}
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:  # many first replies at once must share one pool
            if self._pool is not None:
                return self._pool
            import asyncpg  # type: ignore[import-untyped]

            async def init(conn: Any) -> None:
                await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

            async def keep(conn: Any) -> None:
                """No session state is ever set here, so skip asyncpg's per-release reset
                (a round trip per query)."""

            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.pool_size,
                max_size=self.pool_size,
                init=init,
                reset=keep,
                **self.connect_args,
            )
            return self._pool

    async def warm(self) -> None:
        await self._get_pool()

    async def save(self, sms: InboundSms, phone: str) -> tuple[int | None, Context | None]:
        """One round trip: the INSERT commits the message, the same statement reads the context."""
        pool = await self._get_pool()
        row = await pool.fetchrow(
            self.SAVE_AND_CONTEXT, sms.gateway, sms.gateway_id[:100], phone, sms.body[:2000]
        )
        if row["message_id"] is None:
            return None, None
        return int(row["message_id"]), self._context(row)

    async def context(self, phone: str) -> Context:
        pool = await self._get_pool()
        return self._context(await pool.fetchrow(self.CONTEXT, phone))

    @staticmethod
    def _context(row: Any) -> Context:
        if row is None or row["citizen_id"] is None:
            return Context(None)
        session = None
        if row["session_id"] is not None:
            session = SessionRow(
                row["session_id"],
                row["inquiry_id"],
                row["question_key"],
                row["attempts"],
                row["status"],
                dict(row["answered"] or {}),
                row["session_language"],
                row["version"],
                row["inquiry_status"],
            )
        return Context(
            row["citizen_id"],
            row["language"],
            row["opted_out"],
            session,
            row["invited"],
            bool(row["had_closed"]),
        )

    async def open_session(self, citizen_id: int, inquiry_id: int, first: str, language: str) -> None:
        pool = await self._get_pool()
        await pool.execute(self.OPEN_SESSION, inquiry_id, citizen_id, language, first)

    async def write_step(self, step: StepWrite) -> tuple[bool, bool]:
        if step.opt is not None:  # rare: several tables, the general path
            return await super().write_step(step)
        s, a = step.session, step.answer
        pool = await self._get_pool()
        new = s.id is None
        row = await pool.fetchrow(
            self.STEP_NEW if new else self.STEP,
            s.language if new else s.id,
            step.state.question,
            step.state.attempts,
            step.state.status.value,
            dict(step.state.values),
            step.completed,
            s.version,
            s.inquiry_id,
            a.question_id if a else None,
            step.citizen_id,
            a.raw[:2000] if a else "",
            a.value[:1000] if a else "",
            a.number if a else None,
            step.message_id,
            step.reply,
            a.option_order if a else None,
        )
        return bool(row["updated"]), bool(row["answered"])

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def make_store(engine: AsyncEngine, connect_args: dict[str, Any] | None = None) -> Store:
    if engine.dialect.name == "postgresql":
        return PgStore(engine, connect_args=connect_args)
    return CoreStore(engine)
