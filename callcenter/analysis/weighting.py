"""Survey weights: post-stratification, raking with trimming, and Kish's design effect.

Pure: values in, values out. The sample comes as respondent records (one mapping of
attributes per respondent) or as respondent counts per cell; everything is computed per
cell (every respondent of a cell gets the cell's weight), so the work grows with the number
of cells, not of respondents.

Weights are *relative*: their mean over respondents is 1 (they sum to ``n``), so a weighted
share is ``sum(w * y) / sum(w)`` whatever the scale; ``report.population_total / n`` turns
them into expansion weights when the margins were population counts.

Methods and formulas:

* **Post-stratification** (the full population table is known): the weight of cell ``c`` is
  its population share over its sample share, ``w_c = (N_c / N) / (n_c / n)``.
* **Raking** (only the margins are known; iterative proportional fitting, Deming & Stephan
  1940): starting from ``w = 1``, each sweep multiplies the weights of every category ``k``
  of every margin variable ``v`` by ``target_v(k) * n / weighted_count_v(k)``. A sweep ends
  with the largest gap between a weighted sample share and its target share over every
  category of every margin, ``max_deviation``; raking has converged when it is at most
  ``tolerance`` (in shares: 1e-6 is a ten-thousandth of a percentage point). Raking can fail
  to converge (margins the sample cannot reach, e.g. two variables perfectly confounded in
  the sample, or margins reachable only by driving some weights to zero): after
  ``max_iterations`` sweeps, or as soon as a weight falls under :data:`VANISHING` times the
  mean (the sign of margins reachable only in the limit), :class:`NotConverged` is raised
  with the sweeps, the last deviation and the reason (``report.stop_reason``), or, with
  ``allow_nonconvergence=True``, the weights come back with ``report.converged = False``.
  Never silently.
* **Trimming** (``trim_ratio``, e.g. :data:`DEFAULT_TRIM_RATIO` = 5): a few huge weights
  make estimates unstable. Each sweep ends by capping the weights at ``trim_ratio`` times
  their mean (the cap is solved exactly so that capped weights equal ``trim_ratio`` times
  the mean *after* capping), and the next sweep re-rakes; trimming and re-raking are thus
  iterated until both hold at once: every margin within the tolerance and no weight above
  the cap. If the cap and the margins cannot both hold, that is a non-convergence.
* **Kish's design effect** of unequal weights (Kish 1965, *Survey Sampling*; Kish 1992,
  *J Off Stat* 8:183-200):
  ``deff = n * sum(w^2) / sum(w)^2`` (>= 1 by Cauchy-Schwarz) and the effective sample size
  ``n_eff = n / deff = sum(w)^2 / sum(w^2)``.

Usage::

    sample = Sample.from_records(rows, variables=("municipality", "sex"))
    result = rake(sample, margins={"municipality": {...}, "sex": {"f": 0.5, "m": 0.5}})
    result.respondents  # one weight per row, in order; result.report.deff
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from callcenter.errors import CallCenterError

Cell = tuple[str, ...]
Margins = Mapping[str, Mapping[str, float]]
StopReason = Literal["converged", "max_iterations", "vanishing_weight"]

DEFAULT_TOLERANCE = 1e-6
DEFAULT_MAX_ITERATIONS = 500
DEFAULT_TRIM_RATIO = 5.0
#: raking stops, not converged, when a weight falls under this share of the mean weight
VANISHING = 1e-9
#: two margins' totals are "the same" within this relative difference
TOTALS_REL_TOL = 1e-9


class WeightingError(CallCenterError):
    """Bad input to a weighting function; ``error_id`` is stable, ``details`` name the culprit."""

    error_id = "weighting_error"


class EmptySample(WeightingError):
    error_id = "weighting_empty_sample"


class MissingAttribute(WeightingError):
    """A respondent record lacks a weighting variable (or its value is not a string)."""

    error_id = "weighting_missing_attribute"


class BadMargin(WeightingError):
    """A margin or population table that cannot be used: negative or non-finite values, no
    positive total, an unknown variable, or a cell of the wrong length."""

    error_id = "weighting_bad_margin"


class CategoryNotInMargin(WeightingError):
    """The sample has a category the margin (or population table) does not list."""

    error_id = "weighting_category_not_in_margin"


class ZeroPopulationCell(WeightingError):
    """Respondents in a category or cell whose population is zero: no weight fits them."""

    error_id = "weighting_zero_population_cell"


class EmptyCategory(WeightingError):
    """A category or cell with population but no respondents: no weight can represent it
    (collapse it with a neighbour, or rake on coarser margins)."""

    error_id = "weighting_empty_category"


class MarginTotalsDiffer(WeightingError):
    """Margins of different variables add up to different totals (pass ``normalise=True`` to
    use each as shares)."""

    error_id = "weighting_margin_totals_differ"


class BadWeights(WeightingError):
    error_id = "weighting_bad_weights"


class NotConverged(WeightingError):
    """Raking stopped after ``max_iterations`` sweeps with margins still off; ``weights`` is
    the last state (its report says ``converged = False``)."""

    status_code = 422
    error_id = "weighting_not_converged"

    def __init__(self, message: str, *, weights: Weights, **details: Any) -> None:
        super().__init__(message, **details)
        self.weights = weights


@dataclass(frozen=True, slots=True)
class Sample:
    """Respondents per cell. ``cell_of`` keeps each record's cell when built from records, so
    weights can be handed back per respondent in the order given."""

    variables: tuple[str, ...]
    counts: Mapping[Cell, int]
    cell_of: tuple[Cell, ...] | None = None

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]], *, variables: Sequence[str]) -> Sample:
        names = _variables(variables)
        cells: list[Cell] = []
        for index, record in enumerate(records):
            cell = []
            for name in names:
                value = record.get(name)
                if not isinstance(value, str):
                    raise MissingAttribute(
                        f"respondent {index} has no {name!r} (a string)", respondent=index, variable=name
                    )
                cell.append(value)
            cells.append(tuple(cell))
        counts: dict[Cell, int] = defaultdict(int)
        for cell_key in cells:
            counts[cell_key] += 1
        if not counts:
            raise EmptySample("the sample has no respondents")
        return cls(names, dict(counts), tuple(cells))

    @classmethod
    def from_counts(cls, counts: Mapping[Cell, int], *, variables: Sequence[str]) -> Sample:
        names = _variables(variables)
        kept: dict[Cell, int] = {}
        for cell, count in counts.items():
            if len(cell) != len(names) or not all(isinstance(v, str) for v in cell):
                raise BadMargin(f"cell {cell!r} does not match the variables {names!r}", cell=list(cell))
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise BadMargin(f"cell {cell!r} has a bad count {count!r}", cell=list(cell))
            if count:
                kept[tuple(cell)] = count
        if not kept:
            raise EmptySample("the sample has no respondents")
        return cls(names, kept)


@dataclass(frozen=True, slots=True)
class Kish:
    n: int
    sum_weights: float
    sum_squares: float
    deff: float
    n_eff: float


@dataclass(frozen=True, slots=True)
class WeightingReport:
    """What was done, for the analyst's screen and the export's methods note."""

    method: Literal["post_stratification", "raking"]
    variables: tuple[str, ...]
    #: target shares per variable and category (the population table's margins when
    #: post-stratifying)
    margins: dict[str, dict[str, float]]
    #: each variable's margin total as given (raking) or the population total
    margin_totals: dict[str, float]
    normalised: bool  # margins with different totals were used as shares
    population_total: float | None  # the margins' common total (1.0 for shares); None if normalised
    n: int
    cells: int
    iterations: int  # raking sweeps (0 for post-stratification)
    converged: bool
    #: converged | max_iterations | vanishing_weight (see the module docstring)
    stop_reason: StopReason
    max_deviation: float  # largest |weighted share - target share| over every margin category
    tolerance: float
    trim_ratio: float | None
    trimmed_cells: int  # cells whose weight sits at the cap
    trimmed_respondents: int
    min_weight: float
    max_weight: float
    deff: float
    n_eff: float

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["variables"] = list(self.variables)
        return data


@dataclass(frozen=True, slots=True)
class Weights:
    """The weight of one respondent of each cell (mean 1 over respondents), and, for a sample
    built from records, one weight per record in the order given."""

    cells: Mapping[Cell, float]
    report: WeightingReport
    respondents: tuple[float, ...] | None = None


def kish(pairs: Iterable[tuple[int, float]]) -> Kish:
    """Kish's design effect of unequal weighting from ``(respondents, weight of each)`` pairs:
    ``deff = n * sum(w^2) / sum(w)^2``, ``n_eff = sum(w)^2 / sum(w^2)``."""
    n = 0
    total: list[float] = []
    squares: list[float] = []
    for count, weight in pairs:
        if count < 0 or not math.isfinite(weight) or weight < 0:
            raise BadWeights(f"bad weight {weight!r} for {count!r} respondents", count=count, weight=weight)
        n += count
        total.append(count * weight)
        squares.append(count * weight * weight)
    sum_w, sum_w2 = math.fsum(total), math.fsum(squares)
    if n == 0:
        raise EmptySample("no respondents to weigh")
    if sum_w <= 0:
        raise BadWeights("the weights add up to zero")
    # >= 1 by Cauchy-Schwarz; the clamp only removes rounding below 1 for equal weights
    deff = max(1.0, n * sum_w2 / (sum_w * sum_w))
    return Kish(n, sum_w, sum_w2, deff, n / deff)


def kish_of(weights: Iterable[float]) -> Kish:
    """:func:`kish` for one weight per respondent."""
    return kish((1, w) for w in weights)


def post_stratify(sample: Sample, *, population: Mapping[Cell, float]) -> Weights:
    """Weights from the full population table (counts or shares per cell, over the sample's
    variables in order): ``w_c = (N_c / N) / (n_c / n)``."""
    pop: dict[Cell, float] = {}
    for cell, value in population.items():
        if len(cell) != len(sample.variables) or not all(isinstance(v, str) for v in cell):
            raise BadMargin(f"population cell {cell!r} does not match {sample.variables!r}", cell=list(cell))
        _check_number(value, cell=list(cell))
        pop[tuple(cell)] = float(value)
    big_n = math.fsum(pop.values())
    if big_n <= 0:
        raise BadMargin("the population table adds up to 0")
    for cell, count in sample.counts.items():
        if cell not in pop:
            raise CategoryNotInMargin(
                f"the population table has no cell {cell!r}", cell=list(cell), respondents=count
            )
        if pop[cell] == 0:
            raise ZeroPopulationCell(
                f"{count} respondents in the cell {cell!r} whose population is 0",
                cell=list(cell),
                respondents=count,
            )
    for cell, value in pop.items():
        if value > 0 and cell not in sample.counts:
            raise EmptyCategory(
                f"the population cell {cell!r} has no respondents", cell=list(cell), share=value / big_n
            )
    n = sample.n
    weights = {cell: (pop[cell] / big_n) / (count / n) for cell, count in sample.counts.items()}
    margins = _implied_margins(sample.variables, {c: v / big_n for c, v in pop.items()})
    deviation = _max_deviation(sample, weights, margins)
    return _result(
        sample,
        weights,
        method="post_stratification",
        margins=margins,
        margin_totals={"population": big_n},
        normalised=False,
        population_total=big_n,
        iterations=0,
        converged=True,
        stop_reason="converged",
        deviation=deviation,
        tolerance=0.0,
        trim_ratio=None,
        trimmed=set(),
    )


def rake(
    sample: Sample,
    *,
    margins: Margins,
    tolerance: float = DEFAULT_TOLERANCE,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    normalise: bool = False,
    trim_ratio: float | None = None,
    allow_nonconvergence: bool = False,
) -> Weights:
    """Weights whose weighted sample margins match ``margins`` (counts or shares per category
    of each variable) by iterative proportional fitting; see the module docstring for the
    convergence rule, trimming and what happens when it does not converge."""
    if not tolerance > 0 or max_iterations < 1:
        raise BadMargin("tolerance must be positive and max_iterations at least 1")
    if trim_ratio is not None and not trim_ratio > 1:
        raise BadMargin(f"trim_ratio must be above 1 (the mean), not {trim_ratio!r}", trim_ratio=trim_ratio)
    if not margins:
        raise BadMargin("no margins to rake on")
    unknown = [v for v in margins if v not in sample.variables]
    if unknown:
        raise BadMargin(f"no such variable in the sample: {unknown[0]!r}", variable=unknown[0])
    totals = _check_values(margins)
    values = list(totals.values())
    agree = all(math.isclose(t, values[0], rel_tol=TOTALS_REL_TOL) for t in values)
    if not agree and not normalise:
        raise MarginTotalsDiffer(
            "the margins add up to different totals: " + ", ".join(f"{v} {t:g}" for v, t in totals.items()),
            totals=dict(totals),
        )
    targets = {v: {k: float(x) / totals[v] for k, x in margin.items()} for v, margin in margins.items()}
    positions = {v: sample.variables.index(v) for v in margins}
    _check_categories(sample, targets, positions)

    n = sample.n
    counts = sample.counts
    weights = dict.fromkeys(counts, 1.0)
    trimmed: set[Cell] = set()
    deviation = math.inf
    iterations = 0
    vanished = False
    while iterations < max_iterations:
        iterations += 1
        for variable, target in targets.items():
            at = positions[variable]
            reached: dict[str, float] = defaultdict(float)
            for cell, count in counts.items():
                reached[cell[at]] += count * weights[cell]
            for cell in weights:
                weights[cell] *= target[cell[at]] * n / reached[cell[at]]
        if trim_ratio is not None:
            trimmed = _cap(weights, counts, trim_ratio)
        deviation = _max_deviation(sample, weights, targets)
        if deviation <= tolerance:
            break
        mean = math.fsum(counts[c] * w for c, w in weights.items()) / n
        if min(weights.values()) < VANISHING * mean:
            vanished = True
            break
    converged = deviation <= tolerance
    stop_reason: StopReason = (
        "converged" if converged else "vanishing_weight" if vanished else "max_iterations"
    )
    scale = n / math.fsum(counts[c] * w for c, w in weights.items())
    weights = {c: w * scale for c, w in weights.items()}
    result = _result(
        sample,
        weights,
        method="raking",
        margins=targets,
        margin_totals=dict(totals),
        normalised=not agree,
        population_total=values[0] if agree else None,
        iterations=iterations,
        converged=converged,
        stop_reason=stop_reason,
        deviation=deviation,
        tolerance=tolerance,
        trim_ratio=trim_ratio,
        trimmed=trimmed,
    )
    if not converged and not allow_nonconvergence:
        raise NotConverged(
            f"raking did not converge in {iterations} sweeps ({stop_reason}):"
            f" a margin is still {deviation:.3g} off",
            weights=result,
            reason=stop_reason,
            iterations=iterations,
            max_deviation=deviation,
            tolerance=tolerance,
            trim_ratio=trim_ratio,
        )
    return result


def _variables(variables: Sequence[str]) -> tuple[str, ...]:
    names = tuple(variables)
    if not names or len(set(names)) != len(names):
        raise BadMargin("the weighting variables must be distinct and at least one", variables=list(names))
    return names


def _check_values(margins: Margins) -> dict[str, float]:
    """Each margin's total; refuses negative, non-finite or all-zero margins."""
    totals: dict[str, float] = {}
    for variable, margin in margins.items():
        if not margin:
            raise BadMargin(f"the margin of {variable!r} is empty", variable=variable)
        for category, value in margin.items():
            _check_number(value, variable=variable, category=category)
        total = math.fsum(float(v) for v in margin.values())
        if total <= 0:
            raise BadMargin(f"the margin of {variable!r} adds up to 0", variable=variable)
        totals[variable] = total
    return totals


def _check_number(value: object, **where: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        place = ", ".join(f"{k}={v!r}" for k, v in where.items())
        raise BadMargin(f"{place}: {value!r} is not a count or a share", value=repr(value), **where)


def _check_categories(
    sample: Sample, targets: Mapping[str, Mapping[str, float]], positions: Mapping[str, int]
) -> None:
    for variable, target in targets.items():
        at = positions[variable]
        present: dict[str, int] = defaultdict(int)
        for cell, count in sample.counts.items():
            present[cell[at]] += count
        for category, count in sorted(present.items()):
            if category not in target:
                raise CategoryNotInMargin(
                    f"{count} respondents have {variable}={category!r}, which the margin does not list",
                    variable=variable,
                    category=category,
                    respondents=count,
                )
            if target[category] == 0:
                raise ZeroPopulationCell(
                    f"{count} respondents have {variable}={category!r}, whose population is 0",
                    variable=variable,
                    category=category,
                    respondents=count,
                )
        for category, share in sorted(target.items()):
            if share > 0 and category not in present:
                raise EmptyCategory(
                    f"no respondent has {variable}={category!r} (a {share:.3%} share of the population)",
                    variable=variable,
                    category=category,
                    share=share,
                )


def _cap(weights: dict[Cell, float], counts: Mapping[Cell, int], ratio: float) -> set[Cell]:
    """Caps the weights in place at ``ratio`` times their mean after capping, and returns the
    capped cells. Capping the ``k`` largest cells at ``C`` gives the mean
    ``(S_rest + C * n_capped) / n``; ``C = ratio * mean`` solves to
    ``C = ratio * S_rest / (n - ratio * n_capped)``, tried for k = 0, 1, ... until the next
    largest weight is under ``C``."""
    n = sum(counts.values())
    rest = math.fsum(counts[c] * w for c, w in weights.items())
    order = sorted(weights, key=lambda c: -weights[c])
    capped_n = 0
    cap = ratio * rest / n
    k = 0
    while k < len(order) and weights[order[k]] > cap:
        more = capped_n + counts[order[k]]
        denominator = n - ratio * more
        if denominator <= 0:  # no mean-relative cap could hold these many respondents
            break
        capped_n = more
        rest -= counts[order[k]] * weights[order[k]]
        cap = ratio * rest / denominator
        k += 1
    capped = set(order[:k])
    for cell in capped:
        weights[cell] = cap
    return capped


def _max_deviation(
    sample: Sample, weights: Mapping[Cell, float], targets: Mapping[str, Mapping[str, float]]
) -> float:
    """The largest gap between a weighted sample share and its target, in shares."""
    total = math.fsum(sample.counts[c] * w for c, w in weights.items())
    worst = 0.0
    for variable, target in targets.items():
        at = sample.variables.index(variable)
        reached: dict[str, list[float]] = defaultdict(list)
        for cell, count in sample.counts.items():
            reached[cell[at]].append(count * weights[cell])
        for category, share in target.items():
            worst = max(worst, abs(math.fsum(reached.get(category, [])) / total - share))
    return worst


def _implied_margins(variables: tuple[str, ...], shares: Mapping[Cell, float]) -> dict[str, dict[str, float]]:
    margins: dict[str, dict[str, float]] = {}
    for at, variable in enumerate(variables):
        margin: dict[str, float] = defaultdict(float)
        for cell, share in shares.items():
            margin[cell[at]] += share
        margins[variable] = dict(margin)
    return margins


def _result(
    sample: Sample,
    weights: dict[Cell, float],
    *,
    method: Literal["post_stratification", "raking"],
    margins: Mapping[str, Mapping[str, float]],
    margin_totals: dict[str, float],
    normalised: bool,
    population_total: float | None,
    iterations: int,
    converged: bool,
    stop_reason: StopReason,
    deviation: float,
    tolerance: float,
    trim_ratio: float | None,
    trimmed: set[Cell],
) -> Weights:
    design = kish((sample.counts[c], w) for c, w in weights.items())
    report = WeightingReport(
        method=method,
        variables=sample.variables,
        margins={v: dict(m) for v, m in margins.items()},
        margin_totals=margin_totals,
        normalised=normalised,
        population_total=population_total,
        n=sample.n,
        cells=len(weights),
        iterations=iterations,
        converged=converged,
        stop_reason=stop_reason,
        max_deviation=deviation,
        tolerance=tolerance,
        trim_ratio=trim_ratio,
        trimmed_cells=len(trimmed),
        trimmed_respondents=sum(sample.counts[c] for c in trimmed),
        min_weight=min(weights.values()),
        max_weight=max(weights.values()),
        deff=design.deff,
        n_eff=design.n_eff,
    )
    respondents = None if sample.cell_of is None else tuple(weights[c] for c in sample.cell_of)
    return Weights(dict(weights), report, respondents)
