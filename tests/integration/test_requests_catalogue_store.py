"""The service catalogue in the database: the sample loads (and reloads without duplicates),
reads back as it was written, is refused whole when it names an unknown municipality or takes
a keypad code another category holds; ``callcenter requests load|show`` on the embedded
default; holiday corrections change the calendar."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.redis_conn import stop_embedded
from callcenter.requests.catalogue import CatalogueFileError
from callcenter.requests.store import correct_holiday, drop_correction, load, load_calendar, read_catalogue
from callcenter.settings import Settings

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "callcenter" / "samples" / "requests.yaml"
MUNICIPALITIES = {"benghazi": "بنغازي", "tripoli-centre": "طرابلس المركز", "misrata": "مصراتة"}


async def add_municipalities(engine: AsyncEngine) -> dict[str, int]:
    m = models.table(models.Municipality)
    async with engine.begin() as conn:
        for code, name in MUNICIPALITIES.items():
            await conn.execute(insert(m).values(code=code, name_ar=name, name_en=code.title()))
        return {code: mid for code, mid in await conn.execute(select(m.c.code, m.c.id))}


async def count(engine: AsyncEngine, model: type) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(models.table(model)))).scalar_one())


async def test_the_sample_loads_reloads_and_reads_back(engine: AsyncEngine) -> None:
    await add_municipalities(engine)
    text = SAMPLE.read_text(encoding="utf-8")
    loaded = await load(engine, text, actor="test")
    again = await load(engine, text, actor="test")

    assert (loaded.bodies, loaded.categories, loaded.overrides) == (6, 6, 3) == (
        again.bodies, again.categories, again.overrides,
    )  # fmt: skip
    assert await count(engine, models.ServiceCategory) == 6
    assert await count(engine, models.ResponsibleBody) == 6
    assert await count(engine, models.CategoryBody) == 3
    async with engine.connect() as conn:
        catalogue = await read_catalogue(conn)
        actions = (await conn.execute(select(models.table(models.AuditLog).c.action))).scalars().all()
    assert catalogue.route("waste_collection", "benghazi").key == "benghazi_public_services"
    assert catalogue.route("roads_potholes", "tripoli-centre").key == "roads_bridges"
    assert catalogue.bodies["tripoli_public_services"].municipality == "tripoli-centre"
    lighting = catalogue.categories["street_lighting"]
    assert lighting.name_ar == "إنارة الشوارع" and [q.key for q in lighting.questions] == [
        "neighbourhood",
        "landmark",
    ]
    assert actions.count("requests.catalogue.load") == 2


async def test_an_unknown_municipality_changes_nothing(engine: AsyncEngine) -> None:
    await add_municipalities(engine)
    text = SAMPLE.read_text(encoding="utf-8").replace("benghazi: benghazi_public_services", "atlantis: gecol")
    with pytest.raises(CatalogueFileError, match="unknown municipality: atlantis"):
        await load(engine, text, actor="test")
    assert await count(engine, models.ServiceCategory) == 0
    assert await count(engine, models.ResponsibleBody) == 0


async def test_keypad_codes_move_between_listed_categories_but_not_onto_unlisted_ones(
    engine: AsyncEngine,
) -> None:
    await add_municipalities(engine)
    text = SAMPLE.read_text(encoding="utf-8")
    await load(engine, text, actor="test")
    swapped = text.replace("keypad: 1\n", "keypad: X\n").replace("keypad: 2\n", "keypad: 1\n")
    await load(engine, swapped.replace("keypad: X\n", "keypad: 2\n"), actor="test")
    async with engine.connect() as conn:
        catalogue = await read_catalogue(conn)
    assert catalogue.categories["street_lighting"].keypad == "2"
    assert catalogue.categories["waste_collection"].keypad == "1"

    alone = """bodies:
  - {key: gecol, kind: national, name: {ar: الكهرباء, en: GECOL}}
categories:
  - {key: meters, keypad: 6, name: {ar: العدادات, en: Meters}, body: gecol,
     sla: {first_response_hours: 7, resolution_hours: 35}}
"""
    with pytest.raises(CatalogueFileError, match="keypad code 6 is already electricity_outage's"):
        await load(engine, alone, actor="test")


async def test_holiday_corrections_change_the_calendar_and_are_audited(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = Settings(env="test", data_dir=tmp_path)
    async with AsyncSession(engine) as session, session.begin():
        await correct_holiday(session, date(2026, 3, 19), "add", actor="admin@1415.local", name="Eid")
        await correct_holiday(session, date(2026, 3, 22), "remove", actor="admin@1415.local")
        await correct_holiday(session, date(2026, 3, 22), "remove", actor="admin@1415.local")  # replaces
    calendar = await load_calendar(engine, settings)
    assert not calendar.is_working_day(date(2026, 3, 19))
    assert calendar.is_working_day(date(2026, 3, 22))
    assert await count(engine, models.HolidayCorrection) == 2
    async with AsyncSession(engine) as session, session.begin():
        assert await drop_correction(session, date(2026, 3, 19), actor="admin@1415.local")
        assert not await drop_correction(session, date(2026, 3, 19), actor="admin@1415.local")
    assert (await load_calendar(engine, settings)).is_working_day(date(2026, 3, 19))
    async with engine.connect() as conn:
        actions = (await conn.execute(select(models.table(models.AuditLog).c.action))).scalars().all()
    assert sorted(actions) == ["requests.holiday.correct"] * 3 + ["requests.holiday.drop"]
    async with AsyncSession(engine) as session, session.begin():
        with pytest.raises(ValueError):
            await correct_holiday(session, date(2026, 3, 1), "move", actor="x")  # type: ignore[arg-type]


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env |= {"CALLCENTER_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "callcenter.cli", *args],
        env=env, cwd=data_dir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_requests_command_loads_and_shows_the_catalogue(tmp_path: Path) -> None:
    try:
        register = cli(
            tmp_path, "municipalities", "load", str(ROOT / "callcenter" / "samples" / "municipalities.csv")
        )
        assert register.returncode == 0, register.stderr
        loaded = cli(tmp_path, "requests", "load", str(SAMPLE))
        assert loaded.returncode == 0, loaded.stderr
        assert "6 bodies, 6 categories and 3 overrides loaded" in loaded.stdout
        shown = cli(tmp_path, "requests", "show")
        assert shown.returncode == 0, shown.stderr
        assert "electricity_outage" in shown.stdout and "benghazi: benghazi_public_services" in shown.stdout
        bad = tmp_path / "bad.yaml"
        bad.write_text("categories:\n  - {key: x, keypad: 1, name: {en: X}}\n", encoding="utf-8")
        refused = cli(tmp_path, "requests", "load", str(bad))
        assert refused.returncode == 2
        assert "the Arabic name is missing" in refused.stderr
        recomputed = cli(tmp_path, "requests", "recompute")
        assert recomputed.returncode == 0, recomputed.stderr
        assert "0 open requests" in recomputed.stdout
        one_day = cli(tmp_path, "requests", "recompute", "--day", "2026-03-19")
        assert one_day.returncode == 0, one_day.stderr
        assert "0 open requests spanning 2026-03-19" in one_day.stdout
    finally:
        stop_embedded(tmp_path)
