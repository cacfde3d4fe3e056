"""The HTTP API end to end (real databases and Redis): define, push, answer, read, export."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.jobs import run_worker
from callcenter.settings import Settings
from callcenter.sms.gateways.loopback import read_outbox
from callcenter.web.app import create_app
from tests.factories import SAMPLE, THREE_QUESTIONS

AUDIT = models.table(models.AuditLog)


@pytest.fixture
async def client(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the test's databases; the ``redis`` fixture empties Redis around it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


async def test_health_answers_when_database_and_redis_are_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_inquiry_life_cycle_over_http(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    created = await client.post(
        "/api/inquiries", content=SAMPLE.read_bytes(), headers={"Content-Type": "application/yaml"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft"
    again = await client.post(
        "/api/inquiries", content=SAMPLE.read_bytes(), headers={"Content-Type": "application/yaml"}
    )
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    slug = created.json()["slug"]
    detail = await client.get(f"/api/inquiries/{slug}")
    assert [q["key"] for q in detail.json()["definition"]["questions"]] == [
        "satisfaction",
        "problem",
        "recommend",
    ]
    unscheduled = await client.post(f"/api/inquiries/{slug}/status", json={"status": "scheduled"})
    assert unscheduled.status_code == 400 and "time" in unscheduled.text
    for status in ("scheduled", "running", "paused", "running", "closed"):
        body = {"status": status, "at": "2026-12-01T09:00:00+02:00"}
        moved = await client.post(f"/api/inquiries/{slug}/status", json=body)
        assert moved.status_code == 200 and moved.json()["status"] == status
    stuck = await client.post(f"/api/inquiries/{slug}/status", json={"status": "running"})
    assert stuck.status_code == 409 and stuck.json()["error"] == "invalid_transition"
    async with engine.connect() as conn:
        actions = (await conn.execute(select(AUDIT.c.action).order_by(AUDIT.c.id))).scalars().all()
    assert actions[0] == "inquiry.create" and "inquiry.closed" in actions


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"slug: [broken", "application/yaml", "not valid YAML"),
        (b"slug: x\ntitle: {ar: t}\nquestions: []\n", "application/yaml", "questions"),
        (b'{"slug": "Bad Slug", "title": {"ar": "t"}, "questions": []}', "application/json", ""),
        (b"not json", "application/json", ""),
    ],
)
async def test_bad_inquiry_definitions_get_a_clear_422(
    client: httpx.AsyncClient, body: bytes, content_type: str, fragment: str
) -> None:
    response = await client.post("/api/inquiries", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 422
    assert fragment in response.text


async def test_unknown_inquiry_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/inquiries/nope")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_citizen_upload_reports_bad_rows_and_keeps_good_ones(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    data = (
        "\ufeffphone,municipality,language\r\n0912345678,طرابلس,ar\r\n"
        "0919999999912345,x,ar\r\n٠٩٢٣٤٥٦٧٨٩,بنغازي,en\r\n"
    )
    response = await client.post(
        "/api/citizens/import",
        files={"file": ("register.csv", data.encode(), "text/csv")},
        data={"create_municipalities": "true"},  # the register is empty in this test
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["imported"] == 2 and report["rejected"] == 1
    assert report["errors"][0]["line"] == 3
    assert "0919999999912345" not in response.text  # rejected numbers are masked too
    wrong = await client.post(
        "/api/citizens/import", files={"file": ("x.csv", b"name,age\nx,1\n", "text/csv")}
    )
    assert wrong.status_code == 400
    async with engine.connect() as conn:
        phones = set((await conn.execute(select(models.table(models.Citizen).c.phone))).scalars())
    assert phones == {"+218912345678", "+218923456789"}


async def test_a_campaign_pushed_over_http_is_answered_and_exported(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    await client.post(
        "/api/inquiries", content=THREE_QUESTIONS.encode(), headers={"Content-Type": "application/yaml"}
    )
    register = "phone,municipality,language\n" + "".join(f"09100000{i:02d},tripoli,ar\n" for i in range(20))
    await client.post(
        "/api/citizens/import",
        files={"file": ("r.csv", register.encode(), "text/csv")},
        data={"create_municipalities": "true"},
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop))
    try:
        created = await client.post("/api/campaigns", json={"inquiry": "three", "start": True})
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        progress: dict[str, int] = {}
        for _ in range(200):
            progress = (await client.get(f"/api/campaigns/{campaign_id}")).json()["deliveries"]
            if progress.get("sent") == 20:
                break
            await asyncio.sleep(0.05)
        assert progress == {"sent": 20}
    finally:
        stop.set()
        await worker
    redis = client.app.state.redis  # type: ignore[attr-defined]
    out, _ = await read_outbox(redis, "0", 100)
    assert len(out) == 20
    for i, (_, sms, _) in enumerate(out):
        reply = await client.post("/sms/loopback/inbound", json={"id": f"r{i}", "from": sms.to, "body": "٥"})
        assert "السؤال الثاني" in reply.json()["reply"]
    results = (await client.get("/api/inquiries/three/results")).json()
    q1 = results["questions"][0]
    assert q1["total"] == 20 and {s["value"]: s["count"] for s in q1["shares"]}["5"] == 20
    assert results["funnel"]["sent"] == 20 and results["funnel"]["started"] == 20

    export = await client.get("/api/inquiries/three/export.csv")
    assert export.status_code == 200
    assert export.content.startswith("\ufeff".encode())  # Excel reads the BOM as UTF-8
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert rows[0][0] == "citizen" and len(rows) == 21
    assert not any("+2189" in cell or "0910" in cell for row in rows for cell in row)
    async with engine.connect() as conn:
        exported = (
            await conn.execute(select(func.count()).where(AUDIT.c.action == "results.export"))
        ).scalar_one()
    assert exported == 1


async def test_pause_and_cancel_over_http_refuse_impossible_moves(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/inquiries", content=THREE_QUESTIONS.encode(), headers={"Content-Type": "application/yaml"}
    )
    created = await client.post("/api/campaigns", json={"inquiry": "three"})
    campaign_id = created.json()["id"]
    paused = await client.post(f"/api/campaigns/{campaign_id}/pause")
    assert paused.status_code == 409  # a draft cannot pause
    cancelled = await client.post(f"/api/campaigns/{campaign_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    bad = await client.post("/api/campaigns", json={"inquiry": "three", "quiet_start": "late"})
    assert bad.status_code == 422


async def test_the_api_token_is_required_when_set(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"api_token": "s3cret"}))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        assert (await c.get("/api/inquiries")).status_code == 401
        ok = await c.get("/api/inquiries", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


async def test_mode_switch_settings_and_voice_campaigns_over_http(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    created = await client.post(
        "/api/inquiries", content=SAMPLE.read_bytes(), headers={"Content-Type": "application/yaml"}
    )
    assert created.status_code == 201
    inquiries = models.table(models.Inquiry)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(inquiries.c.switch_after_hours, inquiries.c.switch_to, inquiries.c.max_contacts)
            )
        ).one()
    assert tuple(row) == (24.0, "voice", 3)
    half = THREE_QUESTIONS.replace("slug: three", "slug: half\nswitch_to: voice")
    refused = await client.post(
        "/api/inquiries", content=half.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert refused.status_code == 422 and "switch_after_hours" in refused.text
    voice = await client.post("/api/campaigns", json={"inquiry": "return-of-life-roads", "channel": "voice"})
    assert (
        voice.status_code == 201 and voice.json()["channel"] == "voice" and voice.json()["gateway"] == "trunk"
    )
    fax = await client.post("/api/campaigns", json={"inquiry": "return-of-life-roads", "channel": "fax"})
    assert fax.status_code == 422


async def test_a_quiet_hour_that_is_no_time_of_day_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/campaigns", json={"inquiry": "x", "quiet_start": "25:00", "quiet_end": "08:00"}
    )
    assert response.status_code == 422 and "25:00" in response.text
