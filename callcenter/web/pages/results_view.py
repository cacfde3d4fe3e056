"""What the results pages show, in the reader's language: names of groups and answers, the
weighting report and its errors in words, shares as percentages, charts. (The handlers in
``results.py`` stay thin: they read the request, ask ``analysis.read`` and render.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from callcenter.analysis.estimates import Difference, Proportion
from callcenter.analysis.margins import NoMargin
from callcenter.analysis.order_effects import QuestionEffects
from callcenter.analysis.read import (
    UNKNOWN,
    ChannelComparison,
    Comparison,
    Estimates,
    Group,
    Place,
    QuestionEstimate,
    Trend,
    Weighting,
    option_label,
)
from callcenter.analysis.weighting import WeightingError
from callcenter.inquiry.definition import Inquiry, Question
from callcenter.messages import N_
from callcenter.web.charts import Bar, Series, bars, timeline, with_id
from callcenter.web.i18n import current_language
from callcenter.web.i18n import gettext as _

VARIABLE_NAMES = {
    "municipality": N_("Municipality"),
    "district": N_("District"),
    "language": N_("Language"),
    "channel": N_("Channel"),
    "sex": N_("Sex"),
    "age_band": N_("Age band"),
}
SEXES = {"m": N_("Men"), "f": N_("Women")}
CHANNELS = {"sms": N_("SMS"), "voice": N_("Voice"), "mixed": N_("Both channels")}
LANGUAGES = {"ar": N_("Arabic"), "en": N_("English")}
_ERRORS = {
    "weighting_category_not_in_margin": N_(
        "The margins do not list %(category)s, where %(respondents)s people answered: add it to the"
        " margins, or weight on another attribute."
    ),
    "weighting_zero_population_cell": N_(
        "The margins give %(category)s a population of zero, yet %(respondents)s people there answered."
    ),
    "weighting_empty_category": N_(
        "Nobody has answered in %(category)s, which the margins list: no weight can stand for it."
        " Weight on a coarser attribute."
    ),
    "weighting_margin_totals_differ": N_(
        "The margins add up to different totals (%(totals)s): correct them, or use each margin as shares."
    ),
    "weighting_not_converged": N_(
        "Raking did not converge after %(iterations)s rounds (a margin is still %(deviation)s points off):"
        " the margins cannot all be met at once. The results are shown unweighted."
    ),
    "weighting_empty_sample": N_("Nobody has answered yet: there is nothing to weigh."),
}


def language() -> str:
    return current_language.get()


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def interval(p: Proportion | Difference | None) -> Markup:
    """``low–high`` isolated left to right (an Arabic line would otherwise swap the ends)."""
    if p is None or p.low is None or p.high is None:
        return Markup("—")
    return Markup('<bdi dir="ltr">{}–{}</bdi>').format(pct(p.low), pct(p.high))


def points(d: Difference | None) -> str:
    if d is None or d.estimate is None:
        return "—"
    return f"{d.estimate * 100:+.1f}"


@dataclass(frozen=True, slots=True)
class Namer:
    """Names of groups and answers in the reader's language."""

    inquiry: Inquiry
    places: dict[str, Place]

    def group(self, dimension: str | None, key: str) -> str:
        english = language() == "en"
        if key == UNKNOWN:
            return _("Not known")
        if dimension == "municipality" and key in self.places:
            place = self.places[key]
            return place.name_en if english and place.name_en else place.name_ar
        if dimension == "district":
            for place in self.places.values():
                if place.district_code == key:
                    return place.district_en if english and place.district_en else place.district_ar or key
        if dimension == "channel":
            return _(CHANNELS.get(key, key))
        if dimension == "language":
            return _(LANGUAGES.get(key, key))
        if dimension == "sex":
            return _(SEXES.get(key, key))
        if dimension and dimension.startswith("q:"):
            return option_label(self.question(dimension[2:]), key, language())
        return key

    def question(self, key: str) -> Question:
        return next(q for q in self.inquiry.questions if q.key == key)

    def value(self, question: Question, value: str) -> str:
        return option_label(question, value, language())

    def dimension(self, dimension: str) -> str:
        if dimension.startswith("q:"):
            return self.question(dimension[2:]).text.get("en" if language() == "en" else "ar")
        return _(VARIABLE_NAMES.get(dimension, dimension))


def weighting_error(error: WeightingError | NoMargin | None, namer: Namer) -> str | None:
    """The reason weighting failed, in words."""
    if error is None:
        return None
    if isinstance(error, NoMargin):
        return _("No population margin for %(variable)s: an administrator loads one on the margins page.") % {
            "variable": namer.dimension(error.variable)
        }
    details: dict[str, Any] = dict(error.details)
    message = _ERRORS.get(error.error_id)
    if message is None:
        return _("The margins cannot be used: %(reason)s") % {"reason": error.message}
    variable = details.get("variable")
    if "category" in details:
        category = namer.group(variable, str(details["category"]))
    elif "cell" in details:
        category = " / ".join(str(c) for c in details["cell"])
    else:
        category = ""
    totals = details.get("totals") or {}
    return _(message) % {
        "category": category,
        "respondents": details.get("respondents", 0),
        "totals": ", ".join(f"{namer.dimension(v)} {t:,.0f}" for v, t in totals.items()),
        "iterations": details.get("iterations", 0),
        "deviation": f"{float(details.get('max_deviation', 0)) * 100:.2f}",
    }


def weighting_report(weighting: Weighting, namer: Namer) -> dict[str, Any] | None:
    """The report shown beside weighted results: method, margins, trimming, convergence."""
    if weighting.weights is None or weighting.plan is None:
        return None
    report = weighting.weights.report
    margins = []
    for variable, targets in report.margins.items():
        rows = sorted(targets.items(), key=lambda kv: -kv[1])
        margins.append(
            {
                "variable": namer.dimension(variable),
                "source": weighting.plan.sources.get(variable, ""),
                "rows": [(namer.group(variable, k), pct(v)) for k, v in rows],
            }
        )
    return {
        "method": _("Post-stratification") if report.method == "post_stratification" else _("Raking"),
        "variables": ", ".join(namer.dimension(v) for v in report.variables),
        "n": report.n,
        "n_eff": report.n_eff,
        "deff": report.deff,
        "cells": report.cells,
        "iterations": report.iterations,
        "converged": report.converged,
        "max_deviation": report.max_deviation,
        "trim_ratio": report.trim_ratio,
        "trimmed_cells": report.trimmed_cells,
        "trimmed_respondents": report.trimmed_respondents,
        "min_weight": report.min_weight,
        "max_weight": report.max_weight,
        "normalised": report.normalised,
        "scoped": weighting.scoped,
        "margins": margins,
    }


def _chart(group: Group, question: Question, namer: Namer, weighted: bool, chart_id: str) -> Markup:
    items = []
    for cell in group.cells:
        p = cell.weighted if weighted else cell.unweighted
        items.append(
            Bar(
                namer.value(question, cell.value),
                None if p is None else p.estimate,
                None if p is None else p.low,
                None if p is None else p.high,
                pct(None if p is None else p.estimate),
            )
        )
    title = question.text.get("en" if language() == "en" else "ar")
    return with_id(bars(items, title=title, rtl=language() == "ar"), chart_id)


def question_view(estimate: QuestionEstimate, namer: Namer, *, weighted: bool, index: int) -> dict[str, Any]:
    question = estimate.question
    overall = estimate.overall
    rows = []
    for cell in overall.cells:
        rows.append({"value": cell.value, "label": namer.value(question, cell.value), "cell": cell})
    return {
        "key": question.key,
        "text": question.text.get("en" if language() == "en" else "ar"),
        "kind": question.kind.value,
        "n": overall.n,
        "n_eff": overall.n_eff,
        "deff": overall.deff,
        "rows": rows,
        "chart": _chart(overall, question, namer, weighted, f"chart-{index}"),
        "groups": [{"key": g.key, "label": namer.group(None, g.key), "group": g} for g in estimate.groups],
        "values": [(v, namer.value(question, v)) for v in estimate.values],
        "hidden": any(c.count is None for c in overall.cells),
    }


def crosstab_view(estimate: QuestionEstimate, namer: Namer, by: str) -> list[dict[str, Any]]:
    return [{"key": g.key, "label": namer.group(by, g.key), "group": g} for g in estimate.groups]


def ranked_chart(
    estimate: QuestionEstimate, namer: Namer, by: str, *, weighted: bool, chart_id: str
) -> Markup | None:
    """The groups (municipalities, districts ...) ranked by their share of the answer most
    given overall, each with its interval: the map's job where no boundaries can be shipped.
    Hidden (suppressed) groups come last, without a bar."""
    overall = {c.value: (c.weighted if weighted else c.unweighted) for c in estimate.overall.cells}
    shown = {v: p.estimate for v, p in overall.items() if p is not None and p.estimate is not None}
    if not shown or len(estimate.groups) < 2:
        return None
    leading = max(shown, key=lambda v: shown[v])
    items: list[tuple[float, Bar]] = []
    for g in estimate.groups:
        cell = next((c for c in g.cells if c.value == leading), None)
        p = None if cell is None else (cell.weighted if weighted else cell.unweighted)
        share = None if p is None else p.estimate
        bar = Bar(
            namer.group(by, g.key),
            share,
            None if p is None else p.low,
            None if p is None else p.high,
            pct(share),
        )
        items.append((-1.0 if share is None else share, bar))
    items.sort(key=lambda pair: -pair[0])
    title = _("%(answer)s, by %(dimension)s, highest first") % {
        "answer": namer.value(estimate.question, leading),
        "dimension": namer.dimension(by),
    }
    return with_id(bars([bar for _, bar in items], title=title, rtl=language() == "ar"), chart_id)


def heat(p: Proportion | None) -> str:
    """The heat-table class of a share: ten steps of 10 points."""
    if p is None or p.estimate is None:
        return "heat-none"
    return f"heat-{min(9, int(p.estimate * 10))}"


def verdict(d: Difference | None, a: str, b: str) -> str:
    """The plain-words flag of a difference ``a - b``."""
    if d is None or d.estimate is None or d.excludes_zero is None:
        return _("Too few answers to compare.")
    if not d.excludes_zero:
        return _("No clear difference: the interval includes zero.")
    if d.estimate > 0:
        return _("Higher in %(a)s than in %(b)s: the interval excludes zero.") % {"a": a, "b": b}
    return _("Lower in %(a)s than in %(b)s: the interval excludes zero.") % {"a": a, "b": b}


def comparison_view(
    comparisons: list[Comparison], question: Question, namer: Namer, a: str, b: str
) -> list[dict[str, Any]]:
    return [
        {
            "label": namer.value(question, c.value),
            "hidden": c.hidden,
            "unweighted": c.unweighted,
            "weighted": c.weighted,
            "verdict_unweighted": verdict(c.unweighted, a, b)
            if not c.hidden
            else _("Hidden: too few answers."),
            "verdict_weighted": verdict(c.weighted, a, b) if not c.hidden else _("Hidden: too few answers."),
        }
        for c in comparisons
    ]


def group_choices(estimates: Estimates, namer: Namer) -> list[tuple[str, str]]:
    if not estimates.questions or estimates.by is None:
        return []
    keys: dict[str, None] = {}
    for q in estimates.questions:
        for g in q.groups:
            keys.setdefault(g.key)
    return [(k, namer.group(estimates.by, k)) for k in sorted(keys)]


def channel_view(comparison: ChannelComparison, namer: Namer) -> dict[str, Any]:
    """The SMS-voice gaps, in words."""
    sms, voice = _("SMS"), _("Voice")
    questions = []
    for question, gaps in comparison.questions:
        rows = []
        for gap in gaps:
            rows.append(
                {
                    "label": namer.value(question, gap.value),
                    "gap": gap,
                    "reading": _("Hidden: too few answers.")
                    if gap.hidden
                    else verdict(gap.adjusted if gap.adjusted is not None else gap.raw, sms, voice),
                }
            )
        questions.append({"text": question.text.get("en" if language() == "en" else "ar"), "rows": rows})
    adjusted = comparison.sms.active and comparison.voice.active
    errors = [
        e
        for e in (
            weighting_error(comparison.sms.error, namer),
            weighting_error(comparison.voice.error, namer),
        )
        if e
    ]
    return {"questions": questions, "adjusted": adjusted, "errors": errors}


_ORDER_READINGS = {
    "first": N_("Chosen more often when listed first: the interval excludes zero."),
    "later": N_("Chosen less often when listed first: the interval excludes zero."),
    "none": N_("No clear order effect: the interval includes zero."),
    "insufficient": N_("Hidden: too few answers."),
}


def order_view(effects: tuple[QuestionEffects, ...], namer: Namer) -> list[dict[str, Any]]:
    """Per randomised question, each option's share when listed first and when not, in words."""
    english = language() == "en"
    return [
        {
            "text": q.question.text.get("en" if english else "ar"),
            "answers": q.answers,
            "places": len(q.question.options),
            "rows": [
                {
                    "label": namer.value(q.question, o.value),
                    "effect": o,
                    "reading": _(_ORDER_READINGS[o.flag]),
                }
                for o in q.options
            ],
        }
        for q in effects
    ]


VALUE_LINES = ("v0", "v1", "v2", "v3", "v4", "v5")


def trend_view(found: Trend, namer: Namer) -> dict[str, Any]:
    """The over-time section: answers per hour by channel, the cumulative shares, the note."""
    rtl = language() == "ar"
    per_hour = []
    for channel, points in found.per_hour.items():
        counted = dict(points)  # hours without an answer are zeros, not gaps
        series = [(h, float(counted.get(h, 0))) for h in range(found.hours + 1)]
        per_hour.append(Series(_(CHANNELS.get(channel, channel)), channel, series))
    peak = max((n for s in per_hour for _h, n in s.points), default=1.0)
    question = found.question
    shares = [
        Series(
            namer.value(question, value),
            VALUE_LINES[i % len(VALUE_LINES)],
            [(c.hour, c.shares[i].estimate or 0.0) for c in found.checkpoints],
        )
        for i, value in enumerate(found.values[: len(VALUE_LINES)])
    ]
    step = 24 if found.hours >= 48 else 6
    marks = [c for c in found.checkpoints if c.hour % step == 0 or c.hour == found.hours]
    if found.settled is None:
        note = _("Less than 24 hours of answers: too early to say whether the estimate has settled.")
    elif found.settled:
        note = _("Settled: no share has moved by a point or more in the last 24 hours.")
    else:
        note = _("Not settled yet: a share moved %(points)s points in the last 24 hours.") % {
            "points": f"{(found.moved or 0) * 100:.1f}"
        }
    return {
        "question": question.text.get("en" if language() == "en" else "ar"),
        "key": question.key,
        "hours": found.hours,
        "note": note,
        "settled": found.settled,
        "legend": [(s.name, s.css) for s in per_hour],
        "value_legend": [(s.name, s.css) for s in shares],
        "per_hour": with_id(
            timeline(per_hour, title=_("Answers per hour since the first answer"), rtl=rtl, y_max=peak),
            "trend-hourly",
        ),
        "shares": with_id(
            timeline(shares, title=_("Cumulative share of each answer"), rtl=rtl, y_max=1.0), "trend-shares"
        ),
        "values": [namer.value(question, v) for v in found.values],
        "marks": marks,
    }
