"""The metrics port of worker and agi, on a real socket: the three paths, the access rule, and
clear answers to anything else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from callcenter.health import ReadinessProbe
from callcenter.ops_server import OpsServer, ops_port
from callcenter.settings import Settings


async def ok() -> None:
    return None


async def down() -> None:
    raise ConnectionRefusedError("refused")


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, metrics_port=0, **values)  # type: ignore[arg-type]


@pytest.fixture
async def served() -> AsyncIterator[str]:
    server = OpsServer(settings(), ReadinessProbe({"database": ok, "redis": down}))
    await server.start()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


async def test_metrics_healthz_and_readyz_answer_as_serve_does(served: str) -> None:
    async with httpx.AsyncClient(base_url=served) as client:
        metrics = await client.get("/metrics")
        alive = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(metrics.text)}
    assert {"callcenter_sms_sent", "callcenter_webhook_duration_seconds"} <= names
    assert alive.json() == {"status": "alive"}
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["redis"]


async def test_other_paths_and_methods_get_clear_errors(served: str) -> None:
    async with httpx.AsyncClient(base_url=served) as client:
        assert (await client.get("/admin")).status_code == 404
        assert (await client.post("/metrics")).status_code == 405


async def test_a_garbled_or_silent_request_is_answered_400() -> None:
    server = OpsServer(settings(), ReadinessProbe({}))
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"NONSENSE\r\n\r\n")
        await writer.drain()
        assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
        writer.close()
    finally:
        await server.close()


async def test_the_token_setting_guards_the_port() -> None:
    guarded = ops_port(settings(ops_token="scrape-secret"), ReadinessProbe({"database": ok}))
    async with guarded as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/metrics")).status_code == 403
        allowed = await client.get("/readyz", headers={"Authorization": "Bearer scrape-secret"})
    assert allowed.status_code == 200 and allowed.json()["status"] == "ready"


async def test_no_port_is_opened_unless_configured() -> None:
    async with ops_port(Settings(_env_file=None), ReadinessProbe({})) as port:  # type: ignore[call-arg]
        assert port is None
