"""The register's optional sex and age columns: read into ``citizen.sex`` and
``citizen.age_band`` (for weighting), bad values refused on their row."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.citizens.importer import BadHeader, import_citizens
from callcenter.citizens.profile import AGE_BANDS, band_of_age, parse_age, parse_age_band, parse_sex


def register(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "register.csv"
    path.write_bytes(body.encode("utf-8"))
    return path


async def profiles(engine: AsyncEngine) -> dict[str, tuple[str | None, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT phone, sex, age_band FROM citizen"))
        return {phone: (sex, band) for phone, sex, band in rows}


def test_sex_spellings_fold_to_m_or_f() -> None:
    assert [parse_sex(v) for v in ("m", "M", "Male", "ذكر", "f", "FEMALE", "أنثى", "انثى")] == [
        "m", "m", "m", "m", "f", "f", "f", "f",
    ]  # fmt: skip
    assert parse_sex("x") is None and parse_sex("") is None and parse_sex("mf") is None


def test_age_bands_and_ages() -> None:
    assert AGE_BANDS == ("18-29", "30-44", "45-59", "60+")
    assert [parse_age_band(v) for v in ("18-29", "18 – 29", "٣٠-٤٤", "45 to 59", "+60", "60 +")] == [
        "18-29", "18-29", "30-44", "45-59", "60+", "60+",
    ]  # fmt: skip
    assert parse_age_band("10-17") is None and parse_age_band("30-40") is None
    assert [band_of_age(a) for a in (17, 18, 29, 30, 44, 45, 59, 60, 120, 121)] == [
        None, "18-29", "18-29", "30-44", "30-44", "45-59", "45-59", "60+", "60+", None,
    ]  # fmt: skip
    assert parse_age("٣٤") == "30-44" and parse_age("34.5") is None and parse_age("-3") is None


async def test_sex_and_age_band_are_imported_normalised(engine: AsyncEngine, tmp_path: Path) -> None:
    path = register(
        tmp_path,
        "phone,الجنس,الفئة العمرية\n"
        "0910000001,ذكر,18-29\n"
        "0910000002,أنثى,60+\n"
        "0910000003,Female,٣٠-٤٤\n"
        "0910000004,,\n",
    )
    report = await import_citizens(engine, path)
    assert (report.imported, report.rejected) == (4, 0)
    assert await profiles(engine) == {
        "+218910000001": ("m", "18-29"),
        "+218910000002": ("f", "60+"),
        "+218910000003": ("f", "30-44"),
        "+218910000004": (None, None),
    }


async def test_age_or_birth_year_becomes_a_band(engine: AsyncEngine, tmp_path: Path) -> None:
    await import_citizens(engine, register(tmp_path, "phone,age\n0910000001,34\n0910000002,61\n"))
    year = datetime.now(UTC).year
    body = f"phone,birth year\n0910000003,{year - 50}\n0910000004,{year - 20}\n"
    await import_citizens(engine, register(tmp_path, body))
    assert await profiles(engine) == {
        "+218910000001": (None, "30-44"),
        "+218910000002": (None, "60+"),
        "+218910000003": (None, "45-59"),
        "+218910000004": (None, "18-29"),
    }


async def test_bad_sex_and_age_values_are_refused_on_their_row(engine: AsyncEngine, tmp_path: Path) -> None:
    path = register(
        tmp_path,
        "phone,sex,age\n"
        "0910000001,m,40\n"
        "0910000002,x,40\n"  # line 3: an unknown sex
        "0910000003,f,15\n"  # line 4: a minor
        "0910000004,f,abc\n"  # line 5: not a number
        "0910000005,f,130\n",  # line 6: past any real age
    )
    report = await import_citizens(engine, path)
    assert (report.rows, report.imported, report.rejected) == (5, 1, 4)
    assert [(e.line, e.reason.split(":")[0], e.value_masked) for e in report.errors] == [
        (3, "unknown sex", "x"),
        (4, "invalid age", "15"),
        (5, "invalid age", "abc"),
        (6, "invalid age", "130"),
    ]
    assert await profiles(engine) == {"+218910000001": ("m", "30-44")}


async def test_bad_age_band_is_refused_with_the_bands_named(engine: AsyncEngine, tmp_path: Path) -> None:
    report = await import_citizens(engine, register(tmp_path, "phone,age_band\n0910000001,30-40\n"))
    assert report.rejected == 1
    assert report.errors[0].reason == "unknown age band: expected one of 18-29, 30-44, 45-59, 60+"
    assert await profiles(engine) == {}


async def test_empty_cells_keep_what_the_register_knew(engine: AsyncEngine, tmp_path: Path) -> None:
    await import_citizens(engine, register(tmp_path, "phone,sex,age band\n0910000001,f,45-59\n"))
    await import_citizens(engine, register(tmp_path, "phone,sex,age band\n0910000001,,\n"))
    assert await profiles(engine) == {"+218910000001": ("f", "45-59")}
    report = await import_citizens(engine, register(tmp_path, "phone,sex,age band\n0910000001,m,\n"))
    assert report.updated == 1
    assert await profiles(engine) == {"+218910000001": ("m", "45-59")}


async def test_two_age_columns_are_refused_before_writing(engine: AsyncEngine, tmp_path: Path) -> None:
    with pytest.raises(BadHeader, match="keep one column for the age"):
        await import_citizens(engine, register(tmp_path, "phone,age,age band\n0910000001,40,30-44\n"))
    assert await profiles(engine) == {}
