"""Metrics, probes and the metrics port on the real databases, Redis and processes: counts move
when the engine works, /metrics parses, /readyz names what is down."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import metrics
from callcenter.campaigns.sender import Sender
from callcenter.settings import Settings
from callcenter.sms.gateways.loopback import LoopbackGateway
from tests.conftest import REDIS_URL
from tests.factories import make_citizens
from tests.integration.test_campaigns import new_campaign
from tests.webapp import running_app


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url="https://1415.test")


async def running_campaign(engine: AsyncEngine, redis: aioredis.Redis, citizens: int, **kw: object) -> int:
    await make_citizens(engine, citizens)
    return await new_campaign(engine, redis, **kw)


async def test_a_send_through_the_loopback_gateway_is_counted_per_gateway_with_its_waits(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    campaign_id = await running_campaign(engine, redis, 12, rate_per_s=40.0)
    sent, waits = (
        sample("callcenter_sms_sent_total", gateway="loopback"),
        sample("callcenter_ratelimit_waits_total", bucket="sms:loopback"),
    )
    settings.sms_burst = 2
    result = await Sender(engine, redis, LoopbackGateway(redis), settings).run_lane(campaign_id)
    assert result.sent == 12
    assert sample("callcenter_sms_sent_total", gateway="loopback") - sent == 12
    assert sample("callcenter_ratelimit_waits_total", bucket="sms:loopback") > waits  # 12 at 2 a bucket
    assert sample("callcenter_ratelimit_wait_seconds_total", bucket="sms:loopback") > 0


async def test_a_webhook_reply_is_counted_and_timed_and_answers_with_a_request_id(
    web: FastAPI, engine: AsyncEngine
) -> None:
    route = "/sms/loopback/inbound"
    stored = sample("callcenter_sms_replies_received_total", gateway="loopback", outcome="stored")
    timed = sample("callcenter_webhook_duration_seconds_count", route=route)
    ok = sample("callcenter_webhook_responses_total", route=route, status="2xx")
    async with client(web) as http:
        response = await http.post(
            route,
            json={"id": "obs-1", "from": "+218910000001", "body": "1"},
            headers={"X-Request-ID": "kannel-77"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "kannel-77"
    assert sample("callcenter_sms_replies_received_total", gateway="loopback", outcome="stored") == stored + 1
    assert sample("callcenter_webhook_duration_seconds_count", route=route) == timed + 1
    assert sample("callcenter_webhook_responses_total", route=route, status="2xx") == ok + 1


async def test_metrics_parse_and_show_the_spool_and_each_campaigns_pending_outbox(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    campaign_id = await running_campaign(engine, redis, 7)
    metrics.LIVE.outbox_read_at = None  # figures cached by an earlier test are not this one's
    async with client(web) as http:
        # only this app's spool: one an earlier test left alive (a WeakSet keeps what is still
        # referenced somewhere) would add its limit to the figure
        for other in [s for s in metrics.LIVE.spools if s is not web.state.inbox.spool]:
            metrics.LIVE.spools.discard(other)
        response = await http.get("/metrics")
    assert response.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    pending = {
        (s.labels["campaign"], s.labels["status"]): s.value
        for s in families["callcenter_outbox_pending"].samples
    }
    assert pending == {(str(campaign_id), "running"): 7.0}
    ready = {s.labels["check"]: s.value for s in families["callcenter_ready"].samples}
    assert ready == {"database": 1.0, "redis": 1.0}
    assert families["callcenter_spool_depth_bytes"].samples[0].value == 0
    assert families["callcenter_spool_limit_bytes"].samples[0].value == settings.sms_spool_max_bytes
    assert "callcenter_sms_sent" in families and "callcenter_webhook_duration_seconds" in families


async def test_readyz_is_200_when_all_answer_and_503_naming_redis_when_it_does_not(web: FastAPI) -> None:
    async with client(web) as http:
        up = await http.get("/readyz")
        assert up.status_code == 200
        assert up.json() == {"status": "ready", "failed": [], "checks": {"database": "ok", "redis": "ok"}}
        live_redis = web.state.redis
        web.state.redis = aioredis.Redis.from_url(
            f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1
        )
        web.state.readiness = None  # a fresh probe, not the cached answer
        try:
            down = await http.get("/readyz")
            alive = await http.get("/healthz")
        finally:
            await web.state.redis.aclose()
            web.state.redis = live_redis
    assert down.status_code == 503
    assert down.json()["failed"] == ["redis"] and down.json()["checks"]["database"] == "ok"
    assert alive.status_code == 200  # liveness does not depend on Redis


async def test_the_ops_settings_narrow_metrics_and_probes_on_serve(settings: Settings, redis: object) -> None:
    settings.ops_token = "scrape-secret"
    async with running_app(settings) as app, client(app) as http:
        for path in ("/metrics", "/healthz", "/readyz"):
            assert (await http.get(path)).status_code == 403, path
            allowed = await http.get(path, headers={"Authorization": "Bearer scrape-secret"})
            assert allowed.status_code == 200, path
    settings.ops_token = None
    settings.ops_allow_networks = ["10.0.0.0/8"]
    async with running_app(settings) as app, client(app) as http:  # the client is 203.0.113.7
        assert (await http.get("/metrics")).status_code == 403


# -- the metrics port of the other roles, as real processes -----------------------------------


@pytest.fixture
def env(tmp_path: Path, pg_database: str, redis_db: int) -> Iterator[dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    yield base | {
        "CALLCENTER_ENV": "test",
        "CALLCENTER_DATA_DIR": str(tmp_path),
        "CALLCENTER_DATABASE_URL": pg_database,
        "CALLCENTER_REDIS_URL": f"{REDIS_URL}/{redis_db}",
        "CALLCENTER_METRICS_PORT": str(free_port()),
        "CALLCENTER_LOG_FORMAT": "json",
    }


async def wait_until_served(
    process: subprocess.Popen[bytes], port: int, timeout: float = 60
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                return await http.get("/healthz")
            except httpx.TransportError:
                await asyncio.sleep(0.2)
    raise AssertionError("the metrics port never answered")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def scrape(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        return await http.get(path)


async def test_the_worker_serves_metrics_and_probes_on_its_port(env: dict[str, str], pg: AsyncEngine) -> None:
    port = int(env["CALLCENTER_METRICS_PORT"])
    process = subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", "worker"], env=env, stderr=subprocess.PIPE
    )
    try:
        assert (await wait_until_served(process, port)).json() == {"status": "alive"}
        ready = await scrape(port, "/readyz")
        assert ready.status_code == 200, ready.text
        text = (await scrape(port, "/metrics")).text
        names = {family.name for family in text_string_to_metric_families(text)}
        assert {
            "callcenter_sms_sent",
            "callcenter_ratelimit_waits",
            "callcenter_outbox_read_age_seconds",
        } <= names
    finally:
        stop(process)


async def test_agi_serves_metrics_and_readyz_names_ami_while_asterisk_is_away(
    env: dict[str, str], pg: AsyncEngine
) -> None:
    port = int(env["CALLCENTER_METRICS_PORT"])
    env |= {"CALLCENTER_AGI_PORT": str(free_port()), "CALLCENTER_AMI_PORT": str(free_port())}  # nobody there
    process = subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", "agi"], env=env, stderr=subprocess.PIPE
    )
    try:
        await wait_until_served(process, port)
        ready = await scrape(port, "/readyz")
        assert ready.status_code == 503
        assert ready.json()["failed"] == ["ami"]
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "ami": "AmiDisconnected"}
        families = {f.name: f for f in text_string_to_metric_families((await scrape(port, "/metrics")).text)}
        assert families["callcenter_ami_connected"].samples[0].value == 0
        calls = {s.labels["kind"]: s.value for s in families["callcenter_calls_in_progress"].samples}
        assert calls == {"agi": 0.0, "outbound": 0.0}
    finally:
        stop(process)
    assert process.returncode == 0
    assert process.stderr is not None
    logged = [json.loads(line) for line in process.stderr.read().decode().splitlines() if line.strip()]
    assert any(e["level"] == "WARNING" and "no AMI yet" in e["message"] for e in logged), logged
