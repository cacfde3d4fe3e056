"""``callcenter results --weighted --json`` and ``callcenter export --format`` on the test's
databases (as a subprocess, the way an analyst runs them)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pyreadstat
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.analysis.margin_store import load_file
from callcenter.settings import Settings
from tests.analysis_data import MARGINS_CSV, seed


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env |= {
        "CALLCENTER_DATABASE_URL": str(settings.database_url),
        "CALLCENTER_DATA_DIR": str(settings.data_dir),
        "CALLCENTER_PSEUDONYM_KEY": "cli-test-key",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "callcenter.cli", *args],
        env=env,
        cwd=settings.data_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _margins(engine: AsyncEngine, text: str = MARGINS_CSV) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        await load_file(session, text, source="test.csv", actor="test")


async def test_weighted_results_as_json(engine: AsyncEngine, settings: Settings) -> None:
    await seed(engine)
    await _margins(engine)
    done = cli(settings, "results", "roads", "--weighted", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["weighting"]["method"] == "post_stratification" and data["weighting"]["n"] == 50
    satisfied = next(q for q in data["questions"] if q["key"] == "satisfied")
    assert satisfied["n"] == 50 and 0 < satisfied["n_eff"] < 50 and satisfied["deff"] > 1
    yes = next(a for a in satisfied["answers"] if a["value"] == "yes")
    assert yes["share"] == pytest.approx(20 / 30 / 2 + 3 / 12 / 3 + 6 / 8 / 6)
    assert yes["low"] < yes["share"] < yes["high"]
    assert yes["unweighted"]["share"] == pytest.approx(29 / 50)
    table = cli(settings, "results", "roads", "--weighted")
    assert table.returncode == 0 and "post_stratification" in table.stdout and "n_eff" in table.stdout


async def test_weighted_results_refuse_what_cannot_be_weighted(
    engine: AsyncEngine, settings: Settings
) -> None:
    await seed(engine)
    missing = cli(settings, "results", "roads", "--weighted", "--json")
    assert missing.returncode == 2 and "no population margin" in missing.stderr
    await _margins(engine, "municipality,population\ntripoli,100\nmisrata,50\n")
    uncovered = cli(settings, "results", "roads", "--weighted", "--json")
    assert uncovered.returncode == 2 and "sabha" in uncovered.stderr


async def test_export_every_format(engine: AsyncEngine, settings: Settings, tmp_path: Path) -> None:
    await seed(engine)
    await _margins(engine)
    for fmt in ("csv", "csv-plain", "xlsx", "sav", "dta", "parquet"):
        out = tmp_path / f"answers.{fmt}"
        done = cli(settings, "export", "roads", "--format", fmt, "--weighted", "-o", str(out))
        assert done.returncode == 0, (fmt, done.stderr)
        assert "50 respondents" in done.stdout
    rows = list(csv.DictReader(io.StringIO((tmp_path / "answers.csv").read_text(encoding="utf-8-sig"))))
    assert len(rows) == 50 and "weight" in rows[0] and not rows[0]["citizen"].startswith("+218")
    assert openpyxl.load_workbook(tmp_path / "answers.xlsx")["respondents"].sheet_view.rightToLeft
    assert pyreadstat.read_sav(str(tmp_path / "answers.sav"), output_format="polars")[0].height == 50
    assert pyreadstat.read_dta(str(tmp_path / "answers.dta"), output_format="polars")[0].height == 50
    assert pq.read_table(tmp_path / "answers.parquet").num_rows == 50
    async with engine.connect() as conn:
        audit = models.table(models.AuditLog)
        formats = (
            (await conn.execute(select(audit.c.details).where(audit.c.action == "results.export")))
            .scalars()
            .all()
        )
    assert len(formats) == 6 and all(d["rows"] == 50 for d in formats)
    bad = cli(settings, "export", "roads", "--format", "pdf", "-o", str(tmp_path / "x.pdf"))
    assert bad.returncode == 2 and "--format is one of" in bad.stderr
