"""Shares of answers with 95 % intervals, weighted and unweighted, and differences between
two groups.

Pure: values in, values out. The input is per-cell aggregates: ``(answer value, respondents,
weight of each of them)`` rows, one per answer value and weighting cell (weight 1.0 when the
results are unweighted), so a database read model can ``GROUP BY`` value and cell and pass
the rows on.

Formulas:

* **Wilson score interval** (Wilson 1927; method 3 of Newcombe 1998a, *Stat Med*
  17:857-872) for a share ``p`` on ``n``::

      (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)

  It stays inside [0, 1] and behaves for small ``n`` and ``p`` near 0 or 1, unlike the
  normal ("Wald") interval.
* **Weighted share with a Kish-adjusted Wilson interval**: ``p_w = sum(w·y) / sum(w)``, and
  the Wilson interval computed on the effective sample size of the group,
  ``n_eff = sum(w)² / sum(w²)`` (Kish 1965), in place of ``n``. Unequal weights lose
  precision; ``n_eff`` says how many equally weighted respondents the group is worth. The
  substitution of ``n_eff`` for ``n`` is Korn & Graubard's (1998, *Survey Methodology* 24);
  with Wilson it is the "Kish-adjusted Wilson" interval evaluated by Dean & Pagano (2015,
  *J Surv Stat Methodol*). Only the design effect of unequal weighting enters: no
  clustering here.
* **Difference of two shares, Newcombe's hybrid score interval** (method 10 of Newcombe
  1998b, *Stat Med* 17:873-890): with ``(l1, u1)`` and ``(l2, u2)`` the Wilson intervals of
  ``p1`` and ``p2`` and ``d = p1 - p2``::

      L = d - sqrt((p1 - l1)² + (u2 - p2)²)
      U = d + sqrt((u1 - p1)² + (p2 - l2)²)

  For weighted shares the Wilson intervals are the Kish-adjusted ones, so the same formula
  serves both. ``excludes_zero`` is the plain flag "the groups differ at this level".

Groups too small to say anything (fewer than ``min_n`` respondents, 2 by default: one
answer is not a share) get ``status = "insufficient"`` and no interval, never an exception;
a difference involving such a group is insufficient too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Any

from callcenter.errors import CallCenterError

#: the normal quantile for a two-sided 95 % interval
Z95 = NormalDist().inv_cdf(0.975)
MIN_N = 2


class EstimateError(CallCenterError):
    """Input no estimate can come from (a negative count, a weight that is not positive)."""

    error_id = "estimate_bad_input"


class Status(StrEnum):
    OK = "ok"
    INSUFFICIENT = "insufficient"  # fewer than min_n respondents: no interval is shown


@dataclass(frozen=True, slots=True)
class Proportion:
    """A share with its interval; ``n_eff`` is ``n`` when unweighted."""

    estimate: float | None  # None when nobody is in the group
    low: float | None
    high: float | None
    n: int
    n_eff: float
    z: float
    status: Status

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Share:
    """One answer value in one group: the unweighted share and its weighted counterpart."""

    value: str
    count: int  # respondents who gave it
    weighted_count: float  # their weights added up
    unweighted: Proportion
    weighted: Proportion

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ShareTable:
    """Every answer value of one question in one group (all respondents, a municipality...)."""

    n: int
    sum_weights: float
    n_eff: float  # sum(w)² / sum(w²) over the group's respondents; 0 when empty
    deff: float  # n / n_eff: the precision lost to unequal weights
    shares: tuple[Share, ...]
    status: Status

    def share(self, value: str) -> Share:
        return next(s for s in self.shares if s.value == value)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Difference:
    """``a - b`` with Newcombe's hybrid score interval."""

    estimate: float | None
    low: float | None
    high: float | None
    excludes_zero: bool | None  # True: the interval is all above or all below zero
    status: Status

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def wilson(p: float, n: float, *, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a share ``p`` observed on ``n`` (which may be an effective,
    non-integer sample size)."""
    if not n > 0 or not 0 <= p <= 1 or not z > 0:
        raise EstimateError(f"no Wilson interval for p={p!r} on n={n!r}", p=p, n=n)
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # the interval holds p exactly (at p = 0 or 1 rounding would leave it a hair outside)
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def proportion(k: int, n: int, *, z: float = Z95, min_n: int = MIN_N) -> Proportion:
    """``k`` of ``n`` with the Wilson interval (unweighted)."""
    if k < 0 or n < 0 or k > n:
        raise EstimateError(f"{k} of {n} is not a share", k=k, n=n)
    return _proportion(k / n if n else None, n, float(n), z=z, min_n=min_n)


def weighted_proportion(
    *,
    sum_weights_yes: float,
    sum_weights: float,
    sum_squares: float,
    n: int,
    z: float = Z95,
    min_n: int = MIN_N,
) -> Proportion:
    """The weighted share ``sum_weights_yes / sum_weights`` with the Wilson interval on
    ``n_eff = sum_weights² / sum_squares``."""
    if n < 0 or sum_weights < 0 or sum_squares < 0 or not 0 <= sum_weights_yes <= sum_weights * (1 + 1e-12):
        raise EstimateError("inconsistent weighted totals", n=n, sum_weights=sum_weights)
    if n == 0 or sum_weights == 0:
        return _proportion(None, n, 0.0, z=z, min_n=min_n)
    p = min(1.0, sum_weights_yes / sum_weights)
    n_eff = min(float(n), sum_weights * sum_weights / sum_squares)  # <= n; the min drops rounding
    return _proportion(p, n, n_eff, z=z, min_n=min_n)


def share_table(
    rows: Iterable[tuple[str, int, float]],
    *,
    values: Sequence[str] = (),
    z: float = Z95,
    min_n: int = MIN_N,
) -> ShareTable:
    """Shares of every answer value from ``(value, respondents, weight of each)`` rows.

    ``values`` lists the values to show even when nobody gave them (a question's options),
    in that order; values met in the rows but not listed follow, most frequent first.
    """
    counts: dict[str, int] = defaultdict(int)
    weighted: dict[str, list[float]] = defaultdict(list)
    all_w: list[float] = []
    all_w2: list[float] = []
    n = 0
    for value, count, weight in rows:
        if count < 0 or not math.isfinite(weight) or weight <= 0:
            raise EstimateError(
                f"bad row {value!r}: {count} respondents of weight {weight}", value=value, count=count
            )
        counts[value] += count
        weighted[value].append(count * weight)
        all_w.append(count * weight)
        all_w2.append(count * weight * weight)
        n += count
    sum_w, sum_w2 = math.fsum(all_w), math.fsum(all_w2)
    n_eff = min(float(n), sum_w * sum_w / sum_w2) if sum_w2 > 0 else 0.0
    order = list(dict.fromkeys(values))
    order += sorted((v for v in counts if v not in set(order)), key=lambda v: (-counts[v], v))
    shares = []
    for value in order:
        k = counts.get(value, 0)
        yes = math.fsum(weighted.get(value, []))
        shares.append(
            Share(
                value=value,
                count=k,
                weighted_count=yes,
                unweighted=proportion(k, n, z=z, min_n=min_n),
                weighted=weighted_proportion(
                    sum_weights_yes=yes, sum_weights=sum_w, sum_squares=sum_w2, n=n, z=z, min_n=min_n
                ),
            )
        )
    return ShareTable(
        n=n,
        sum_weights=sum_w,
        n_eff=n_eff,
        deff=n / n_eff if n_eff else 1.0,
        shares=tuple(shares),
        status=Status.OK if n >= min_n else Status.INSUFFICIENT,
    )


def difference(a: Proportion, b: Proportion) -> Difference:
    """``a - b`` with Newcombe's hybrid score interval (method 10) built from the two Wilson
    intervals (Kish-adjusted ones for weighted shares)."""
    if not math.isclose(a.z, b.z):
        raise EstimateError("the two shares have intervals at different levels", z_a=a.z, z_b=b.z)
    if a.status is not Status.OK or b.status is not Status.OK:
        return Difference(None, None, None, None, Status.INSUFFICIENT)
    assert a.estimate is not None and a.low is not None and a.high is not None
    assert b.estimate is not None and b.low is not None and b.high is not None
    d = a.estimate - b.estimate
    low = d - math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    high = d + math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    low, high = max(-1.0, low), min(1.0, high)
    return Difference(d, low, high, low > 0 or high < 0, Status.OK)


def _proportion(p: float | None, n: int, n_eff: float, *, z: float, min_n: int) -> Proportion:
    if min_n < 1:
        raise EstimateError("min_n must be at least 1", min_n=min_n)
    if p is None or n < min_n:
        return Proportion(p, None, None, n, n_eff, z, Status.INSUFFICIENT)
    low, high = wilson(p, n_eff, z=z)
    return Proportion(p, low, high, n, n_eff, z, Status.OK)
