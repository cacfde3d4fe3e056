"""The analysts' read model on real databases: margins loaded from CSV, weights, shares,
crosstabs with suppression, differences, AAPOR rates, and the bad input of the issue."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.analysis import read
from callcenter.analysis.aapor import Disposition
from callcenter.analysis.margin_store import delete_table, listing, load_file, stored_tables
from callcenter.analysis.margins import MarginFileError
from callcenter.analysis.read import Scope
from callcenter.analysis.weighting import CategoryNotInMargin, MarginTotalsDiffer, NotConverged
from tests.analysis_data import MARGINS_CSV, seed


async def _load(engine: AsyncEngine, text: str, source: str = "margins.csv") -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        await load_file(session, text, source=source, actor="test")


async def _weigh(
    engine: AsyncEngine, variables: tuple[str, ...], scope: Scope = Scope(), **kw: object
) -> read.Weighting:
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "roads")
        return await read.weigh(conn, inquiry, variables, scope=scope, **kw)  # type: ignore[arg-type]


async def _estimates(
    engine: AsyncEngine, weighting: read.Weighting, *, by: str | None = None, scope: Scope = Scope()
) -> read.Estimates:
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "roads")
        return await read.estimates(conn, inquiry, weighting, scope=scope, by=by, threshold=5)


async def test_margins_load_from_csv_with_names_matched_through_the_register(engine: AsyncEngine) -> None:
    await seed(engine)
    await _load(engine, MARGINS_CSV)
    tables = await stored_tables(await _conn(engine))
    assert [t.key for t in tables] == ["municipality"]
    assert tables[0].cells == {("tripoli",): 1_200_000, ("misrata",): 800_000, ("sabha",): 400_000}
    listed = await listing(await _conn(engine))
    assert listed[0].cells == 3 and listed[0].total == 2_400_000
    # loading the same attributes again replaces the table, and both are audited
    await _load(engine, "البلدية,السكان\ntripoli,10\nmisrata,10\nsabha,١٠\n")
    tables = await stored_tables(await _conn(engine))
    assert tables[0].cells[("sabha",)] == 10
    async with AsyncSession(engine) as session, session.begin():
        assert await delete_table(session, "municipality", actor="test")
        assert not await delete_table(session, "municipality", actor="test")
    async with engine.connect() as conn:
        actions = (
            await conn.execute(
                select(func.count()).where(models.table(models.AuditLog).c.action.like("margins.%"))
            )
        ).scalar_one()
    assert actions == 3


_CONNECTIONS: list[object] = []


async def _conn(engine: AsyncEngine):  # type: ignore[no-untyped-def]
    conn = await engine.connect()
    _CONNECTIONS.append(conn)
    return conn


@pytest.fixture(autouse=True)
async def _close_connections() -> object:
    yield
    while _CONNECTIONS:
        await _CONNECTIONS.pop().close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("municipality,population\nnowhere,10\n", "not a known"),
        ("municipality,population\ntripoli,-5\n", "not a population count"),
        ("municipality,population\ntripoli,abc\n", "not a population count"),
        ("municipality,population\ntripoli,5\ntripoli,6\n", "twice"),
        ("municipality,people\ntripoli,5\n", "no population column"),
        ("religion,population\nx,5\n", "not one the register has"),
        ("sex,population\nx,5\n", "not a known"),
        ("age_band,population\n30-40,5\n", "not a known"),
        ("municipality,population\n", "no lines"),
        ("municipality,population\ntripoli,0\n", "add up to zero"),
    ],
)
async def test_bad_margin_files_are_refused_with_the_reason(
    engine: AsyncEngine, text: str, problem: str
) -> None:
    await seed(engine)
    with pytest.raises(MarginFileError) as caught:
        await _load(engine, text)
    assert any(problem in p.message % dict(p.params) for p in caught.value.problems), caught.value.problems
    assert await stored_tables(await _conn(engine)) == []


async def test_weighted_shares_post_stratify_to_the_municipalities(engine: AsyncEngine) -> None:
    await seed(engine)
    await _load(engine, MARGINS_CSV)
    weighting = await _weigh(engine, ("municipality",))
    assert weighting.error is None and weighting.weights is not None
    report = weighting.weights.report
    assert report.method == "post_stratification" and report.n == 50
    assert 1 < report.deff < 1.5 and report.n_eff == pytest.approx(50 / report.deff)
    result = await _estimates(engine, weighting)
    satisfied = result.question("satisfied")
    yes = satisfied.overall.cell("yes")
    assert yes.count == 29 and yes.unweighted is not None and yes.weighted is not None
    assert yes.unweighted.estimate == pytest.approx(29 / 50)
    # Tripoli 20/30 at 1/2, Misrata 3/12 at 1/3, Sabha 6/8 at 1/6
    assert yes.weighted.estimate == pytest.approx(20 / 30 / 2 + 3 / 12 / 3 + 6 / 8 / 6)
    assert yes.weighted.n_eff == pytest.approx(report.n_eff)
    assert yes.weighted.low is not None and yes.weighted.high is not None
    assert yes.weighted.high - yes.weighted.low > yes.unweighted.high - yes.unweighted.low  # type: ignore[operator]


async def test_crosstab_suppresses_small_cells_and_what_would_reveal_them(engine: AsyncEngine) -> None:
    await seed(engine)
    result = await _estimates(engine, read.Weighting(), by="municipality")
    satisfied = result.question("satisfied")
    groups = {g.key: g for g in satisfied.groups}
    assert set(groups) == {"misrata", "sabha", "tripoli"}
    assert groups["sabha"].cell("no").count is None  # 2 < 5: primary
    assert groups["misrata"].cell("yes").count is None  # 3 < 5: primary
    # every row and column with a hidden cell has a second one: nothing recovered by subtraction
    published = satisfied.suppressed
    assert published is not None
    for i, row in enumerate(published.cells):
        hidden = [c is None for c in row] + [published.row_totals[i] is None]
        assert sum(hidden) != 1
    for j in range(len(satisfied.values)):
        column = [published.cells[i][j] is None for i in range(len(published.cells))]
        assert sum([*column, published.column_totals[j] is None]) != 1
    assert groups["tripoli"].cell("yes").count == 20
    hidden = groups["sabha"].cell("no")
    assert hidden.unweighted is None and hidden.weighted is None


async def test_crosstab_by_channel_language_district_and_another_question(engine: AsyncEngine) -> None:
    await seed(engine)
    for by, keys in (
        ("channel", {"sms", "voice"}),
        ("district", {"west", "south"}),
        ("language", {"ar", "en"}),
        ("q:priority", {"roads", "water", "power"}),
    ):
        result = await _estimates(engine, read.Weighting(), by=by)
        satisfied = result.question("satisfied")
        assert {g.key for g in satisfied.groups} == keys, by
        assert sum(g.table.n for g in satisfied.groups) == 50


async def test_difference_between_two_groups_with_newcombe_interval(engine: AsyncEngine) -> None:
    await seed(engine)
    await _load(engine, MARGINS_CSV)
    result = await _estimates(engine, await _weigh(engine, ("municipality",)), by="channel")
    found = {c.value: c for c in read.compare(result.question("priority"), "sms", "voice")}
    roads = found["roads"]
    assert not roads.hidden and roads.unweighted.excludes_zero is True  # 28 of 31 by SMS, none by voice
    assert roads.unweighted.low < roads.unweighted.estimate < roads.unweighted.high
    # a group that does not exist, or a group of one, gives no difference, not an error
    assert all(c.hidden for c in read.compare(result.question("priority"), "sms", "fax"))
    one = await _estimates(engine, read.Weighting(), by="q:priority")
    assert read.compare(one.question("satisfied"), "roads", "nowhere")[0].hidden


async def test_a_group_of_one_answer_has_no_interval(engine: AsyncEngine) -> None:
    await seed(engine, plan={"tripoli": [("sms", "yes", "roads")], "sabha": [("sms", "no", "water")] * 6})
    result = await _estimates(engine, read.Weighting(), by="municipality")
    tripoli = {g.key: g for g in result.question("satisfied").groups}["tripoli"]
    assert tripoli.table.n == 1 and tripoli.status == "insufficient"
    assert read.compare(result.question("satisfied"), "tripoli", "sabha")[0].hidden


async def test_margins_that_do_not_cover_a_municipality_in_the_answers_are_reported(
    engine: AsyncEngine,
) -> None:
    await seed(engine)
    await _load(engine, "municipality,population\ntripoli,100\nmisrata,50\n")
    weighting = await _weigh(engine, ("municipality",))
    assert isinstance(weighting.error, CategoryNotInMargin) and weighting.weights is None
    assert weighting.error.details.get("cell") == ["sabha"]


async def test_margins_with_different_totals_are_reported_unless_used_as_shares(engine: AsyncEngine) -> None:
    await seed(engine)
    await _load(engine, MARGINS_CSV)
    await _load(engine, "language,population\nar,2000000\nen,100000\n")
    weighting = await _weigh(engine, ("municipality", "language"))
    assert isinstance(weighting.error, MarginTotalsDiffer)
    shares = await _weigh(engine, ("municipality", "language"), normalise=True)
    assert shares.error is None and shares.weights is not None
    assert shares.weights.report.method == "raking" and shares.weights.report.converged
    assert shares.weights.report.normalised


async def test_raking_that_does_not_converge_is_reported_not_returned_silently(engine: AsyncEngine) -> None:
    await seed(engine)
    await _load(engine, MARGINS_CSV)  # west (Tripoli + Misrata) is 5/6 of the people here...
    await _load(engine, "district,population\nwest,1200000\nsouth,1200000\n")  # ...and half here
    weighting = await _weigh(engine, ("municipality", "district"))
    assert isinstance(weighting.error, NotConverged)
    assert weighting.weights is not None and not weighting.weights.report.converged


async def test_a_scoped_reader_sees_only_their_municipality(engine: AsyncEngine) -> None:
    seeded = await seed(engine)
    await _load(engine, MARGINS_CSV)
    scope = Scope(frozenset({seeded.municipality_ids["tripoli"]}))
    weighting = await _weigh(engine, ("municipality",), scope=scope)
    assert weighting.error is None and weighting.weights is not None and weighting.weights.report.n == 30
    result = await _estimates(engine, weighting, by="municipality", scope=scope)
    assert [g.key for g in result.question("satisfied").groups] == ["tripoli"]
    async with engine.connect() as conn:
        listed = await read.list_inquiries(conn, scope)
    assert listed[0].respondents == 30


async def test_aapor_rates_per_channel_and_municipality(engine: AsyncEngine) -> None:
    await seed(engine)
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "roads")
        found = await read.outcome_rates(conn, inquiry, scope=Scope(), e=0.5)
    overall = found.overall
    assert overall.counts.i == 50 and overall.counts.uh == 6 and overall.cases == 56
    assert overall.rates is not None and overall.rates.rr1 == pytest.approx(50 / 56)
    assert overall.rates.rr3 == pytest.approx(50 / (50 + 0.5 * 6))
    channels = {g.key: g for g in found.by_channel}
    assert channels["sms"].counts.i == 31 and channels["voice"].counts.i == 19
    municipalities = {g.key: g for g in found.by_municipality}
    assert municipalities["sabha"].cases == 10
    assert {r.disposition for r in found.mapping} >= {Disposition.COMPLETE, Disposition.UNKNOWN_REACH}


async def test_an_inquiry_without_answers_has_empty_tables_not_errors(engine: AsyncEngine) -> None:
    await seed(engine, plan={})
    result = await _estimates(engine, read.Weighting())
    assert result.question("satisfied").overall.table.n == 0
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "roads")
        rates = await read.outcome_rates(conn, inquiry, scope=Scope(), e=None)
    assert rates.overall.cases == 0 and rates.overall.rates is None


async def test_sms_and_voice_compared_raw_and_after_weighting_each_to_the_same_profile(
    engine: AsyncEngine,
) -> None:
    await seed(engine)
    await _load(engine, MARGINS_CSV)
    weighting = await _weigh(engine, ("municipality",))
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "roads")
        found = await read.channel_comparison(conn, inquiry, weighting, scope=Scope(), threshold=5)
    assert found.sms.active and found.voice.active
    assert found.sms.weights is not None and found.sms.weights.report.n == 31
    satisfied = next(gaps for q, gaps in found.questions if q.key == "satisfied")
    yes = next(g for g in satisfied if g.value == "yes")
    assert not yes.hidden and yes.raw is not None and yes.adjusted is not None
    assert yes.raw.estimate == pytest.approx(17 / 31 - 12 / 19)
    # weighted to the same profile, the gap is not the raw one (who answers differs by channel)
    assert yes.adjusted.estimate != pytest.approx(yes.raw.estimate)
    assert yes.adjusted.low < yes.adjusted.estimate < yes.adjusted.high  # type: ignore[operator]
    unweighted = await _weigh(engine, ())
    async with engine.connect() as conn:
        plain = await read.channel_comparison(conn, inquiry, unweighted, scope=Scope())
    assert not plain.sms.active and all(g.adjusted is None for _, gaps in plain.questions for g in gaps)


async def test_over_time_counts_answers_per_hour_and_says_when_the_estimate_settled(
    engine: AsyncEngine,
) -> None:
    await seed(engine)
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, "roads")
        found = await read.trend(conn, inquiry, inquiry.questions[0], read.Weighting(), scope=Scope())
    assert found.hours >= 24 and found.started is not None
    assert sum(n for points in found.per_hour.values() for _, n in points) == 50
    assert set(found.per_hour) == {"sms", "voice"}
    last = found.checkpoints[-1]
    assert last.shares[0].estimate == pytest.approx(29 / 50)
    assert found.settled is not None and found.moved is not None
    assert found.settled == (found.moved < read.SETTLED_POINTS)
    async with engine.connect() as conn:
        empty = await read.trend(
            conn, inquiry, inquiry.questions[1], read.Weighting(), scope=Scope(frozenset({-1}))
        )
    assert empty.settled is None and empty.checkpoints == ()
