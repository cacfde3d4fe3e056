"""The loopback gateway against the real Redis on 127.0.0.1:6379 (db 15, flushed around)."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from callcenter.settings import Settings
from callcenter.sms.gateways import make_gateway
from callcenter.sms.gateways.base import OutboundSms
from callcenter.sms.gateways.loopback import LoopbackGateway, read_outbox
from callcenter.sms.gateways.twilio import TwilioGateway

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 15
ARABIC = "هل توافق على المقترح؟ أرسل نعم أو لا 🙂"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"needs a Redis server on {REDIS_HOST}:{REDIS_PORT} ({exc})")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def batch(n: int, body: str = ARABIC) -> list[OutboundSms]:
    return [OutboundSms(to=f"+2189100{i:05d}", body=body, ref=f"d{i}") for i in range(n)]


async def test_send_many_writes_each_message_to_the_stream(redis: Redis) -> None:
    gateway = LoopbackGateway(redis)
    assert gateway.name == "loopback"
    messages = batch(3)
    results = await gateway.send_many(messages)

    assert [r.ref for r in results] == ["d0", "d1", "d2"]
    assert all(r.ok and not r.temporary for r in results)
    ids = [r.gateway_id for r in results]
    assert all(i is not None and re.fullmatch(r"lb-[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == 3

    entries = await redis.xrange("loopback:outbox")
    assert len(entries) == 3
    fields = entries[0][1]
    assert fields == {
        b"to": b"+218910000000",
        b"body": ARABIC.encode(),
        b"ref": b"d0",
        b"id": ids[0].encode() if ids[0] else b"",
    }
    await gateway.aclose()


async def test_empty_batch(redis: Redis) -> None:
    assert await LoopbackGateway(redis).send_many([]) == []
    assert await redis.exists("loopback:outbox") == 0


async def test_read_outbox_round_trip_and_continue(redis: Redis) -> None:
    gateway = LoopbackGateway(redis)
    results = await gateway.send_many(batch(5))

    items, last = await read_outbox(redis, "0-0", 3, None)
    assert [sms.ref for _, sms, _ in items] == ["d0", "d1", "d2"]
    assert items[0][1] == OutboundSms(to="+218910000000", body=ARABIC, ref="d0")
    assert [gid for _, _, gid in items] == [r.gateway_id for r in results[:3]]
    assert last == items[-1][0]

    rest, last2 = await read_outbox(redis, last, 100, None)
    assert [sms.ref for _, sms, _ in rest] == ["d3", "d4"]

    nothing, last3 = await read_outbox(redis, last2, 100, 20)  # blocks 20 ms, then gives up
    assert nothing == []
    assert last3 == last2


async def test_read_outbox_with_decoded_responses_and_custom_stream(redis: Redis) -> None:
    decoded = Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, decode_responses=True)
    try:
        gateway = LoopbackGateway(decoded, stream="test:outbox")
        await gateway.send_many(batch(2, body="مرحبا"))
        items, last = await read_outbox(decoded, "0-0", 10, None, stream="test:outbox")
        assert [sms.body for _, sms, _ in items] == ["مرحبا", "مرحبا"]
        assert isinstance(last, str)
        assert (await read_outbox(decoded, "0-0", 10, None))[0] == []  # default stream empty
    finally:
        await decoded.aclose()


async def test_read_outbox_resp3(redis: Redis) -> None:
    resp3 = Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, protocol=3)
    try:
        await LoopbackGateway(resp3).send_many(batch(2))
        items, _ = await read_outbox(resp3, "0-0", 10, None)
        assert [sms.ref for _, sms, _ in items] == ["d0", "d1"]
    finally:
        await resp3.aclose()


async def test_stream_is_capped(redis: Redis) -> None:
    gateway = LoopbackGateway(redis, maxlen=10)
    await gateway.send_many(batch(2_000))
    # Approximate trimming drops whole radix-tree nodes (100 entries by default).
    assert await redis.xlen("loopback:outbox") < 500


async def test_per_message_redis_error_is_temporary(redis: Redis) -> None:
    await redis.set("loopback:outbox", "not a stream")
    results = await LoopbackGateway(redis).send_many(batch(2))
    assert all(not r.ok and r.temporary for r in results)
    assert all(r.error is not None and "WRONGTYPE" in r.error for r in results)


async def test_connection_error_makes_every_result_temporary() -> None:
    dead = Redis(host="127.0.0.1", port=closed_port(), db=REDIS_DB, socket_connect_timeout=1)
    try:
        results = await LoopbackGateway(dead).send_many(batch(4))
    finally:
        await dead.aclose()
    assert [r.ref for r in results] == ["d0", "d1", "d2", "d3"]
    assert all(not r.ok and r.temporary and r.gateway_id is None for r in results)
    assert all(r.error is not None and "redis: unavailable" in r.error for r in results)


async def test_unencodable_message_is_permanent_and_alone(redis: Redis) -> None:
    messages = [*batch(1), OutboundSms(to="+218910000009", body="bad \ud800", ref="bad"), *batch(1)]
    results = await LoopbackGateway(redis).send_many(messages)
    assert [r.ref for r in results] == ["d0", "bad", "d0"]
    assert results[0].ok and results[2].ok
    assert not results[1].ok and not results[1].temporary
    assert await redis.xlen("loopback:outbox") == 2


async def test_connection_error_keeps_permanent_errors() -> None:
    dead = Redis(host="127.0.0.1", port=closed_port(), db=REDIS_DB, socket_connect_timeout=1)
    messages = [OutboundSms(to="+218910000009", body="\udfff", ref="bad"), *batch(1)]
    try:
        results = await LoopbackGateway(dead).send_many(messages)
    finally:
        await dead.aclose()
    assert [(r.ref, r.temporary) for r in results] == [("bad", False), ("d0", True)]


async def test_make_gateway_picks_by_settings(redis: Redis) -> None:
    loopback = make_gateway(Settings(_env_file=None, sms_gateway="loopback"), redis)
    assert isinstance(loopback, LoopbackGateway)
    twilio = make_gateway(Settings(_env_file=None, sms_gateway="twilio"), redis)
    assert isinstance(twilio, TwilioGateway)
    await twilio.aclose()


async def test_hundred_thousand_messages_all_reach_the_outbox(redis: Redis) -> None:
    """One call hands 100,000 messages over, none lost. (How fast is measured by
    scripts/bench/sms_fanout.py: a timed assertion here failed on a loaded machine.)"""
    gateway = LoopbackGateway(redis)
    messages = batch(100_000, body="هل أنت راضٍ عن الخدمة؟ أرسل 1 لنعم أو 2 لا")
    results = await gateway.send_many(messages)
    assert len(results) == 100_000
    assert all(r.ok for r in results)
    assert await redis.xlen("loopback:outbox") == 100_000
