"""Which errors mean "the database is away", and what the webhooks answer then: the signature
is checked first, a spooled reply gets an empty answer in time, a full spool a 503."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc

from callcenter.sms import kannel_webhooks, webhooks
from callcenter.sms.gateways.base import InboundSms, StatusReport
from callcenter.sms.spool import Spool, SpoolRecord, encode
from callcenter.sms.spooling import SpoolingInbox, is_database_unavailable
from tests.unit.test_sms_webhooks import INBOUND, STATUS, inbound, make_settings, post_signed, twiml_messages

KANNEL_SECRET = "kannel-test-secret"


def wrapped(error: BaseException) -> BaseException:
    """``error`` as SQLAlchemy raises it: its DBAPI error around the driver's, ``from`` both."""
    try:
        try:
            raise error
        except BaseException as driver:
            raise sa_exc.DBAPIError("SELECT 1", {}, driver) from driver
    except sa_exc.DBAPIError as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
        OSError("Multiple exceptions: [Errno 111] Connect call failed, [Errno 99] Cannot assign"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.DiskFullError("could not extend file"),
        asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation is in progress"),
        wrapped(asyncpg.exceptions.InterfaceError("connection is closed")),
        wrapped(ConnectionRefusedError(111, "refused")),
        sa_exc.TimeoutError("QueuePool limit of size 20 overflow 0 reached, connection timed out"),
        wrapped(sqlite3.OperationalError("database is locked")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_these_mean_the_database_is_away(error: BaseException) -> None:
    assert is_database_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.UndefinedTableError('relation "message" does not exist'),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
        wrapped(asyncpg.exceptions.NotNullViolationError("null value")),
        wrapped(sqlite3.OperationalError("no such table: message")),
        sa_exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")),
        ValueError("a bug"),
        RuntimeError("session kept changing"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_these_are_bugs_not_outages(error: BaseException) -> None:
    assert not is_database_unavailable(error)


def test_a_connection_error_merely_handled_on_the_way_is_no_cause() -> None:
    try:
        try:
            raise ConnectionResetError()
        except ConnectionResetError:
            raise ValueError("a bug while handling it") from None
    except ValueError as error:
        assert not is_database_unavailable(error)


# -- the webhooks in front of an inbox whose database is away -----------------------------


@dataclass
class AwayInbox:
    """The engine's inbox while PostgreSQL refuses connections (or hangs, with ``hang``)."""

    hang: bool = False
    up: bool = False
    calls: list[InboundSms | StatusReport] = field(default_factory=list)

    async def receive(self, sms: InboundSms) -> str | None:
        self.calls.append(sms)
        await self._database()
        return "the next question"

    async def status(self, report: StatusReport) -> None:
        self.calls.append(report)
        await self._database()

    async def _database(self) -> None:
        if self.up:
            return
        if self.hang:
            await asyncio.sleep(3600)
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


@dataclass
class Harness:
    client: httpx.AsyncClient
    inner: AwayInbox
    spool: Spool
    webhooks: SpoolingInbox

    def spooled(self) -> list[str]:
        return [r.gateway_id or r.ref or "" for r in self.spool.read(0, max_records=1000).records]


async def harness(tmp_path: Path, *, max_bytes: int = 1 << 20, hang: bool = False) -> AsyncIterator[Harness]:
    settings = make_settings(kannel_secret=KANNEL_SECRET)
    app = FastAPI()
    app.include_router(webhooks.make_router(settings))
    app.include_router(kannel_webhooks.make_router(settings))
    spool = Spool(tmp_path / "spool", max_bytes=max_bytes)
    spool.open()
    inner = AwayInbox(hang=hang)
    app.state.inbox = SpoolingInbox(inner, spool, timeout_s=0.5)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as client:
        yield Harness(client, inner, spool, app.state.inbox)
    spool.close()


@pytest.fixture
async def away(tmp_path: Path) -> AsyncIterator[Harness]:
    async for h in harness(tmp_path):
        yield h


async def test_a_reply_during_the_outage_gets_empty_twiml_and_is_spooled(away: Harness) -> None:
    response = await post_signed(away.client, INBOUND, inbound("٤"))
    assert response.status_code == 200 and twiml_messages(response) == []
    assert away.spooled() == ["SM" + "a" * 32]
    [rec] = away.spool.read(0).records
    assert (rec.kind, rec.gateway, rec.sender, rec.body, rec.to) == (
        "sms",
        "twilio",
        "+218910000001",
        "٤",
        "1415",
    )


async def test_a_forged_signature_is_refused_during_the_outage_and_never_spooled(away: Harness) -> None:
    forged = await post_signed(away.client, INBOUND, inbound(), signature="bm90IGEgc2lnbmF0dXJl")
    unsigned = await away.client.post(INBOUND, content=urlencode(inbound()))
    status = await post_signed(
        away.client, STATUS, {"MessageSid": "SM1", "MessageStatus": "delivered"}, signature="x"
    )
    wrong_secret = await away.client.get(
        "/sms/kannel/inbound?" + urlencode({"secret": "guess", "from": "+2189", "text": "1"})
    )
    assert [r.status_code for r in (forged, unsigned, status, wrong_secret)] == [403, 403, 403, 403]
    assert away.inner.calls == [] and away.spooled() == [] and not away.spool.has_backlog()


async def test_once_spooled_the_next_replies_queue_behind_without_asking_the_database(away: Harness) -> None:
    await post_signed(away.client, INBOUND, inbound("1", MessageSid="SM1"))
    away.inner.up = True  # the database is back, but the first reply is not stored yet
    second = await post_signed(away.client, INBOUND, inbound("2", MessageSid="SM2"))
    assert twiml_messages(second) == []  # no inline answer ahead of the first reply's
    assert away.spooled() == ["SM1", "SM2"] and len(away.inner.calls) == 1


async def test_once_the_drainer_reaches_the_database_only_citizens_with_a_spooled_reply_queue(
    away: Harness,
) -> None:
    """During the outage every reply is spooled without asking the database; once the drainer
    has stored records (the database answers), the others are answered inline again while the
    first citizen's next reply still queues behind the one waiting in the spool."""
    await post_signed(away.client, INBOUND, inbound("1", MessageSid="SM1"))
    away.inner.up = True
    other = await post_signed(away.client, INBOUND, inbound("1", MessageSid="SM2", From="+218910000002"))
    assert twiml_messages(other) == []  # the database is not known to be back yet

    away.webhooks.database_back()  # what the drainer says after a batch it stored

    third = await post_signed(away.client, INBOUND, inbound("1", MessageSid="SM3", From="+218910000003"))
    first_again = await post_signed(away.client, INBOUND, inbound("2", MessageSid="SM4"))
    assert twiml_messages(third) == ["the next question"]
    assert twiml_messages(first_again) == []  # behind its own first reply
    assert away.spooled() == ["SM1", "SM2", "SM4"]


async def test_kannel_replies_and_delivery_reports_are_spooled_too(away: Harness) -> None:
    query = {"secret": KANNEL_SECRET, "from": "+218910000002", "to": "1415", "text": "نعم", "id": "k-1"}
    mo = await away.client.get("/sms/kannel/inbound?" + urlencode(query))
    assert mo.status_code == 200 and mo.content == b""  # no SMS back now: it goes by sendsms later
    dlr = await away.client.get(
        "/sms/kannel/dlr?" + urlencode({"secret": KANNEL_SECRET, "ref": "d7", "status": "1"})
    )
    twilio = await post_signed(away.client, STATUS, {"MessageSid": "SM9", "MessageStatus": "delivered"})
    assert (dlr.status_code, twilio.status_code) == (200, 204)
    kinds = [(r.kind, r.gateway, r.state) for r in away.spool.read(0).records]
    assert kinds == [
        ("sms", "kannel", None),
        ("status", "kannel", "delivered"),
        ("status", "twilio", "delivered"),
    ]


async def test_a_hanging_database_is_given_up_on_in_time(tmp_path: Path) -> None:
    async for h in harness(tmp_path, hang=True):
        started = asyncio.get_running_loop().time()
        response = await post_signed(h.client, INBOUND, inbound())
        assert response.status_code == 200 and twiml_messages(response) == []
        assert asyncio.get_running_loop().time() - started < 2.0  # the timeout is 0.5 s here
        assert h.spooled() == ["SM" + "a" * 32]


async def test_a_full_spool_answers_503_and_says_so_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one = len(encode(SpoolRecord.inbound(InboundSms("twilio", "SM0", "+218910000001", "1", "1415"))))
    async for h in harness(tmp_path, max_bytes=one * 2):
        with caplog.at_level(logging.ERROR):
            codes = [
                (await post_signed(h.client, INBOUND, inbound("1", MessageSid=f"SM{i}"))).status_code
                for i in range(4)
            ]
            kannel = await h.client.get(
                "/sms/kannel/inbound?"
                + urlencode({"secret": KANNEL_SECRET, "from": "+2189", "text": "1", "id": "k"})
            )
        assert codes[:1] == [200] and codes[-1] == 503 and kannel.status_code == 503
        assert h.spool.stats.rejected_full == 3  # webhook calls answered 503
        assert any("spool refused" in r.getMessage() and "limit" in r.getMessage() for r in caplog.records)


async def test_past_max_in_flight_a_reply_is_spooled_at_once_instead_of_waiting(tmp_path: Path) -> None:
    """Overload: with the database slow and ``max_in_flight`` calls already waiting on it, the
    next reply is spooled in milliseconds (empty TwiML) rather than queueing until the gateway
    gives up; the ones in flight still get their inline reply."""
    settings = make_settings(kannel_secret=KANNEL_SECRET)
    app = FastAPI()
    app.include_router(webhooks.make_router(settings))
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.open()
    release = asyncio.Event()

    class SlowInbox(AwayInbox):
        async def _database(self) -> None:
            await release.wait()

    inner = SlowInbox()
    app.state.inbox = SpoolingInbox(inner, spool, timeout_s=30, max_in_flight=2)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as client:
            first = [
                asyncio.create_task(
                    post_signed(
                        client, INBOUND, inbound("1", MessageSid=f"SM{n:032d}", From=f"+21891000000{n + 2}")
                    )
                )
                for n in range(2)
            ]
            while len(inner.calls) < 2:
                await asyncio.sleep(0.01)
            started = time.perf_counter()
            shed = await post_signed(client, INBOUND, inbound("2", MessageSid="SM" + "9" * 32))
            assert time.perf_counter() - started < 1.0
            assert shed.status_code == 200 and twiml_messages(shed) == []
            assert [r.gateway_id for r in spool.read(0).records] == ["SM" + "9" * 32]
            assert spool.stats.shed == 1 and len(inner.calls) == 2  # never reached the database
            release.set()
            for done in await asyncio.gather(*first):
                assert done.status_code == 200 and twiml_messages(done) == ["the next question"]
    finally:
        spool.close()


async def test_after_a_shed_only_that_citizens_next_reply_queues_behind_the_spool(tmp_path: Path) -> None:
    """An overload spools one citizen's reply: their next one waits behind it (order), while
    another citizen is answered inline as usual — one burst does not hand the line to the
    drainer."""
    settings = make_settings(kannel_secret=KANNEL_SECRET)
    app = FastAPI()
    app.include_router(webhooks.make_router(settings))
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.open()
    inner = AwayInbox(up=True)
    inbox = SpoolingInbox(inner, spool, timeout_s=5, max_in_flight=1)
    app.state.inbox = inbox
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as client:
            inbox.in_flight = 1  # the database is busy with one call already
            shed = await post_signed(client, INBOUND, inbound("1", MessageSid="SM" + "1" * 32))
            inbox.in_flight = 0
            assert twiml_messages(shed) == [] and not inbox.outage
            again = await post_signed(client, INBOUND, inbound("2", MessageSid="SM" + "2" * 32))
            other = await post_signed(
                client, INBOUND, inbound("3", MessageSid="SM" + "3" * 32, From="+218910000099")
            )
        assert twiml_messages(again) == []  # behind their first reply
        assert twiml_messages(other) == ["the next question"]  # inline
        assert [r.gateway_id for r in spool.read(0).records] == ["SM" + "1" * 32, "SM" + "2" * 32]
        assert [c.gateway_id for c in inner.calls] == ["SM" + "3" * 32]  # type: ignore[union-attr]
    finally:
        spool.close()


async def test_the_waiting_index_sees_another_processs_appends_and_drains(tmp_path: Path) -> None:
    """Two serve processes on one spool directory: a citizen spooled by one is behind the
    spool for the other too, until the drain commits past their record."""
    mine, theirs = Spool(tmp_path / "spool", max_bytes=1 << 20), Spool(tmp_path / "spool", max_bytes=1 << 20)
    mine.open()
    theirs.open()
    try:
        sms = InboundSms("twilio", "SM" + "5" * 32, "+218910000005", "1", "1415")
        await theirs.append(SpoolRecord.inbound(sms))
        assert mine.has_backlog_for("+218910000005") and not mine.has_backlog_for("+218910000006")
        theirs.commit(theirs.size())  # drained there: the file is emptied
        assert not mine.has_backlog_for("+218910000005")
        await theirs.append(SpoolRecord.inbound(sms))
        other = InboundSms("twilio", "SM" + "6" * 32, "+218910000006", "1", "1415")
        await theirs.append(SpoolRecord.inbound(other))
        first, _ = theirs.read(0).entries
        theirs.commit(first.end)  # past the first citizen's record, not the second's
        assert mine.has_backlog_for("+218910000006") and not mine.has_backlog_for("+218910000005")
    finally:
        mine.close()
        theirs.close()
