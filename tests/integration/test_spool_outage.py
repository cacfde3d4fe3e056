"""Replies survive a database outage, on the real thing: the whole app (serve) in front of
PostgreSQL through a TCP proxy the test cuts, stalls and restores. During the outage the
webhooks verify, spool and answer at once; when PostgreSQL is back the drainer stores every
spooled reply once, in arrival order, and the replies go out through the (loopback) gateway."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from twilio.request_validator import RequestValidator

from callcenter import models
from callcenter.settings import Settings
from callcenter.sms.drain import Drainer
from callcenter.sms.gateways.base import InboundSms
from callcenter.sms.gateways.loopback import LoopbackGateway, read_outbox
from callcenter.sms.inbox import Inbox
from callcenter.sms.inbox_store import PgStore
from callcenter.sms.replies import ReplyOutbox
from callcenter.sms.spool import CORRUPT_FILE, Spool, SpoolRecord, encode
from callcenter.web.app import create_app
from tests.conftest import make_settings
from tests.dbproxy import DbProxy
from tests.factories import THREE_QUESTIONS, invite, make_citizens, make_inquiry

M, A, D = models.table(models.Message), models.table(models.Answer), models.table(models.Delivery)
TOKEN = "outage-test-token-0123456789abcdef"
PUBLIC = "https://sms.example.ly"
SECRET = "outage-kannel-secret"
TWILIO = "/sms/twilio/inbound"


class Killed(BaseException):
    """The drainer's process dies here (like SIGKILL: nothing after it runs)."""


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def count(engine: AsyncEngine, table: object, *where: object) -> int:
    async with engine.connect() as conn:
        stmt = select(func.count()).select_from(table).where(*where)  # type: ignore[arg-type]
        return int((await conn.execute(stmt)).scalar_one())


async def outbox(redis: aioredis.Redis) -> list[tuple[str, str]]:
    items, _ = await read_outbox(redis, "0-0", 10_000)
    return [(sms.to, sms.body) for _, sms, _ in items]


@dataclass
class Serve:
    app: FastAPI
    client: httpx.AsyncClient
    proxy: DbProxy
    settings: Settings
    pg: AsyncEngine
    redis: aioredis.Redis

    @property
    def spool(self) -> Spool:
        spool: Spool = self.app.state.inbox.spool
        return spool

    async def twilio(
        self, phone: str, body: str, sid: str, *, signature: str | None = None
    ) -> httpx.Response:
        params = {"MessageSid": sid, "From": phone, "To": "1415", "Body": body, "AccountSid": "AC" + "0" * 32}
        sign = RequestValidator(TOKEN).compute_signature(PUBLIC + TWILIO, params)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign if signature is None else signature,
        }
        return await self.client.post(TWILIO, content=urlencode(params), headers=headers)

    async def kannel(self, phone: str, text: str, kannel_id: str, *, secret: str = SECRET) -> httpx.Response:
        query = {
            "secret": secret,
            "from": phone,
            "to": "1415",
            "text": text,
            "charset": "UTF-8",
            "id": kannel_id,
        }
        return await self.client.get("/sms/kannel/inbound?" + urlencode(query))

    def spooled(self) -> list[str]:
        return [r.gateway_id or r.ref or "" for r in self.spool.read(0, max_records=10_000).records]

    async def drained(self, messages: int, replies: int) -> None:
        async def done() -> bool:
            stored = await count(self.pg, M, M.c.direction == "in")
            sent = await count(self.pg, M, M.c.direction == "out", M.c.status == "sent")
            return stored == messages and sent == replies and not self.spool.has_backlog()

        await eventually(done, f"{messages} messages stored and {replies} replies sent")


async def serving(
    pg: AsyncEngine,
    tmp_path: Path,
    redis_db: int,
    redis: aioredis.Redis,
    *,
    down_at_start: bool = False,
    **extra: object,
) -> AsyncIterator[Serve]:
    """``callcenter serve`` (the app and its lifespan: spool, drainer) on PostgreSQL via the proxy."""
    async with DbProxy(pg.url.port or 5432) as proxy:
        settings = make_settings(
            tmp_path,
            proxy.url(pg.url.render_as_string(hide_password=False)),
            redis_db,
            twilio_auth_token=TOKEN,
            public_base_url=PUBLIC,
            kannel_secret=SECRET,
            sms_webhook_db_timeout_s=2.0,
            **extra,
        )
        if down_at_start:
            await proxy.cut()
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as client:
                yield Serve(app, client, proxy, settings, pg, redis)


@pytest.fixture
async def serve(
    pg: AsyncEngine, tmp_path: Path, redis_db: int, redis: aioredis.Redis
) -> AsyncIterator[Serve]:
    async for s in serving(pg, tmp_path, redis_db, redis):
        yield s


@pytest.fixture
async def citizens(pg: AsyncEngine) -> list[str]:
    inquiry_id = await make_inquiry(pg, yaml_text=THREE_QUESTIONS)
    phones = await make_citizens(pg, 3)
    await invite(pg, inquiry_id, phones)
    return phones


async def answers(pg: AsyncEngine) -> dict[str, list[str]]:
    C = models.table(models.Citizen)
    async with pg.connect() as conn:
        rows = await conn.execute(
            select(C.c.phone, A.c.value).join(C, C.c.id == A.c.citizen_id).order_by(A.c.id)
        )
    found: dict[str, list[str]] = {}
    for phone, value in rows:
        found.setdefault(phone, []).append(value)
    return found


async def test_replies_during_an_outage_are_spooled_then_stored_in_order_and_answered(
    serve: Serve, citizens: list[str]
) -> None:
    first, second, _ = citizens
    await serve.proxy.cut()
    started = time.monotonic()
    responses = [
        await serve.twilio(first, "٤", "SM-1"),
        await serve.kannel(second, "5", "k-1"),
        await serve.twilio(first, "نعم", "SM-2"),  # the same citizen's next answer, still spooled
    ]
    assert time.monotonic() - started < 5.0  # Twilio waits 15 s at most
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "<Message>" not in responses[0].text and responses[1].content == b""  # no inline reply
    assert serve.spooled() == ["SM-1", "k-1", "SM-2"]
    assert await count(serve.pg, M) == 0

    await serve.proxy.restore()
    await serve.drained(messages=3, replies=3)
    async with serve.pg.connect() as conn:
        stored = (
            await conn.execute(select(M.c.gateway_id).where(M.c.direction == "in").order_by(M.c.id))
        ).scalars()
        order = list(stored)
    # each citizen's replies in arrival order (citizens are drained side by side)
    assert sorted(order) == ["SM-1", "SM-2", "k-1"] and order.index("SM-1") < order.index("SM-2")
    assert await answers(serve.pg) == {first: ["4", "yes"], second: ["5"]}
    sent = await outbox(serve.redis)
    to_first = [body for to, body in sent if to == first]
    assert len(sent) == 3 and "السؤال الثاني" in to_first[0] and "السؤال الثالث" in to_first[1]
    assert any(to == second and "السؤال الثاني" in body for to, body in sent)

    # the database is back and the spool empty: replies are answered inline again
    live = await serve.twilio(second, "نعم", "SM-3")
    assert "السؤال الثالث" in live.text and not serve.spool.has_backlog()


async def test_a_forged_signature_during_the_outage_is_refused_and_never_spooled(
    serve: Serve, citizens: list[str]
) -> None:
    await serve.proxy.cut()
    forged = await serve.twilio(citizens[0], "1", "SM-forged", signature="Zm9yZ2Vk")
    wrong_secret = await serve.kannel(citizens[0], "1", "k-forged", secret="guess")
    assert (forged.status_code, wrong_secret.status_code) == (403, 403)
    assert not serve.spool.has_backlog()
    await serve.proxy.restore()
    assert await count(serve.pg, M) == 0


async def test_the_same_reply_spooled_twice_is_stored_and_answered_once(
    serve: Serve, citizens: list[str]
) -> None:
    await serve.proxy.cut()
    for _ in range(2):  # the gateway retried: our first answer was lost on the way
        assert (await serve.twilio(citizens[0], "3", "SM-twice")).status_code == 200
    assert serve.spooled() == ["SM-twice", "SM-twice"]
    await serve.proxy.restore()
    await serve.drained(messages=1, replies=1)
    assert await answers(serve.pg) == {citizens[0]: ["3"]}
    assert len(await outbox(serve.redis)) == 1
    assert await count(serve.pg, M, M.c.direction == "out") == 1


async def test_a_delivery_report_during_the_outage_is_applied_later(
    serve: Serve, citizens: list[str]
) -> None:
    async with serve.pg.connect() as conn:
        delivery = (await conn.execute(select(D.c.id).order_by(D.c.id))).scalars().first()
    await serve.proxy.cut()
    dlr = await serve.client.get(
        "/sms/kannel/dlr?" + urlencode({"secret": SECRET, "ref": f"d{delivery}", "status": "1"})
    )
    assert dlr.status_code == 200 and serve.spool.has_backlog()
    await serve.proxy.restore()

    async def delivered() -> bool:
        return await count(serve.pg, D, D.c.id == delivery, D.c.status == "delivered") == 1

    async def emptied() -> bool:
        return not serve.spool.has_backlog()

    await eventually(delivered, "the delivery report")
    await eventually(emptied, "the spool emptied")


async def test_a_database_that_stops_answering_is_given_up_on_in_time(
    serve: Serve, citizens: list[str]
) -> None:
    await serve.proxy.stall()  # connections accepted by the kernel, then silence
    started = time.monotonic()
    response = await serve.twilio(citizens[0], "2", "SM-stalled")
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and elapsed < 4.0  # the webhook's timeout is 2 s here
    assert serve.spooled() == ["SM-stalled"]
    quick = time.monotonic()
    assert (await serve.twilio(citizens[1], "2", "SM-next")).status_code == 200
    assert time.monotonic() - quick < 1.0  # behind a spooled reply: no second wait on the database
    await serve.proxy.restore()
    await serve.drained(messages=2, replies=2)


async def test_a_full_spool_answers_503_with_a_clear_log(
    pg: AsyncEngine,
    tmp_path: Path,
    redis_db: int,
    redis: aioredis.Redis,
    citizens: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    one = len(encode(SpoolRecord.inbound(InboundSms("twilio", "SM-0", citizens[0], "1", "1415"))))
    async for s in serving(pg, tmp_path, redis_db, redis, sms_spool_max_bytes=one * 2 + 10):
        await s.proxy.cut()
        with caplog.at_level(logging.ERROR, logger="callcenter.sms.spooling"):
            codes = [(await s.twilio(citizens[0], "1", f"SM-{i}")).status_code for i in range(3)]
        assert codes == [200, 200, 503]
        assert s.spool.stats.rejected_full == 1
        [line] = [r.getMessage() for r in caplog.records if "spool refused" in r.getMessage()]
        assert "503" in line and "limit" in line and "ConnectionRefusedError" in line
        await s.proxy.restore()
        await s.drained(messages=2, replies=2)


async def test_serve_starts_while_the_database_is_down_and_spools_from_the_first_reply(
    pg: AsyncEngine, tmp_path: Path, redis_db: int, redis: aioredis.Redis, citizens: list[str]
) -> None:
    async for s in serving(pg, tmp_path, redis_db, redis, down_at_start=True):
        assert (await s.twilio(citizens[0], "4", "SM-early")).status_code == 200
        assert s.spooled() == ["SM-early"]
        await s.proxy.restore()
        await s.drained(messages=1, replies=1)


async def test_a_spool_torn_by_a_crash_keeps_the_records_before_the_tear(
    pg: AsyncEngine,
    tmp_path: Path,
    redis_db: int,
    redis: aioredis.Redis,
    citizens: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    whole = [SpoolRecord.inbound(InboundSms("twilio", f"SM-{i}", citizens[i], "4", "1415")) for i in range(2)]
    torn = encode(SpoolRecord.inbound(InboundSms("twilio", "SM-torn", citizens[2], "4", "1415")))[:57]
    (spool_dir / "spool.jsonl").write_bytes(b"".join(encode(r) for r in whole) + torn)  # power cut mid-write
    with caplog.at_level(logging.ERROR, logger="callcenter.sms.spool"):
        async for s in serving(pg, tmp_path, redis_db, redis):
            await s.drained(messages=2, replies=2)
    assert await answers(pg) == {citizens[0]: ["4"], citizens[1]: ["4"]}
    [aside] = [json.loads(line) for line in (spool_dir / CORRUPT_FILE).read_text().splitlines()]
    assert aside["data"].encode("latin-1") == torn and "torn" in aside["reason"]
    assert any("damaged record" in r.getMessage() for r in caplog.records)


# -- a drainer killed mid-drain -----------------------------------------------------------


async def drain_all(spool_dir: Path, pg: AsyncEngine, redis: aioredis.Redis, settings: Settings) -> Drainer:
    """A fresh process's drainer (its own spool handle and inbox), run until nothing is left."""
    spool = Spool(spool_dir, max_bytes=1 << 20)
    spool.open()
    inbox = Inbox(pg, settings)
    inbox.store = PgStore(pg, pool_size=4)  # PostgreSQL's connections are shared by every test run
    drainer = Drainer(spool, inbox, ReplyOutbox(pg, LoopbackGateway(redis)), timeout_s=15)
    try:
        while await drainer.drain_once():
            pass
        await drainer.send_queued()
        await drainer.sweep()  # as ``run`` does first: what a dead process queued and never sent
    finally:
        await inbox.aclose()
        spool.close()
    return drainer


@pytest.mark.parametrize(
    "killed_at", ["after the store, before the replies are queued", "before the offset commit"]
)
async def test_a_drainer_killed_between_store_and_offset_commit_stores_and_answers_once(
    pg: AsyncEngine,
    tmp_path: Path,
    redis_db: int,
    redis: aioredis.Redis,
    citizens: list[str],
    monkeypatch: pytest.MonkeyPatch,
    killed_at: str,
) -> None:
    settings = make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db)
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir, max_bytes=1 << 20)
    spool.open()
    bodies = ["1", "2", "3", "نعم", "لا", "نعم"]  # each citizen's first, then second answer
    records = [
        SpoolRecord.inbound(InboundSms("loopback", f"r{i}", citizens[i % 3], body))
        for i, body in enumerate(bodies)
    ]
    spool.write_lines([encode(r) for r in records])
    spool.close()

    def die(*_args: object, **_kwargs: object) -> None:
        raise Killed

    if killed_at.startswith("after the store"):
        monkeypatch.setattr(ReplyOutbox, "queue", die)
    else:
        monkeypatch.setattr(Spool, "commit", die)
    with pytest.raises(Killed):
        await drain_all(spool_dir, pg, redis, settings)
    assert await count(pg, M, M.c.direction == "in") == 6  # stored, offset not moved
    monkeypatch.undo()

    await drain_all(spool_dir, pg, redis, settings)  # the restarted process replays the batch
    assert await count(pg, M, M.c.direction == "in") == 6
    assert await answers(pg) == {
        citizens[0]: ["1", "yes"],
        citizens[1]: ["2", "no"],
        citizens[2]: ["3", "yes"],
    }
    assert await count(pg, M, M.c.direction == "out", M.c.status == "sent") == 6
    assert len(await outbox(redis)) == 6  # every reply sent, none twice
    reopened = Spool(spool_dir, max_bytes=1 << 20)
    reopened.open()
    assert not reopened.has_backlog()
    reopened.close()


DRAIN_SCRIPT = """
import asyncio, sys
from pathlib import Path
import redis.asyncio as aioredis
from callcenter.db import make_engine
from callcenter.settings import Settings
from callcenter.sms.drain import Drainer
from callcenter.sms.gateways.loopback import LoopbackGateway
from callcenter.sms.inbox import Inbox
from callcenter.sms.inbox_store import PgStore
from callcenter.sms.replies import ReplyOutbox
from callcenter.sms.spool import Spool

async def main(spool_dir, database_url, redis_url):
    settings = Settings(_env_file=None, env="test", database_url=database_url, redis_url=redis_url)
    engine = make_engine(settings)
    spool = Spool(Path(spool_dir), max_bytes=1 << 24)
    spool.open()
    replies = ReplyOutbox(engine, LoopbackGateway(aioredis.from_url(redis_url)))
    inbox = Inbox(engine, settings)
    inbox.store = PgStore(engine, pool_size=2)
    drainer = Drainer(spool, inbox, replies, timeout_s=15, batch_size=20)
    print("draining", flush=True)
    while await drainer.drain_once():
        pass
    await drainer.send_queued()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_drainer_sigkilled_mid_drain_loses_nothing_and_stores_nothing_twice(
    pg: AsyncEngine, tmp_path: Path, redis_db: int, redis: aioredis.Redis
) -> None:
    inquiry_id = await make_inquiry(pg, yaml_text=THREE_QUESTIONS)
    phones = await make_citizens(pg, 150)
    await invite(pg, inquiry_id, phones)
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir, max_bytes=1 << 24)
    spool.open()
    # each citizen answers twice: a replayed first answer taken for the second would show
    lines = [
        encode(SpoolRecord.inbound(InboundSms("loopback", f"{n}-{p}", p, body)))
        for n, body in ((1, "4"), (2, "نعم"))
        for p in phones
    ]
    spool.write_lines(lines)
    spool.close()
    settings = make_settings(tmp_path, pg.url.render_as_string(hide_password=False), redis_db)
    redis_url = f"{settings.redis_url}"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRAIN_SCRIPT, str(spool_dir), settings.database_url or "", redis_url],
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        async def some_stored() -> bool:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            return await count(pg, M, M.c.direction == "in") >= 60

        await eventually(some_stored, "the drainer to store some replies", timeout_s=60)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    stored_before = await count(pg, M, M.c.direction == "in")
    assert stored_before < 300, "killed too late to mean anything"

    await drain_all(spool_dir, pg, redis, settings)
    assert await count(pg, M, M.c.direction == "in") == 300
    got = await answers(pg)
    assert got == {p: ["4", "yes"] for p in phones}
    # every reply is queued once; those the killed process queued were sent by the next
    # process's first sweep, those it had claimed wait for the sweep after STUCK_AFTER
    assert await count(pg, M, M.c.direction == "out") == 300
    assert await count(pg, M, M.c.direction == "out", M.c.status.not_in(("sent", "sending"))) == 0


async def test_the_reconciler_and_the_drainer_recovering_one_message_answer_it_once(
    pg: AsyncEngine, tmp_path: Path, redis_db: int, redis: aioredis.Redis, citizens: list[str]
) -> None:
    """A message stored but never processed (the database went away between the two) is met
    by the worker's reconciler and by the drainer replaying the spool at the same time."""
    from callcenter.jobs import Runtime, reconcile_once

    settings = make_settings(
        tmp_path, pg.url.render_as_string(hide_password=False), redis_db, reconcile_after_s=0
    )
    sms = InboundSms("loopback", "stuck-1", citizens[0], "5")
    rt = await Runtime.start(settings, gateway=LoopbackGateway(redis))
    rt.inbox.store = PgStore(rt.engine, pool_size=4)  # PostgreSQL's connections are shared
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.open()
    try:
        await rt.inbox.store.save(sms, citizens[0])  # stored; the step never ran
        spool.write_lines([encode(SpoolRecord.inbound(sms))])  # and spooled by the webhook
        drainer = Drainer(spool, rt.inbox, ReplyOutbox(pg, LoopbackGateway(redis)), timeout_s=15)
        await asyncio.sleep(0.01)
        await asyncio.gather(reconcile_once(rt), drainer.drain_once())
        await drainer.send_queued()
    finally:
        spool.close()
        await rt.close()
    assert await answers(pg) == {citizens[0]: ["5"]}
    assert await count(pg, M, M.c.direction == "out") == 1
    assert len(await outbox(redis)) == 1


async def test_a_citizens_queued_replies_go_out_in_the_order_of_their_messages(
    engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    """The first message was processed last, so its row sits after the second's in the table
    (an UPDATE writes a new row version): the replies still go out first, then second — the
    citizen never reads the third question before the second."""
    now = datetime.now(UTC)
    rows = [
        {"direction": "in", "gateway": "loopback", "gateway_id": f"order-{i}", "phone": "+218910000009",
         "body": str(i), "reply": f"question {i + 2}", "status": "received", "created_at": now}
        for i in range(2)
    ]  # fmt: skip
    async with engine.begin() as conn:
        ids = list((await conn.execute(insert(M).returning(M.c.id), rows)).scalars())
    for message_id in reversed(ids):  # processed out of order
        async with engine.begin() as conn:
            await conn.execute(update(M).where(M.c.id == message_id).values(status="processed"))
    outbox_ = ReplyOutbox(engine, LoopbackGateway(redis))

    queued = await outbox_.queue([("loopback", "order-0"), ("loopback", "order-1")])
    await outbox_.send(queued)

    assert [body for _, body in await outbox(redis)] == ["question 2", "question 3"]
    # queued once: the same messages again (a drain replayed) queue nothing more
    assert await outbox_.queue([("loopback", "order-0"), ("loopback", "order-1")]) == []


async def test_replies_are_found_by_gateway_id_through_the_unique_index_whatever_the_statistics(
    pg: AsyncEngine,
) -> None:
    """A soak's drain crawled at 30 records/s: its IN list was planned on statistics taken when
    the table was small, and read every row of the gateway for each batch. The lookup now is
    one index scan per id, which this plan shows (the soak's 800,000 rows and never-analysed
    table are not rebuilt here: a small table is planned well either way)."""
    from sqlalchemy import text

    from callcenter.sms.replies import BY_GATEWAY_ID

    now = datetime.now(UTC)
    rows = [
        {"direction": "in", "gateway": "twilio", "gateway_id": f"SM{i:08d}", "phone": "+218910000009",
         "body": "1", "status": "processed", "created_at": now}
        for i in range(20_000)
    ]  # fmt: skip
    explain = "EXPLAIN (FORMAT JSON) " + BY_GATEWAY_ID.replace(":ids", "'{SM00000001,SM00000002}'")
    before = [{**row, "gateway": "kannel"} for row in rows[:3000]] + rows[:1]
    async with pg.begin() as conn:
        await conn.execute(insert(M), before)
        await conn.execute(text("ANALYZE message"))  # statistics from when twilio was rare
        await conn.execute(insert(M), rows[1:])
        plan = (await conn.execute(text(explain.replace(":gateway", "'twilio'")))).scalar_one()
    text_plan = json.dumps(plan)
    assert "Index Scan" in text_plan and "gateway_id" in text_plan and "Seq Scan" not in text_plan
    assert "Hash Join" not in text_plan and "Bitmap" not in text_plan
    outbox_ = ReplyOutbox(pg, LoopbackGateway(aioredis.Redis()))
    async with pg.connect() as conn:
        found = await outbox_._ids_of(conn, "twilio", ["SM00000001", "SM00019999", "SM-none"])
    assert len(found) == 2
