"""The live-update bus on the real Redis, and ``GET /live`` over a real HTTP connection (uvicorn
on a local port, httpx streaming), the way a browser's EventSource meets it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pydantic
import pytest
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.campaigns.progress import (
    ProgressPublisher,
    RecentProgress,
    publish_progress,
    visible_campaign,
)
from callcenter.live import (
    CAMPAIGN_PROGRESS,
    HEARTBEAT,
    Event,
    Heartbeat,
    UnknownEventKind,
    publish,
    stream_key,
    subscribe,
)
from callcenter.settings import Settings
from callcenter.web.pages import live
from tests.integration.test_campaign_pages import municipality, new_campaign, staff

D = models.table(models.Delivery)


def progress_data(campaign_id: int = 1, sent: int = 0) -> dict[str, Any]:
    counts = {"planned": 10, "sent": sent, "delivered": 0, "replied": 0, "completed": 0, "opted_out": 0}
    return {
        "campaign_id": campaign_id,
        "status": "running",
        "counts": counts | {"failed": 0, "remaining": 10 - sent},
        "reason": {"code": "rate_limited", "params": {"rate": "5"}},
        "at": datetime.now(UTC),
    }


async def take(items: AsyncIterator[Event | Heartbeat], n: int, *, timeout: float = 5.0) -> list[Event]:
    """The next ``n`` events (heartbeats skipped), then the subscription is closed."""
    got: list[Event] = []
    try:
        async with asyncio.timeout(timeout):
            async for item in items:
                if isinstance(item, Event):
                    got.append(item)
                    if len(got) == n:
                        break
    finally:
        await items.aclose()  # type: ignore[attr-defined]
    return got


# -- the bus ------------------------------------------------------------------------------


async def test_a_subscriber_from_zero_gets_every_event_in_order(redis: aioredis.Redis) -> None:
    first = await publish(redis, "campaign:1", CAMPAIGN_PROGRESS, progress_data(sent=1))
    second = await publish(redis, "campaign:1", CAMPAIGN_PROGRESS, progress_data(sent=2))
    await publish(redis, "campaign:2", CAMPAIGN_PROGRESS, progress_data(2))  # another topic
    got = await take(subscribe(redis, "campaign:1", after="0"), 2)
    assert [e.id for e in got] == [first, second]
    assert [e.kind for e in got] == [CAMPAIGN_PROGRESS] * 2
    assert [e.data["counts"]["sent"] for e in got] == [1, 2]
    assert got[0].data["reason"] == {"code": "rate_limited", "params": {"rate": "5"}}
    assert isinstance(got[0].data["at"], str)  # JSON all the way


async def test_resuming_from_an_event_id_gets_only_later_events(redis: aioredis.Redis) -> None:
    ids = [await publish(redis, "campaign:1", CAMPAIGN_PROGRESS, progress_data(sent=n)) for n in range(4)]
    got = await take(subscribe(redis, "campaign:1", after=ids[1]), 2)
    assert [e.id for e in got] == ids[2:]


async def test_every_subscriber_gets_each_event(redis: aioredis.Redis) -> None:
    one = asyncio.create_task(take(subscribe(redis, "campaign:7", heartbeat=0.1), 1))
    two = asyncio.create_task(take(subscribe(redis, "campaign:7", heartbeat=0.1), 1))
    await asyncio.sleep(0.3)  # both are listening (from "now")
    sent = await publish(redis, "campaign:7", CAMPAIGN_PROGRESS, progress_data(7, sent=3))
    first, second = await asyncio.gather(one, two)
    assert [e.id for e in first] == [sent] == [e.id for e in second]


async def test_a_quiet_topic_yields_heartbeats(redis: aioredis.Redis) -> None:
    items = subscribe(redis, "campaign:9", heartbeat=0.1)
    try:
        async with asyncio.timeout(2):
            assert await anext(items) is HEARTBEAT
            assert await anext(items) is HEARTBEAT
    finally:
        await items.aclose()  # type: ignore[attr-defined]


async def test_only_declared_kinds_with_their_shape_are_published(redis: aioredis.Redis) -> None:
    with pytest.raises(UnknownEventKind):
        await publish(redis, "campaign:1", "campaign.exploded", {})
    with pytest.raises(pydantic.ValidationError):
        await publish(redis, "campaign:1", CAMPAIGN_PROGRESS, progress_data() | {"extra": 1})
    bad_reason = progress_data() | {"reason": {"code": "tired", "params": {}}}
    with pytest.raises(pydantic.ValidationError):
        await publish(redis, "campaign:1", CAMPAIGN_PROGRESS, bad_reason)
    assert await redis.xlen(stream_key("campaign:1")) == 0


async def test_a_topic_keeps_about_the_last_thousand_events_and_expires(redis: aioredis.Redis) -> None:
    for n in range(1300):
        await publish(redis, "campaign:3", CAMPAIGN_PROGRESS, progress_data(3, sent=n % 10))
    assert 1000 <= await redis.xlen(stream_key("campaign:3")) < 1300
    assert 0 < await redis.ttl(stream_key("campaign:3")) <= 7 * 24 * 3600


async def test_the_worker_publishes_at_most_every_half_second_and_always_on_a_change(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    campaign_id = await new_campaign(engine, redis)
    publisher = ProgressPublisher(engine, redis, settings, every=0.5)
    other_worker = ProgressPublisher(engine, redis, settings, every=0.5)
    for _ in range(20):
        await publisher.chunk_recorded(campaign_id)
        await other_worker.chunk_recorded(campaign_id)
    await publisher.idle()  # a chunk's publish runs beside the lane
    await other_worker.idle()
    assert await redis.xlen(stream_key(f"campaign:{campaign_id}")) == 1  # one turn for both workers
    await publisher.changed(campaign_id)
    assert await redis.xlen(stream_key(f"campaign:{campaign_id}")) == 2
    await asyncio.sleep(0.55)
    await other_worker.chunk_recorded(campaign_id)
    await other_worker.idle()
    events = await redis.xrange(stream_key(f"campaign:{campaign_id}"))
    assert len(events) == 3


async def test_viewers_share_a_progress_read_until_the_next_event(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    campaign_id = await new_campaign(engine, redis)
    row = await visible_campaign(engine, campaign_id, frozenset())
    recent = RecentProgress(fresh_s=30)
    before = await recent.get(engine, redis, settings, row)
    async with engine.begin() as conn:
        await conn.execute(update(D).where(D.c.campaign_id == campaign_id).values(status="failed"))
    again = await recent.get(engine, redis, settings, row)
    assert again is before  # no event since: the same read
    await publish_progress(engine, redis, settings, campaign_id)
    after = await recent.get(engine, redis, settings, row)
    assert after is not None and after.counts.failed == 3
    stale = RecentProgress(fresh_s=0)
    assert (await stale.get(engine, redis, settings, row)) is not (
        await stale.get(engine, redis, settings, row)
    )


# -- GET /live over HTTP ------------------------------------------------------------------


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The (already started) app on a local port, as ``serve`` runs it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", timeout_graceful_shutdown=2)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def cookie_of(app: FastAPI, engine: AsyncEngine, role: str, **kw: Any) -> dict[str, str]:
    client, _ = await staff(app, engine, role, **kw)
    token = client.http.cookies.get("cc_session")
    await client.http.aclose()
    return {"Cookie": f"cc_session={token}"}


async def messages(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """SSE messages as dicts of their fields (a comment line comes as ``{"comment": ...}``)."""
    message: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if message:
                yield message
            message = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            message[name] = value.removeprefix(" ")


async def first(
    found: AsyncIterator[dict[str, str]], n: int, *, skip_comments: bool = True
) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    async with asyncio.timeout(10):
        async for message in found:
            if skip_comments and "comment" in message:
                continue
            got.append(message)
            if len(got) == n:
                return got
    return got


async def blocked_readers(redis: aioredis.Redis, db: int) -> int:
    clients = await redis.client_list()
    return sum(
        1 for c in clients if c.get("cmd") == "xread" and "b" in c.get("flags", "") and int(c["db"]) == db
    )


async def test_live_progress_reaches_a_browser_and_resumes_after_the_last_event_id(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, settings: Settings, redis_db: int
) -> None:
    campaign_id = await new_campaign(engine, redis)
    headers = await cookie_of(web, engine, "analyst")
    url = f"/live?topic=campaign:{campaign_id}"
    async with serving(web) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        async with http.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"].startswith("no-cache")
            found = messages(response)
            retry, snapshot = await first(found, 2)
            assert retry == {"retry": "3000"}
            assert snapshot["event"] == CAMPAIGN_PROGRESS and "id" not in snapshot  # nothing published yet
            assert '"planned":3' in snapshot["data"] and '"status":"running"' in snapshot["data"]
            published = await publish_progress(engine, web.state.redis, settings, campaign_id)
            (event,) = await first(found, 1)
            assert event["id"] == published and event["event"] == CAMPAIGN_PROGRESS
            assert await blocked_readers(redis, redis_db) == 1
        # the browser went away: its reader stops (no Redis connection left blocked)
        async with asyncio.timeout(5):
            while await blocked_readers(redis, redis_db):
                await asyncio.sleep(0.05)

        later = [await publish_progress(engine, redis, settings, campaign_id) for _ in range(2)]
        for resume in ({"Last-Event-ID": str(published)}, {}):
            params = {"topic": f"campaign:{campaign_id}"} | (
                {} if resume else {"last_event_id": str(published)}
            )
            async with http.stream("GET", "/live", headers=headers | resume, params=params) as response:
                assert response.status_code == 200
                retry, *replayed = await first(messages(response), 3)
                assert retry == {"retry": "3000"}
                assert [m["id"] for m in replayed] == later  # only what came after, no snapshot


async def test_a_heartbeat_rereads_counts_changed_without_an_event(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "HEARTBEAT_S", 0.2)
    campaign_id = await new_campaign(engine, redis)
    headers = await cookie_of(web, engine, "operator")
    topic = f"/live?topic=campaign:{campaign_id}"
    async with (
        serving(web) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        http.stream("GET", topic, headers=headers) as response,
    ):
        found = messages(response)
        await first(found, 2)  # retry, snapshot
        (beat,) = await first(found, 1, skip_comments=False)
        assert beat == {"comment": "heartbeat"}
        async with engine.begin() as conn:  # delivery reports came in (no event for them)
            await conn.execute(
                update(D)
                .where(D.c.campaign_id == campaign_id)
                .values(status="delivered", sent_at=datetime.now(UTC))
            )
        (fresh,) = await first(found, 1)
        assert fresh["event"] == CAMPAIGN_PROGRESS and "id" not in fresh
        assert '"delivered":3' in fresh["data"]


async def test_live_topics_follow_the_campaign_page_rules(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    mine = await new_campaign(engine, redis, codes=("TRP",))
    theirs = await new_campaign(engine, redis, codes=("BEN",))
    tripoli = await municipality(engine, "TRP")
    analyst = await cookie_of(web, engine, "analyst")
    agent = await cookie_of(web, engine, "agent")
    scoped = await cookie_of(web, engine, "supervisor", municipalities=[tripoli])
    async with serving(web) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:

        async def status(headers: dict[str, str], topic: str, **extra: str) -> int:
            async with http.stream(
                "GET", "/live", headers=headers | extra, params={"topic": topic}
            ) as response:
                return response.status_code

        anonymous = await http.get("/live", params={"topic": f"campaign:{mine}"})
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
        assert await status(analyst, f"campaign:{mine}") == 200
        assert await status(agent, f"campaign:{mine}") == 403
        assert await status(agent, "campaign:987654") == 403  # no hint of what exists
        assert await status(analyst, "campaign:987654") == 404
        assert await status(scoped, f"campaign:{mine}") == 200
        assert await status(scoped, f"campaign:{theirs}") == 404  # beyond the scope: not found
        for topic in (
            "",
            "inquiry:1",
            "campaign:",
            "campaign:abc",
            "campaign:1:2",
            "<script>",
            "campaign:" + "9" * 30,
        ):
            assert await status(analyst, topic) == 404, topic
        for bad in ("abc", "1-", "<script>", "1" * 80):
            assert await status(analyst, f"campaign:{mine}", **{"Last-Event-ID": bad}) == 400, bad
