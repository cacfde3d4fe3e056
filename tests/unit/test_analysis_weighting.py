"""Survey weights: post-stratification, raking to margins, trimming, Kish's design effect, and
the errors bad input gets."""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import product

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from callcenter.analysis.weighting import (
    BadMargin,
    BadWeights,
    CategoryNotInMargin,
    EmptyCategory,
    EmptySample,
    MarginTotalsDiffer,
    MissingAttribute,
    NotConverged,
    Sample,
    WeightingError,
    ZeroPopulationCell,
    kish,
    kish_of,
    post_stratify,
    rake,
)

Cells = dict[tuple[str, ...], int]


def counts(cells: Cells, *variables: str) -> Sample:
    return Sample.from_counts(cells, variables=variables)


def weighted_margin(sample: Sample, weights: dict[tuple[str, ...], float], at: int) -> dict[str, float]:
    """Weighted shares of one variable, recomputed from the cells (not from the report)."""
    total = sum(sample.counts[c] * w for c, w in weights.items())
    out: dict[str, float] = defaultdict(float)
    for cell, w in weights.items():
        out[cell[at]] += sample.counts[cell] * w / total
    return dict(out)


# --- post-stratification ---------------------------------------------------------------


def test_post_stratification_weighs_each_cell_by_population_share_over_sample_share() -> None:
    sample = counts({("a",): 20, ("b",): 30}, "municipality")
    result = post_stratify(sample, population={("a",): 600, ("b",): 400})
    assert result.cells[("a",)] == pytest.approx(0.6 / 0.4)
    assert result.cells[("b",)] == pytest.approx(0.4 / 0.6)
    report = result.report
    assert (report.method, report.iterations, report.converged) == ("post_stratification", 0, True)
    assert report.max_deviation == pytest.approx(0, abs=1e-12)
    assert report.margins == {"municipality": pytest.approx({"a": 0.6, "b": 0.4})}
    assert report.population_total == 1000
    # by hand: sum(w) = 50, sum(w²) = 20 * 2.25 + 30 * 4/9 = 58.33..., deff = 50 * 58.33 / 50²
    assert report.deff == pytest.approx(50 * (45 + 40 / 3) / 2500)
    assert report.n_eff == pytest.approx(50 / report.deff)


def test_post_stratification_hands_back_one_weight_per_record_in_order() -> None:
    records = [{"sex": "f", "age": "18-29"}, {"sex": "m", "age": "18-29"}, {"sex": "f", "age": "18-29"}]
    sample = Sample.from_records(records, variables=("sex", "age"))
    result = post_stratify(sample, population={("f", "18-29"): 0.5, ("m", "18-29"): 0.5})
    assert result.respondents == pytest.approx((0.75, 1.5, 0.75))
    assert sum(result.respondents or ()) == pytest.approx(3)  # relative weights: mean 1


def test_post_stratification_refuses_a_sample_cell_the_population_table_lacks() -> None:
    sample = counts({("a",): 5, ("z",): 2}, "municipality")
    with pytest.raises(CategoryNotInMargin) as caught:
        post_stratify(sample, population={("a",): 10})
    assert caught.value.details["cell"] == ["z"]
    assert caught.value.error_id == "weighting_category_not_in_margin"


def test_post_stratification_refuses_respondents_in_a_zero_population_cell() -> None:
    sample = counts({("a",): 5, ("b",): 2}, "municipality")
    with pytest.raises(ZeroPopulationCell) as caught:
        post_stratify(sample, population={("a",): 10, ("b",): 0})
    assert caught.value.details == {"cell": ["b"], "respondents": 2}


def test_post_stratification_refuses_a_populated_cell_without_respondents() -> None:
    sample = counts({("a",): 5}, "municipality")
    with pytest.raises(EmptyCategory) as caught:
        post_stratify(sample, population={("a",): 10, ("b",): 30})
    assert caught.value.details["cell"] == ["b"]
    assert caught.value.details["share"] == pytest.approx(0.75)


# --- raking ---------------------------------------------------------------------------

SKEWED: Cells = {("a", "x"): 30, ("a", "y"): 10, ("b", "x"): 5, ("b", "y"): 55}
MARGINS = {"region": {"a": 500, "b": 500}, "sex": {"x": 400, "y": 600}}


def test_raking_reaches_every_margin_and_reports_how() -> None:
    sample = counts(SKEWED, "region", "sex")
    result = rake(sample, margins=MARGINS)
    assert weighted_margin(sample, dict(result.cells), 0) == pytest.approx({"a": 0.5, "b": 0.5}, abs=1e-6)
    assert weighted_margin(sample, dict(result.cells), 1) == pytest.approx({"x": 0.4, "y": 0.6}, abs=1e-6)
    report = result.report
    assert report.converged and 1 < report.iterations < 100
    assert report.max_deviation <= report.tolerance == 1e-6
    assert report.margins == {"region": {"a": 0.5, "b": 0.5}, "sex": {"x": 0.4, "y": 0.6}}
    assert report.margin_totals == {"region": 1000, "sex": 1000}
    assert report.population_total == 1000 and not report.normalised
    assert report.trim_ratio is None and report.trimmed_cells == 0
    assert sum(sample.counts[c] * w for c, w in result.cells.items()) == pytest.approx(sample.n)


def test_raked_weights_are_a_product_of_one_factor_per_margin() -> None:
    """IPF multiplies by a region factor and a sex factor, so the weights of a 2x2 table have
    a cross-product ratio of 1 (the sample's interaction is kept), independent of the margins."""
    result = rake(counts(SKEWED, "region", "sex"), margins=MARGINS)
    w = result.cells
    assert w[("a", "x")] * w[("b", "y")] == pytest.approx(w[("a", "y")] * w[("b", "x")])


def test_raking_on_one_variable_is_post_stratification_on_it() -> None:
    sample = counts({("a",): 20, ("b",): 30}, "municipality")
    raked = rake(sample, margins={"municipality": {"a": 0.6, "b": 0.4}})
    assert raked.cells == pytest.approx(post_stratify(sample, population={("a",): 6, ("b",): 4}).cells)
    assert raked.report.iterations == 1


def test_raking_that_cannot_converge_raises_with_the_sweeps_and_the_last_deviation() -> None:
    # region and sex are perfectly confounded in the sample: a=x, b=y; no weights give
    # region 50/50 and sex 30/70 at once
    sample = counts({("a", "x"): 10, ("b", "y"): 10}, "region", "sex")
    margins = {"region": {"a": 0.5, "b": 0.5}, "sex": {"x": 0.3, "y": 0.7}}
    with pytest.raises(NotConverged) as caught:
        rake(sample, margins=margins, max_iterations=40)
    error = caught.value
    assert error.error_id == "weighting_not_converged"
    assert error.details["iterations"] == 40
    assert error.details["max_deviation"] == pytest.approx(0.2)
    assert error.details["reason"] == "max_iterations"
    assert error.weights.report.converged is False
    assert error.weights.report.stop_reason == "max_iterations"


def test_raking_stops_unconverged_when_a_weight_vanishes() -> None:
    # b and y must each carry 95 % of the population with no weight above 1.5 times the mean:
    # the cell (a, x) is pushed towards zero, sweep after sweep
    sample = counts({cell: 1 for cell in product("ab", "xy")}, "region", "sex")
    margins = {"region": {"a": 0.05, "b": 0.95}, "sex": {"x": 0.05, "y": 0.95}}
    with pytest.raises(NotConverged) as caught:
        rake(sample, margins=margins, trim_ratio=1.5)
    assert caught.value.details["reason"] == "vanishing_weight"
    report = caught.value.weights.report
    assert report.stop_reason == "vanishing_weight" and report.iterations < 100
    assert report.min_weight > 0


def test_nonconvergence_can_be_returned_but_only_flagged() -> None:
    sample = counts({("a", "x"): 10, ("b", "y"): 10}, "region", "sex")
    margins = {"region": {"a": 0.5, "b": 0.5}, "sex": {"x": 0.3, "y": 0.7}}
    result = rake(sample, margins=margins, max_iterations=40, allow_nonconvergence=True)
    assert result.report.converged is False
    assert result.report.iterations == 40
    assert result.report.max_deviation == pytest.approx(0.2)


def test_margins_with_different_totals_are_refused_with_the_totals() -> None:
    sample = counts(SKEWED, "region", "sex")
    margins = {"region": {"a": 500, "b": 500}, "sex": {"x": 400, "y": 650}}
    with pytest.raises(MarginTotalsDiffer) as caught:
        rake(sample, margins=margins)
    assert caught.value.details["totals"] == {"region": 1000, "sex": 1050}
    assert caught.value.error_id == "weighting_margin_totals_differ"


def test_margins_with_different_totals_are_used_as_shares_when_asked() -> None:
    # counts for one variable, shares for the other
    sample = counts(SKEWED, "region", "sex")
    margins: dict[str, dict[str, float]] = {"region": {"a": 500, "b": 500}, "sex": {"x": 0.4, "y": 0.6}}
    result = rake(sample, margins=margins, normalise=True)
    assert result.report.normalised and result.report.population_total is None
    assert result.cells == pytest.approx(rake(sample, margins=MARGINS).cells)


def test_a_sample_category_missing_from_its_margin_is_named() -> None:
    sample = counts({**SKEWED, ("c", "x"): 4}, "region", "sex")
    with pytest.raises(CategoryNotInMargin) as caught:
        rake(sample, margins=MARGINS)
    assert caught.value.details == {"variable": "region", "category": "c", "respondents": 4}


def test_respondents_in_a_zero_population_category_are_refused() -> None:
    sample = counts(SKEWED, "region", "sex")
    with pytest.raises(ZeroPopulationCell) as caught:
        rake(sample, margins={"region": {"a": 1000, "b": 0}, "sex": {"x": 400, "y": 600}})
    assert caught.value.details == {"variable": "region", "category": "b", "respondents": 60}


def test_a_populated_category_without_respondents_is_refused() -> None:
    sample = counts(SKEWED, "region", "sex")
    with pytest.raises(EmptyCategory) as caught:
        rake(sample, margins={"region": {"a": 400, "b": 400, "c": 200}, "sex": {"x": 400, "y": 600}})
    assert caught.value.details["category"] == "c"


def test_an_empty_sample_is_refused() -> None:
    with pytest.raises(EmptySample):
        Sample.from_records([], variables=("sex",))
    with pytest.raises(EmptySample):
        Sample.from_counts({("f",): 0}, variables=("sex",))
    assert EmptySample.error_id == "weighting_empty_sample"


def test_a_record_without_a_weighting_variable_is_named() -> None:
    with pytest.raises(MissingAttribute) as caught:
        Sample.from_records([{"sex": "f"}, {"age": "30-44"}], variables=("sex",))
    assert caught.value.details == {"respondent": 1, "variable": "sex"}


@pytest.mark.parametrize(
    "margins",
    [
        {"region": {"a": -1, "b": 2}},
        {"region": {"a": math.nan, "b": 2}},
        {"region": {"a": 0, "b": 0}},
        {"region": {}},
        {"ward": {"a": 1}},
        {},
    ],
)
def test_margins_that_are_not_counts_or_shares_are_refused(margins: dict[str, dict[str, float]]) -> None:
    with pytest.raises(BadMargin):
        rake(counts(SKEWED, "region", "sex"), margins=margins)


def test_a_trim_ratio_at_or_under_the_mean_is_refused() -> None:
    with pytest.raises(BadMargin):
        rake(counts(SKEWED, "region", "sex"), margins=MARGINS, trim_ratio=1.0)


def test_every_weighting_error_is_a_weighting_error_with_a_stable_id() -> None:
    classes: list[type[WeightingError]] = [
        EmptySample, MissingAttribute, BadMargin, CategoryNotInMargin, ZeroPopulationCell,
        EmptyCategory, MarginTotalsDiffer, BadWeights, NotConverged,
    ]  # fmt: skip
    ids = [cls.error_id for cls in classes]
    assert all(i.startswith("weighting_") for i in ids) and len(set(ids)) == len(ids)


# --- trimming -------------------------------------------------------------------------

# region b has 10 of 100 respondents for half the population: its weights are about 5
TRIMMABLE: Cells = {("a", "x"): 50, ("a", "y"): 40, ("b", "x"): 2, ("b", "y"): 8}
TRIM_MARGINS = {"region": {"a": 0.5, "b": 0.5}, "sex": {"x": 0.3, "y": 0.7}}


def test_trimming_caps_weights_at_the_ratio_times_the_mean_and_still_meets_the_margins() -> None:
    sample = counts(TRIMMABLE, "region", "sex")
    untrimmed = rake(sample, margins=TRIM_MARGINS)
    assert untrimmed.report.max_weight > 5.3
    trimmed = rake(sample, margins=TRIM_MARGINS, trim_ratio=5.2)
    report = trimmed.report
    assert report.converged and report.trimmed_cells >= 1 and report.trimmed_respondents >= 2
    assert report.max_weight <= 5.2 * (1 + 1e-9)  # the mean is 1
    assert weighted_margin(sample, dict(trimmed.cells), 0) == pytest.approx({"a": 0.5, "b": 0.5}, abs=1e-6)
    assert weighted_margin(sample, dict(trimmed.cells), 1) == pytest.approx({"x": 0.3, "y": 0.7}, abs=1e-6)
    assert report.deff < untrimmed.report.deff


def test_trimming_that_cannot_hold_with_the_margins_is_a_nonconvergence() -> None:
    # region b needs a mean weight of 5 to reach half the population: a cap of 4 forbids it
    sample = counts(TRIMMABLE, "region", "sex")
    with pytest.raises(NotConverged) as caught:
        rake(sample, margins=TRIM_MARGINS, trim_ratio=4.0, max_iterations=200)
    assert caught.value.details["trim_ratio"] == 4.0
    assert caught.value.details["max_deviation"] > 0.05


def test_a_cap_that_binds_nothing_changes_nothing() -> None:
    sample = counts(SKEWED, "region", "sex")
    assert rake(sample, margins=MARGINS, trim_ratio=5).cells == rake(sample, margins=MARGINS).cells


# --- Kish ----------------------------------------------------------------------------


def test_kish_design_effect_by_hand() -> None:
    # n = 4, sum(w) = 8, sum(w²) = 22: deff = 4 * 22 / 64, n_eff = 64 / 22
    found = kish_of([1, 1, 2, 4])
    assert found.deff == pytest.approx(1.375)
    assert found.n_eff == pytest.approx(64 / 22)
    assert kish([(2, 1.0), (1, 2.0), (1, 4.0)]) == found  # per cell: the same


def test_equal_weights_have_no_design_effect() -> None:
    found = kish_of([0.3] * 7)
    assert found.deff == 1.0 and found.n_eff == pytest.approx(7)


@pytest.mark.parametrize("weights", [[], [0.0, 0.0], [1.0, -1.0], [math.inf]])
def test_kish_refuses_weights_it_cannot_use(weights: list[float]) -> None:
    with pytest.raises(WeightingError):
        kish_of(weights)


# --- properties ----------------------------------------------------------------------


@st.composite
def full_samples(draw: st.DrawFn) -> tuple[Sample, dict[str, dict[str, float]]]:
    """A sample with every cross-cell present (so raking to any positive margins converges)
    and random positive margins as shares."""
    sizes = draw(st.lists(st.integers(2, 4), min_size=1, max_size=3))
    variables = [f"v{k}" for k in range(len(sizes))]
    levels = [[f"c{i}" for i in range(size)] for size in sizes]
    cells = {cell: draw(st.integers(1, 40)) for cell in product(*levels)}
    margins = {}
    for variable, names in zip(variables, levels, strict=True):
        raw = draw(st.lists(st.integers(1, 100), min_size=len(names), max_size=len(names)))
        margins[variable] = {name: r / sum(raw) for name, r in zip(names, raw, strict=True)}
    return Sample.from_counts(cells, variables=variables), margins


@hsettings(max_examples=60, deadline=None)
@given(full_samples())
def test_converged_raking_reproduces_every_margin_with_positive_weights(
    drawn: tuple[Sample, dict[str, dict[str, float]]],
) -> None:
    sample, margins = drawn
    result = rake(sample, margins=margins, tolerance=1e-8, max_iterations=5000)
    assert result.report.converged
    for at, variable in enumerate(sample.variables):
        assert weighted_margin(sample, dict(result.cells), at) == pytest.approx(margins[variable], abs=1e-7)
    assert all(w > 0 for w in result.cells.values())
    assert result.report.deff >= 1
    assert result.report.n_eff <= sample.n * (1 + 1e-12)


@hsettings(max_examples=60, deadline=None)
@given(full_samples(), st.sampled_from([1.5, 2.0, 3.0, 5.0]))
def test_trimmed_raking_when_converged_keeps_every_weight_under_the_cap(
    drawn: tuple[Sample, dict[str, dict[str, float]]], ratio: float
) -> None:
    sample, margins = drawn
    result = rake(sample, margins=margins, trim_ratio=ratio, max_iterations=300, allow_nonconvergence=True)
    weights = result.cells
    mean = sum(sample.counts[c] * w for c, w in weights.items()) / sample.n
    assert mean == pytest.approx(1)
    assert all(w > 0 for w in weights.values())
    assert result.report.deff >= 1
    if result.report.converged:
        assert max(weights.values()) <= ratio * mean * (1 + 1e-9)
        for at, variable in enumerate(sample.variables):
            assert weighted_margin(sample, dict(weights), at) == pytest.approx(margins[variable], abs=1e-5)


@given(st.lists(st.floats(0.01, 100), min_size=1, max_size=50))
def test_the_design_effect_is_never_under_one(weights: list[float]) -> None:
    found = kish_of(weights)
    assert found.deff >= 1
    assert found.n_eff <= len(weights) + 1e-9
