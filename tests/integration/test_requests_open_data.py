"""The open-data export of requests on the real databases: a supervisor downloads it (audited),
an officer cannot; ``callcenter requests export-open-data -o FILE`` writes the same rows; no
number, reference or word of the citizen in either; rare cells without their municipality."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.service import Intake, create_request
from callcenter.requests.store import load
from callcenter.settings import Settings
from tests.integration.test_admin_users import mfa_client
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities
from tests.integration.test_results_cli import cli
from tests.webapp import logged_in

SECRET = "call me on 0912345678"


async def seed(engine: AsyncEngine, settings: Settings) -> list[str]:
    """Seven water leaks in Benghazi, one in Misrata (rare), one in Tripoli (rare)."""
    await add_municipalities(engine)
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    places = ["benghazi"] * 7 + ["misrata", "tripoli-centre"]
    references = []
    async with AsyncSession(engine) as session, session.begin():
        for n, place in enumerate(places):
            made = await create_request(
                session,
                Intake(category="water_leak", channel="ivr", municipality=place, phone=f"+21891234567{n}",
                       description=SECRET),
                actor="test", calendar=WorkingCalendar(), settings=settings,
                now=datetime(2026, 3, 15, 21, 30, tzinfo=UTC),
            )  # fmt: skip
            references.append(made.reference)
    return references


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def assert_anonymous(text: str, references: list[str]) -> None:
    assert SECRET not in text and "+2189" not in text and "091" not in text
    assert not any(ref in text for ref in references)
    found = rows(text)
    assert len(found) == 9
    assert {r["opened_on"] for r in found} == {"2026-03-15"}  # 23:30 in Tripoli, the same day
    benghazi = [r for r in found if r["municipality"] == "benghazi"]
    assert len(benghazi) == 7 and all(r["municipality_suppressed"] == "false" for r in benghazi)
    hidden = [r for r in found if r["municipality_suppressed"] == "true"]
    assert len(hidden) == 2 and all(r["municipality"] == r["responsible_body"] == "" for r in hidden)


async def test_a_supervisor_downloads_the_export_and_it_is_audited(
    web: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    references = await seed(engine, settings)
    supervisor, _ = await mfa_client(web, engine, "supervisor")
    response = await supervisor.get("/open-data/requests.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert_anonymous(response.text, references)
    officer, _ = await logged_in(web, engine, "officer")
    assert (await officer.get("/open-data/requests.csv")).status_code == 403
    async with engine.connect() as conn:
        log = models.table(models.AuditLog)
        exported = (
            await conn.execute(select(log.c.action).where(log.c.action == "requests.open_data.export"))
        ).all()
    assert len(exported) == 1
    await supervisor.http.aclose()
    await officer.http.aclose()


async def test_the_command_writes_the_same_anonymous_rows(
    engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    references = await seed(engine, settings)
    out = tmp_path / "requests.csv"
    done = cli(settings, "requests", "export-open-data", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "9 requests written" in done.stdout and "2 with the municipality hidden" in done.stdout
    assert_anonymous(out.read_text(encoding="utf-8"), references)
    refused = cli(settings, "requests", "export-open-data", "-o", str(out), "--threshold", "0")
    assert refused.returncode != 0
