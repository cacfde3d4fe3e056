"""Weighting on the citizens' sex and age band beside their municipality: margins loaded from
CSV, raked together, used by default when the respondents carry them, and a respondent
whose attribute no margin lists reported, as for a municipality."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.analysis import exports, read
from callcenter.analysis.margin_store import load_file, stored_tables
from callcenter.analysis.read import Scope
from callcenter.analysis.weighting import CategoryNotInMargin
from tests.analysis_data import MARGINS_CSV, seed

C = models.table(models.Citizen)
SEX_CSV = "الجنس,السكان\nذكر,1250000\nأنثى,1150000\n"
AGE_CSV = "age band,population\n18-29,900000\n30-44,700000\n45-59,500000\n60+,300000\n"
BANDS = ("18-29", "30-44", "45-59", "60+")


async def _load(engine: AsyncEngine, text: str) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        await load_file(session, text, source="margins.csv", actor="test")


async def _profile_everyone(engine: AsyncEngine) -> None:
    """Alternate sex and cycle the age bands over the citizens, by id."""
    async with engine.begin() as conn:
        ids = [row.id for row in await conn.execute(C.select().order_by(C.c.id))]
        for i, citizen in enumerate(ids):
            await conn.execute(
                update(C).where(C.c.id == citizen).values(sex="mf"[i % 2], age_band=BANDS[(i // 2) % 4])
            )


async def _seed_profiled(engine: AsyncEngine) -> None:
    """The seeded inquiry, its citizens given a sex and an age band, the three margins loaded."""
    await seed(engine)
    await _profile_everyone(engine)
    for text in (MARGINS_CSV, SEX_CSV, AGE_CSV):
        await _load(engine, text)


async def test_margins_over_sex_and_age_band_load_from_csv(engine: AsyncEngine) -> None:
    await seed(engine)
    await _load(engine, SEX_CSV)
    await _load(engine, AGE_CSV)
    async with engine.connect() as conn:
        tables = {t.key: t.cells for t in await stored_tables(conn)}
    assert tables == {
        "age_band": {("18-29",): 900_000, ("30-44",): 700_000, ("45-59",): 500_000, ("60+",): 300_000},
        "sex": {("m",): 1_250_000, ("f",): 1_150_000},
    }


async def test_raking_uses_sex_and_age_band_beside_municipality(engine: AsyncEngine) -> None:
    await _seed_profiled(engine)
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "roads")
        variables = await read.default_variables(conn, inquiry, await stored_tables(conn))
        assert variables == ("municipality", "sex", "age_band")
        weighting = await read.weigh(conn, inquiry, variables, scope=Scope(), trim_ratio=20.0)
        counts = await read.respondent_cells(conn, inquiry.id or 0, variables, Scope())
    assert weighting.error is None and weighting.weights is not None
    report = weighting.weights.report
    assert report.method == "raking" and report.converged and report.variables == variables
    # every margin is met: the weighted share of each category is its population share
    total = math.fsum(n * weighting.weight(cell) for cell, n in counts.items())
    for at, (variable, population) in enumerate(
        (("municipality", {"tripoli": 1.2, "misrata": 0.8, "sabha": 0.4}),
         ("sex", {"m": 1.25, "f": 1.15}),
         ("age_band", dict(zip(BANDS, (0.9, 0.7, 0.5, 0.3), strict=True))))
    ):  # fmt: skip
        for category, millions in population.items():
            reached = math.fsum(n * weighting.weight(c) for c, n in counts.items() if c[at] == category)
            assert reached / total == pytest.approx(millions / 2.4, abs=1e-6), (variable, category)


async def test_without_profiles_the_default_stays_on_municipality(engine: AsyncEngine) -> None:
    await seed(engine)
    for text in (MARGINS_CSV, SEX_CSV):
        await _load(engine, text)
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "roads")
        assert await read.default_variables(conn, inquiry, await stored_tables(conn)) == ("municipality",)


async def test_respondents_without_a_sex_the_margin_lists_are_reported(engine: AsyncEngine) -> None:
    await seed(engine)
    await _profile_everyone(engine)
    async with engine.begin() as conn:  # a few citizens the register gave no sex
        first = (await conn.execute(C.select().order_by(C.c.id).limit(1))).one().id
        await conn.execute(update(C).where(C.c.id <= first + 3).values(sex=None))
    for text in (MARGINS_CSV, SEX_CSV):
        await _load(engine, text)
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "roads")
        weighting = await read.weigh(conn, inquiry, ("municipality", "sex"), scope=Scope())
    assert isinstance(weighting.error, CategoryNotInMargin)
    details = weighting.error.details
    assert details["variable"] == "sex" and details["category"] == read.UNKNOWN
    assert not weighting.active


async def test_exported_weights_follow_the_sex_and_age_cells(engine: AsyncEngine) -> None:
    await _seed_profiled(engine)
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "roads")
        variables = ("municipality", "sex", "age_band")
        weighting = await read.weigh(conn, inquiry, variables, scope=Scope(), trim_ratio=20.0)
        columns = exports.layout(inquiry, weighted=True)
        rows = [
            row
            async for batch in exports.respondents(
                conn, inquiry, columns, scope=Scope(), weighting=weighting, key="k", coded=False
            )
            for row in batch
        ]
    weights = sorted(row[5] for row in rows)
    assert len(weights) == weighting.weights.report.n  # type: ignore[union-attr]
    assert len(set(weights)) > 3  # not the municipality's three weights only
    assert math.fsum(weights) == pytest.approx(len(weights))
