"""The webhook side of an outage: tell "the database is away" from a bug, and spool then.

:class:`SpoolingInbox` sits between the webhooks and the engine's inbox. The webhooks have
already checked the signature or secret (a forged request is refused before it gets here,
outage or not). A message or delivery report goes to the engine as always, under a short
timeout; if the database cannot be reached, it is written to the spool instead and the
webhook answers as if there were no reply (empty TwiML, an empty Kannel body), in time.
The drainer (:mod:`callcenter.sms.drain`) stores it later and sends the reply by REST.

A citizen's second reply must never be stored before the first (it would answer the wrong
question): while the spool holds a record of theirs, the next one queues behind it. After an
outage this process saw, everything queues behind the spool until it is drained, so a database
just back is not hit by the drain and the live traffic at once, and no request waits on a
database that is still away. When the spool is full (or its disk is), the database is
tried all the same; only when both fail does the webhook answer 503, and the gateway's
own retries (see the README) carry the message until there is room.

Overload is met the same way: with ``max_in_flight`` calls already waiting on the database,
the next one is spooled at once (an fsync, a millisecond or so) instead of queueing for a
pooled connection until the gateway gives up on it. Only the citizens whose replies were
spooled then queue behind the spool; everyone else goes on being answered inline, so one
burst does not turn the whole line over to the drainer.

Usage: ``app.state.inbox = SpoolingInbox(inbox, spool, timeout_s=settings.sms_webhook_db_timeout_s)``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import exc as sa_exc

from callcenter import metrics
from callcenter.sms.gateways.base import InboundSms, SmsInbox, StatusReport
from callcenter.sms.spool import Spool, SpoolError, SpoolRecord

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATE classes and codes that mean "no database to write to now", not "this request is
# wrong": 08 connection exceptions; 53 insufficient resources (disk full, out of memory, too
# many connections); 57P01-57P03 shutting down, crashed, starting up; 25006 a read-only
# transaction (a primary demoted in a failover, still answering); 40P01/40001 are not here:
# the inbox retries those itself.
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53")
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "25006"})
LOG_EVERY_S = 10.0


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps (``__cause__``, SQLAlchemy's ``orig``)."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        # not __context__: an exception handled on the way is no cause of this one
        todo.extend(x for x in (e.__cause__, getattr(e, "orig", None)) if isinstance(x, BaseException))


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached or cannot take writes now.

    True for: the network (any ``OSError``: refused, reset, unreachable, DNS; ``TimeoutError``
    is one), a connection lost mid-statement (SQLSTATE class 08, asyncpg's and SQLAlchemy's
    "connection is closed", ``connection_invalidated``), a server shutting down, starting up,
    out of disk or connections, a read-only primary after a failover, an exhausted connection
    pool, a locked SQLite file. False for everything else (a constraint, a syntax error, bad
    data): those are bugs, which spooling would only hide.
    """
    for e in _causes(error):
        if isinstance(e, OSError):
            return True
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, sa_exc.TimeoutError):  # no pooled connection came free in time
            return True
        sqlstate = getattr(e, "sqlstate", None)
        if isinstance(sqlstate, str) and (
            sqlstate in UNAVAILABLE_SQLSTATES or sqlstate.startswith(UNAVAILABLE_SQLSTATE_CLASSES)
        ):
            return True
        name = type(e).__name__
        if name == "InterfaceError" and "connection is closed" in str(e):
            return True  # asyncpg's words for a connection the server dropped
        if name == "InternalClientError" and "cannot switch to state" in str(e):
            return True  # asyncpg's protocol left mid-operation by a server shutting down fast
        if isinstance(e, sqlite3.OperationalError) and "database is locked" in str(e):
            return True
    return False


class SpoolingInbox:
    """An ``SmsInbox`` that spools what the engine cannot store while the database is away."""

    def __init__(self, inner: SmsInbox, spool: Spool, *, timeout_s: float, max_in_flight: int = 0) -> None:
        self.inner = inner
        self.spool = spool
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight  # 0: no limit
        self.in_flight = 0
        self.outage = False  # the database is away: set by a failed call, cleared by the drainer
        self._shed = _Throttled("overloaded: %s webhook call(s) spooled to %s (%s)")
        self._spooled = _Throttled("database unavailable: %s webhook call(s) spooled to %s (last: %s)")
        self._refused = _Throttled("spool refused %s webhook call(s) with 503 (%s; last: %s)")

    async def receive(self, sms: InboundSms) -> str | None:
        """The inline reply, or None when spooled (the reply then goes out by REST)."""
        arrived = datetime.now(UTC)
        try:
            spooled, reply = await self._engine_or_spool(
                lambda: self.inner.receive(sms), lambda: SpoolRecord.inbound(sms, arrived), sms.sender
            )
        except SpoolError:
            metrics.SMS_REPLIES.labels(sms.gateway, "refused").inc()
            raise
        metrics.SMS_REPLIES.labels(sms.gateway, "spooled" if spooled else "stored").inc()
        return None if spooled else reply

    async def status(self, report: StatusReport) -> None:
        record = SpoolRecord.report(report, datetime.now(UTC))
        try:
            spooled, _ = await self._engine_or_spool(
                lambda: self.inner.status(report), lambda: record, record.order_key
            )
        except SpoolError:
            metrics.SMS_REPORTS.labels(report.gateway, "refused").inc()
            raise
        metrics.SMS_REPORTS.labels(report.gateway, "spooled" if spooled else "stored").inc()

    async def _engine_or_spool(
        self, call: Callable[[], Awaitable[T]], record: Callable[[], SpoolRecord], key: str
    ) -> tuple[bool, T | None]:
        """(True, None) when spooled, else (False, what the engine answered). The record is
        only built when it is spooled (the hot path pays for a clock read, not a record)."""
        overloaded = 0 < self.max_in_flight <= self.in_flight
        if overloaded or self._behind_the_spool(key):
            try:
                await self.spool.append(record())
            except SpoolError:
                pass  # full, or its disk is: the database may take it after all
            else:
                if overloaded:
                    self.spool.stats.shed += 1
                    self._shed.note(log.warning, str(self.spool.path), f"{self.in_flight} in flight")
                return True, None
        self.in_flight += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                return False, await call()
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            cause = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.outage = True
        finally:
            self.in_flight -= 1
        try:
            await self.spool.append(record())
        except SpoolError as exc:
            self.spool.stats.rejected_full += 1
            self._refused.note(log.error, str(exc), cause)
            raise
        self._spooled.note(log.warning, str(self.spool.path), cause)
        return True, None

    def database_back(self) -> None:
        """The drainer stored spooled records: the database answers again. From now on only
        the citizens with a record in the spool queue behind it; the others are answered
        inline again, however long the backlog takes to drain."""
        self.outage = False

    def _behind_the_spool(self, key: str) -> bool:
        """Whether this call must queue behind the spool: all of them while the database is
        away (no call waits for a database that does not answer), else those whose key (the
        citizen) has a record waiting there."""
        if not self.spool.has_backlog():
            self.outage = False
            return False
        return self.outage or self.spool.has_backlog_for(key)


class _Throttled:
    """A log line at most every ``LOG_EVERY_S`` seconds, with how many events it stands for:
    an outage at a thousand replies a second must not write a thousand lines a second."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.count = 0
        self.last = -LOG_EVERY_S

    def note(self, emit: Callable[..., None], what: str, cause: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_S:
            emit(self.message, self.count, what, cause)
            self.last, self.count = now, 0
