"""Large exports as a job of the arq worker: asked from the results page, written by a real
worker with its progress in Redis, downloaded from a link when done; only by whoever asked;
audited at the start and at every download."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator

import openpyxl
import pyarrow.parquet as pq
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.analysis import export_jobs
from callcenter.jobs import make_worker
from callcenter.settings import Settings
from tests.analysis_data import seed
from tests.webapp import StaffClient, logged_in

AUDIT = models.table(models.AuditLog)


@pytest.fixture
async def analyst(web: FastAPI, engine: AsyncEngine) -> AsyncIterator[StaffClient]:
    """An analyst reading the pages in English (the file's labels too)."""
    client, _ = await logged_in(web, engine, "analyst", language="en")
    yield client
    await client.http.aclose()


async def _run_worker(settings: Settings) -> None:
    """A real arq worker, in burst mode: it runs what is queued and stops."""
    worker = make_worker(settings, burst=True)
    try:
        await worker.async_run()
    finally:
        await worker.close()


async def _start(client: StaffClient, fmt: str = "xlsx", **form: str) -> str:
    await client.get("/results/roads")  # the form's CSRF token
    response = await client.post("/results/roads/exports", {"format": fmt, "labels": "en", **form})
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/results/roads/exports/([\w-]+)", response.headers["location"])
    assert found is not None
    return found.group(1)


async def _actions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(AUDIT.c.action).where(AUDIT.c.action.like("results.export%")))
        return [r.action for r in rows]


async def test_a_large_export_runs_as_a_job_with_progress_and_a_download_link(
    engine: AsyncEngine, analyst: StaffClient, settings: Settings
) -> None:
    await seed(engine)
    job = await _start(analyst)
    waiting = await analyst.get(f"/results/roads/exports/{job}")
    assert waiting.status_code == 200 and 'data-status="queued"' in waiting.text
    assert 'hx-trigger="every 1s"' in waiting.text and "/file" not in waiting.text
    assert (await analyst.get(f"/results/roads/exports/{job}/file")).status_code == 404  # not ready
    await _run_worker(settings)
    done = await analyst.get(f"/results/roads/exports/{job}?part=1")
    assert 'data-status="done"' in done.text and "50 respondents" in done.text
    assert 'value="100"' in done.text and "every 1s" not in done.text
    download = await analyst.get(f"/results/roads/exports/{job}/file")
    assert download.status_code == 200
    assert 'filename="roads-answers.xlsx"' in download.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(download.content))
    assert book["respondents"].max_row == 51  # the header and 50 respondents
    assert book["respondents"].sheet_view.rightToLeft is False  # labels asked in English
    again = await analyst.get(f"/results/roads/exports/{job}/file")  # kept: downloadable again
    assert again.status_code == 200
    assert await _actions(engine) == ["results.export", "results.export.download", "results.export.download"]


async def test_the_worker_publishes_the_progress_as_it_writes(
    engine: AsyncEngine, settings: Settings, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(engine)
    request = export_jobs.ExportRequest("roads", "parquet", False, (), False, (), "ar", user_id=7)
    job = await export_jobs.create(redis, request)
    seen: list[tuple[str, int, int]] = []

    async def watch() -> None:
        found = await export_jobs.state(redis, job, user_id=7)
        assert found is not None
        seen.append((found.status, found.rows, found.total))

    monkeypatch.setattr(export_jobs, "PROGRESS_EVERY_S", 0.0)
    real = export_jobs._save

    async def save(r: aioredis.Redis, job_id: str, **changes: object) -> None:
        await real(r, job_id, **changes)
        await watch()

    monkeypatch.setattr(export_jobs, "_save", save)
    await export_jobs.run(engine, redis, settings, job)
    assert seen[0] == ("running", 0, 50) and seen[-1] == ("done", 50, 50)
    found = await export_jobs.state(redis, job, user_id=7)
    assert found is not None and found.percent == 100 and found.path is not None
    assert pq.read_table(found.path).num_rows == 50
    assert await export_jobs.state(redis, job, user_id=8) is None  # somebody else's


async def test_another_user_cannot_see_or_download_the_job(
    web: FastAPI, engine: AsyncEngine, analyst: StaffClient, settings: Settings
) -> None:
    await seed(engine)
    job = await _start(analyst, "csv")
    await _run_worker(settings)
    other, _ = await logged_in(web, engine, "analyst", language="en")
    try:
        assert (await other.get(f"/results/roads/exports/{job}")).status_code == 404
        assert (await other.get(f"/results/roads/exports/{job}/file")).status_code == 404
    finally:
        await other.http.aclose()
    assert (await analyst.get("/results/roads/exports/nosuchjob")).status_code == 404
    assert (await analyst.get(f"/results/other/exports/{job}")).status_code == 404


async def test_a_job_whose_weights_cannot_be_computed_fails_with_the_reason(
    engine: AsyncEngine, analyst: StaffClient, settings: Settings
) -> None:
    await seed(engine)  # no margins loaded: the weights cannot be computed
    job = await _start(analyst, "sav", weighted="1")
    await _run_worker(settings)
    page = await analyst.get(f"/results/roads/exports/{job}")
    assert 'data-status="failed"' in page.text and "The weights cannot be computed" in page.text
    assert (await analyst.get(f"/results/roads/exports/{job}/file")).status_code == 404


async def test_an_unknown_format_is_refused(engine: AsyncEngine, analyst: StaffClient) -> None:
    await seed(engine)
    await analyst.get("/results/roads")
    response = await analyst.post("/results/roads/exports", {"format": "exe"})
    assert response.status_code == 404


async def test_the_results_page_offers_the_job_for_a_large_inquiry(
    engine: AsyncEngine, analyst: StaffClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(engine)
    small = await analyst.get("/results/roads")
    assert (
        'action="/results/roads/export"' in small.text and 'action="/results/roads/exports"' not in small.text
    )
    monkeypatch.setattr(export_jobs, "BACKGROUND_FROM", 50)
    large = await analyst.get("/results/roads")
    form = large.text[large.text.index('action="/results/roads/exports"') :]
    assert 'method="post"' in large.text and 'name="csrf_token"' in form[:400]
