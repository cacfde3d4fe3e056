"""Shares with Wilson intervals (plain and Kish-adjusted) and Newcombe's interval for a
difference, checked against Newcombe's published examples and an independent computation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.analysis.estimates import (
    Z95,
    EstimateError,
    Status,
    difference,
    proportion,
    share_table,
    weighted_proportion,
    wilson,
)


def wilson_by_bisection(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson interval from its definition, not its closed form: the values of pi for
    which |p - pi| = z * sqrt(pi (1 - pi) / n), found by bisection on each side of p."""

    def gap(pi: float) -> float:
        return abs(p - pi) - z * math.sqrt(pi * (1 - pi) / n)

    def root(inside: float, outside: float) -> float:
        if gap(outside) <= 0:  # p at the edge: the interval reaches 0 or 1
            return outside
        for _ in range(200):
            middle = (inside + outside) / 2
            if gap(middle) > 0:
                outside = middle
            else:
                inside = middle
        return (inside + outside) / 2

    return root(p, 0.0), root(p, 1.0)


def newcombe_by_hand(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_by_bisection(p1, n1)
    l2, u2 = wilson_by_bisection(p2, n2)
    d = p1 - p2
    return d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


# --- published worked examples -------------------------------------------------------


def test_wilson_for_81_of_263_matches_newcombe_1998a() -> None:
    # Newcombe (1998) Stat Med 17:857-872, the 81/263 example: Wilson score (0.2553, 0.3662)
    found = proportion(81, 263)
    assert (round(found.low or 0, 4), round(found.high or 0, 4)) == (0.2553, 0.3662)
    assert (found.low, found.high) == pytest.approx(wilson_by_bisection(81 / 263, 263), abs=1e-12)


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2", "published"),
    [
        # Newcombe (1998) Stat Med 17:873-890, Table II, method 10 (hybrid score)
        (56, 70, 48, 80, (0.2000, 0.0524, 0.3339)),
        (9, 10, 3, 10, (0.6000, 0.1705, 0.8090)),
        (5, 56, 0, 29, (0.0893, -0.0381, 0.1926)),
        (0, 10, 0, 20, (0.0000, -0.1611, 0.2775)),
        (10, 10, 0, 20, (1.0000, 0.6791, 1.0000)),
    ],
)
def test_newcombe_hybrid_score_interval_matches_the_published_table(
    k1: int, n1: int, k2: int, n2: int, published: tuple[float, float, float]
) -> None:
    found = difference(proportion(k1, n1), proportion(k2, n2))
    assert found.status is Status.OK
    assert found.estimate is not None and found.low is not None and found.high is not None
    assert (round(found.estimate, 4), round(found.low, 4), round(found.high, 4)) == published
    assert (found.estimate, found.low, found.high) == pytest.approx(
        newcombe_by_hand(k1, n1, k2, n2), abs=1e-12
    )


def test_a_difference_whose_interval_excludes_zero_is_flagged() -> None:
    assert difference(proportion(56, 70), proportion(48, 80)).excludes_zero is True
    assert difference(proportion(48, 80), proportion(56, 70)).excludes_zero is True  # below zero
    assert difference(proportion(5, 56), proportion(0, 29)).excludes_zero is False


# --- small groups ----------------------------------------------------------------------


def test_an_empty_group_is_insufficient_and_does_not_crash() -> None:
    found = proportion(0, 0)
    assert found.status is Status.INSUFFICIENT
    assert (found.estimate, found.low, found.high) == (None, None, None)


def test_a_group_of_one_has_a_share_but_no_interval() -> None:
    found = proportion(1, 1)
    assert found.status is Status.INSUFFICIENT
    assert (found.estimate, found.low, found.high) == (1.0, None, None)


@pytest.mark.parametrize(("k", "n"), [(0, 0), (1, 1), (0, 1)])
def test_a_difference_with_a_group_of_zero_or_one_is_insufficient(k: int, n: int) -> None:
    for found in (
        difference(proportion(k, n), proportion(30, 50)),
        difference(proportion(30, 50), proportion(k, n)),
    ):
        assert found.status is Status.INSUFFICIENT
        assert (found.estimate, found.low, found.high, found.excludes_zero) == (None, None, None, None)


def test_the_minimum_group_size_can_be_raised() -> None:
    assert proportion(3, 9, min_n=10).status is Status.INSUFFICIENT
    assert proportion(3, 10, min_n=10).status is Status.OK


# --- weighted shares -----------------------------------------------------------------


def test_a_weighted_share_with_equal_weights_is_the_unweighted_one() -> None:
    table = share_table([("yes", 30, 1.7), ("no", 20, 1.7)])
    yes = table.share("yes")
    assert table.n_eff == pytest.approx(50) and table.deff == pytest.approx(1)
    assert yes.weighted.estimate == pytest.approx(yes.unweighted.estimate)
    assert (yes.weighted.low, yes.weighted.high) == pytest.approx((yes.unweighted.low, yes.unweighted.high))


def test_a_weighted_share_uses_the_wilson_interval_on_the_effective_sample_size() -> None:
    # 40 respondents of weight 0.5 said yes, 10 of weight 3 said no
    table = share_table([("yes", 40, 0.5), ("no", 10, 3.0)])
    sum_w, sum_w2 = 40 * 0.5 + 10 * 3.0, 40 * 0.25 + 10 * 9.0
    n_eff = sum_w**2 / sum_w2  # 2500 / 100 = 25
    assert table.n == 50 and table.n_eff == pytest.approx(n_eff) and table.deff == pytest.approx(2.0)
    yes = table.share("yes")
    assert yes.count == 40 and yes.weighted_count == pytest.approx(20)
    assert yes.weighted.estimate == pytest.approx(20 / 50)
    assert yes.unweighted.estimate == pytest.approx(40 / 50)
    assert (yes.weighted.low, yes.weighted.high) == pytest.approx(wilson_by_bisection(0.4, n_eff), abs=1e-12)
    assert yes.weighted.n_eff == pytest.approx(25)


def test_unequal_weights_widen_the_interval_of_the_same_share() -> None:
    equal = weighted_proportion(sum_weights_yes=20, sum_weights=50, sum_squares=50, n=50)
    unequal = weighted_proportion(sum_weights_yes=20, sum_weights=50, sum_squares=100, n=50)
    assert equal.estimate == unequal.estimate == pytest.approx(0.4)
    assert (unequal.high or 0) - (unequal.low or 0) > (equal.high or 0) - (equal.low or 0)


def test_the_share_table_lists_every_option_even_unchosen_and_then_the_others() -> None:
    table = share_table([("b", 3, 1.0), ("x", 1, 1.0), ("y", 2, 1.0)], values=["a", "b"])
    assert [s.value for s in table.shares] == ["a", "b", "y", "x"]
    a = table.share("a")
    assert a.count == 0 and a.unweighted.estimate == 0.0 and a.unweighted.low == 0.0
    assert a.unweighted.high == pytest.approx(wilson_by_bisection(0, 6)[1])


def test_an_empty_share_table_is_insufficient_and_has_no_intervals() -> None:
    table = share_table([], values=["yes", "no"])
    assert table.status is Status.INSUFFICIENT and table.n == 0 and table.n_eff == 0
    assert all(s.weighted.status is Status.INSUFFICIENT for s in table.shares)
    assert all(s.unweighted.estimate is None for s in table.shares)


def test_a_weighted_difference_uses_the_kish_adjusted_intervals() -> None:
    a = share_table([("yes", 40, 0.5), ("no", 10, 3.0)]).share("yes").weighted
    b = share_table([("yes", 10, 1.0), ("no", 40, 1.0)]).share("yes").weighted
    found = difference(a, b)
    l1, u1 = wilson_by_bisection(0.4, 25)
    l2, u2 = wilson_by_bisection(0.2, 50)
    assert found.estimate == pytest.approx(0.2)
    assert found.low == pytest.approx(0.2 - math.hypot(0.4 - l1, u2 - 0.2))
    assert found.high == pytest.approx(0.2 + math.hypot(u1 - 0.4, 0.2 - l2))


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_counts_that_are_not_a_share_are_refused(k: int, n: int) -> None:
    with pytest.raises(EstimateError) as caught:
        proportion(k, n)
    assert caught.value.error_id == "estimate_bad_input"


@pytest.mark.parametrize("row", [("yes", 3, 0.0), ("yes", 3, -1.0), ("yes", -1, 1.0), ("yes", 3, math.nan)])
def test_rows_with_a_weight_that_is_not_positive_are_refused(row: tuple[str, int, float]) -> None:
    with pytest.raises(EstimateError):
        share_table([row])


def test_shares_at_different_levels_cannot_be_subtracted() -> None:
    with pytest.raises(EstimateError):
        difference(proportion(5, 10), proportion(5, 10, z=2.5758))


def test_wilson_refuses_an_empty_base() -> None:
    with pytest.raises(EstimateError):
        wilson(0.5, 0)


# --- properties ----------------------------------------------------------------------


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_the_wilson_interval_holds_the_share_and_stays_in_zero_one(kn: tuple[int, int]) -> None:
    k, n = kn
    low, high = wilson(k / n, n)
    assert 0 <= low <= k / n <= high <= 1
    assert (low, high) == pytest.approx(wilson_by_bisection(k / n, n), abs=1e-9)


groups = st.integers(2, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(groups, groups)
def test_the_newcombe_interval_holds_the_difference_and_stays_in_minus_one_one(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    found = difference(proportion(*a), proportion(*b))
    assert found.estimate is not None and found.low is not None and found.high is not None
    assert -1 <= found.low <= found.estimate <= found.high <= 1
    assert found.excludes_zero == (found.low > 0 or found.high < 0)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 30), st.floats(0.05, 20)), max_size=12))
def test_weighted_shares_add_up_to_one_and_n_eff_never_exceeds_n(rows: list[tuple[str, int, float]]) -> None:
    table = share_table(rows, values=["a", "b", "c"])
    assert table.n_eff <= table.n + 1e-9
    if table.n:
        assert sum(s.weighted.estimate or 0 for s in table.shares) == pytest.approx(1)
        assert sum(s.count for s in table.shares) == table.n
