"""The estimator checked against an independent implementation: statsmodels (a test
dependency) and plain numpy, on several datasets, to 1e-9 or tighter.

* weighted shares: ``statsmodels.stats.weightstats.DescrStatsW`` on one row per respondent;
* Kish's design effect and effective size: numpy, and the identity ``deff = 1 + CV²`` of the
  weights (Kish 1992, population coefficient of variation);
* intervals on the effective size: statsmodels' own Wilson (``proportion_confint``) and
  Newcombe (``confint_proportions_2indep(method="newcomb")``) evaluated at ``n_eff``;
* raking: a numpy IPF over the full array of cells, a Poisson log-linear fit with the seed as
  offset (statsmodels GLM: the raked table is its fitted table, Deming & Stephan 1940), and
  for 2×2 the closed form that raking keeps the seed's odds ratio (Mosteller 1968);
* post-stratification: numpy.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint
from statsmodels.stats.weightstats import DescrStatsW

from callcenter.analysis.estimates import Z95, difference, share_table
from callcenter.analysis.weighting import Sample, kish, post_stratify, rake

TIGHT = 1e-9
Cell = tuple[str, ...]


def _respondents(rng: np.random.Generator, n: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``n`` respondents in ``len(weights)`` cells with a yes/no answer each: (cell, yes)."""
    cells = rng.integers(0, len(weights), size=n)
    yes = rng.random(n) < 0.3 + 0.4 * (cells / max(len(weights) - 1, 1))
    return cells, yes


DATASETS = [
    # (seed, respondents, one weight per cell)
    (1, 40, np.array([1.0, 1.0, 1.0])),  # equal weights: deff 1
    (2, 57, np.array([0.4, 1.3, 2.9])),
    (3, 500, np.array([0.2, 0.5, 1.0, 2.5, 7.0])),  # very unequal
    (4, 12, np.array([3.0, 0.25])),  # small
]


@pytest.mark.parametrize(("seed", "n", "cell_weights"), DATASETS)
def test_weighted_share_deff_and_interval_match_statsmodels(
    seed: int, n: int, cell_weights: np.ndarray
) -> None:
    rng = np.random.default_rng(seed)
    cells, yes = _respondents(rng, n, cell_weights)
    w = cell_weights[cells]
    rows = [
        (value, int(np.sum((cells == c) & (yes == flag))), float(cell_weights[c]))
        for c in range(len(cell_weights))
        for value, flag in (("yes", True), ("no", False))
        if np.any((cells == c) & (yes == flag))
    ]
    table = share_table(rows, values=("yes", "no"))
    share = table.share("yes").weighted
    assert share.estimate is not None and share.low is not None and share.high is not None

    # the share: statsmodels' weighted mean of the 0/1 answers
    stats = DescrStatsW(yes.astype(float), weights=w, ddof=0)
    assert share.estimate == pytest.approx(float(stats.mean), abs=TIGHT)
    # Kish: numpy, and deff = 1 + CV² (population variance of the weights over their mean²)
    n_eff = float(np.sum(w) ** 2 / np.sum(w**2))
    deff = 1 + float(np.var(w) / np.mean(w) ** 2)
    assert table.n_eff == pytest.approx(n_eff, rel=TIGHT) and share.n_eff == pytest.approx(n_eff, rel=TIGHT)
    assert table.deff == pytest.approx(deff, rel=TIGHT)
    design = kish((1, float(x)) for x in w)
    assert design.deff == pytest.approx(deff, rel=TIGHT) and design.n_eff == pytest.approx(n_eff, rel=TIGHT)
    # the variance the interval rests on: p(1-p)/n_eff, p(1-p) being statsmodels' weighted variance
    assert float(stats.var) == pytest.approx(share.estimate * (1 - share.estimate), abs=TIGHT)
    # the interval: statsmodels' Wilson interval on the effective size
    low, high = proportion_confint(share.estimate * n_eff, n_eff, alpha=0.05, method="wilson")
    assert (share.low, share.high) == (pytest.approx(low, abs=TIGHT), pytest.approx(high, abs=TIGHT))
    # the unweighted share beside it: the plain Wilson interval
    plain = table.share("yes").unweighted
    low, high = proportion_confint(int(yes.sum()), n, alpha=0.05, method="wilson")
    assert (plain.low, plain.high) == (pytest.approx(low, abs=TIGHT), pytest.approx(high, abs=TIGHT))


def test_our_z_is_statsmodels_normal_quantile() -> None:
    from scipy.stats import norm

    assert pytest.approx(float(norm.isf(0.025)), abs=1e-15) == Z95


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((56, 70), (48, 80)),
        ((9, 10), (3, 10)),
        ((6, 7), (2, 7)),
        ((5, 56), (0, 29)),
        ((150, 400), (170, 390)),
    ],
)
def test_newcombe_difference_matches_statsmodels(a: tuple[int, int], b: tuple[int, int]) -> None:
    rows_a = [("yes", a[0], 1.0), ("no", a[1] - a[0], 1.0)]
    rows_b = [("yes", b[0], 1.0), ("no", b[1] - b[0], 1.0)]
    pa, pb = (share_table(r, values=("yes", "no")).share("yes").unweighted for r in (rows_a, rows_b))
    found = difference(pa, pb)
    low, high = confint_proportions_2indep(a[0], a[1], b[0], b[1], method="newcomb", compare="diff")
    assert (found.low, found.high) == (pytest.approx(low, abs=TIGHT), pytest.approx(high, abs=TIGHT))


def test_weighted_newcombe_difference_is_statsmodels_on_effective_sizes() -> None:
    rng = np.random.default_rng(7)
    groups = []
    for weights in (np.array([0.5, 1.0, 3.0]), np.array([1.0, 2.0])):
        cells, yes = _respondents(rng, 90, weights)
        rows = [
            (value, int(np.sum((cells == c) & (yes == flag))), float(weights[c]))
            for c in range(len(weights))
            for value, flag in (("yes", True), ("no", False))
            if np.any((cells == c) & (yes == flag))
        ]
        groups.append(share_table(rows, values=("yes", "no")).share("yes").weighted)
    a, b = groups
    found = difference(a, b)
    assert a.estimate is not None and b.estimate is not None
    low, high = confint_proportions_2indep(
        a.estimate * a.n_eff, a.n_eff, b.estimate * b.n_eff, b.n_eff, method="newcomb", compare="diff"
    )
    assert (found.low, found.high) == (pytest.approx(low, abs=TIGHT), pytest.approx(high, abs=TIGHT))


# -- raking -------------------------------------------------------------------------------------


def _numpy_ipf(seed: np.ndarray, targets: list[np.ndarray], sweeps: int = 100_000) -> np.ndarray:
    """Plain IPF over a full array: scale along each axis in turn until the margins hold."""
    table = seed.astype(float).copy()
    axes = range(seed.ndim)
    for _ in range(sweeps):
        for axis, target in zip(axes, targets, strict=True):
            others = tuple(a for a in axes if a != axis)
            reached = table.sum(axis=others)
            shape = [1] * seed.ndim
            shape[axis] = -1
            table *= (target / reached).reshape(shape)
        worst = max(
            float(np.max(np.abs(table.sum(axis=tuple(a for a in axes if a != axis)) - t)))
            for axis, t in zip(axes, targets, strict=True)
        )
        if worst < 1e-13 * table.sum():
            return table
    raise AssertionError("numpy IPF did not converge")


def _glm_ipf(seed: np.ndarray, targets: list[np.ndarray]) -> np.ndarray:
    """The raked table as a Poisson log-linear fit: main effects, the seed as offset, fitted
    to any table with the target margins (their independence table): the fitted table
    keeps the seed's interactions and meets the margins, which is what raking converges to."""
    total = float(targets[0].sum())
    index = list(itertools.product(*(range(k) for k in seed.shape)))
    y = np.array(
        [np.prod([t[i] / total for t, i in zip(targets, idx, strict=True)]) * total for idx in index]
    )
    columns = [np.ones(len(index))]
    for axis, size in enumerate(seed.shape):
        for level in range(1, size):
            columns.append(np.array([1.0 if idx[axis] == level else 0.0 for idx in index]))
    x = np.column_stack(columns)
    offset = np.log(np.array([seed[idx] for idx in index], dtype=float))
    fit = sm.GLM(y, x, family=sm.families.Poisson(), offset=offset).fit(tol=1e-14, maxiter=200)
    fitted = np.empty(seed.shape)
    for idx, value in zip(index, fit.fittedvalues, strict=True):
        fitted[idx] = value
    return fitted


def _ours(seed: np.ndarray, targets: list[np.ndarray]) -> dict[Cell, float]:
    names = tuple(f"v{axis}" for axis in range(seed.ndim))
    counts = {
        tuple(str(i) for i in idx): int(seed[idx]) for idx in itertools.product(*map(range, seed.shape))
    }
    margins = {
        name: {str(k): float(x) for k, x in enumerate(t)} for name, t in zip(names, targets, strict=True)
    }
    result = rake(
        Sample.from_counts(counts, variables=names), margins=margins, tolerance=1e-14, max_iterations=50_000
    )
    assert result.report.converged
    return dict(result.cells)


def _relative_weights(seed: np.ndarray, table: np.ndarray) -> dict[Cell, float]:
    """Raked table -> one weight per respondent of each cell, mean 1 over respondents."""
    scale = seed.sum() / table.sum()
    return {
        tuple(str(i) for i in idx): float(table[idx] / seed[idx] * scale)
        for idx in itertools.product(*map(range, seed.shape))
    }


RAKING = [
    # 2x2, the survey-to-census example of the Apophenia raking notes
    (np.array([[7, 9], [12, 7]]), [np.array([5.0, 15.0]), np.array([10.0, 10.0])]),
    # municipality x sex x age band, unequal counts, targets in people
    (
        np.random.default_rng(11).integers(3, 60, size=(3, 2, 4)),
        [np.array([1.2e6, 8.0e5, 4.0e5]), np.array([1.25e6, 1.15e6]), np.array([9e5, 7e5, 5e5, 3e5])],
    ),
    # 4x3, a sample far from its targets
    (
        np.array([[40, 30, 20], [35, 50, 100], [30, 80, 70], [20, 30, 40]]),
        [np.array([150.0, 300.0, 400.0, 150.0]), np.array([200.0, 300.0, 500.0])],
    ),
]


@pytest.mark.parametrize(("seed", "targets"), RAKING)
def test_raked_weights_match_numpy_ipf_and_a_poisson_loglinear_fit(
    seed: np.ndarray, targets: list[np.ndarray]
) -> None:
    ours = _ours(seed, targets)
    for independent in (_numpy_ipf(seed, targets), _glm_ipf(seed, targets)):
        theirs = _relative_weights(seed, independent)
        assert ours.keys() == theirs.keys()
        for cell, weight in ours.items():
            assert weight == pytest.approx(theirs[cell], rel=TIGHT), cell


def test_raking_a_2x2_table_keeps_its_odds_ratio_closed_form() -> None:
    seed = np.array([[7, 9], [12, 7]])
    rows, cols = np.array([5.0, 15.0]), np.array([10.0, 10.0])
    odds = seed[0, 0] * seed[1, 1] / (seed[0, 1] * seed[1, 0])
    # x = the raked (1,1) cell: x (N - r1 - c1 + x) = odds (r1 - x)(c1 - x), the root within the margins
    n, r1, c1 = rows.sum(), rows[0], cols[0]
    roots = np.roots([1 - odds, (n - r1 - c1) + odds * (r1 + c1), -odds * r1 * c1])
    x = next(float(r.real) for r in roots if max(0.0, r1 + c1 - n) < r.real < min(r1, c1))
    table = np.array([[x, r1 - x], [c1 - x, n - r1 - c1 + x]])
    ours = _ours(seed, [rows, cols])
    for cell, weight in _relative_weights(seed, table).items():
        assert ours[cell] == pytest.approx(weight, rel=TIGHT)


def test_post_stratified_weights_match_numpy() -> None:
    seed = np.random.default_rng(5).integers(1, 40, size=(3, 4))
    population = np.random.default_rng(6).uniform(1e4, 1e5, size=(3, 4))
    counts = {(str(i), str(j)): int(seed[i, j]) for i in range(3) for j in range(4)}
    cells = {(str(i), str(j)): float(population[i, j]) for i in range(3) for j in range(4)}
    result = post_stratify(Sample.from_counts(counts, variables=("a", "b")), population=cells)
    expected = (population / population.sum()) / (seed / seed.sum())
    for (i, j), weight in result.cells.items():
        assert weight == pytest.approx(float(expected[int(i), int(j)]), rel=TIGHT)
    w = np.repeat(expected.ravel(), seed.ravel())
    assert result.report.deff == pytest.approx(1 + float(np.var(w) / np.mean(w) ** 2), rel=TIGHT)
    assert math.isclose(result.report.n_eff, float(w.sum() ** 2 / (w**2).sum()), rel_tol=TIGHT)
