"""Results as plain data (JSON) for the command line and the read-only API: per question
``n``, ``n_eff`` and ``deff``; per answer the weighted ``share``, ``low`` and ``high`` with the
unweighted ones beside them. Cells hidden by suppression are null, as on the pages."""

from __future__ import annotations

from typing import Any

from callcenter.analysis.estimates import Proportion
from callcenter.analysis.order_effects import QuestionEffects
from callcenter.analysis.read import Estimates, Group, option_label


def proportion(p: Proportion | None) -> dict[str, float | None]:
    if p is None:
        return {"share": None, "low": None, "high": None}
    return {"share": p.estimate, "low": p.low, "high": p.high}


def _answers(group: Group, estimates: Estimates, question: Any, language: str) -> list[dict[str, Any]]:
    weighted = estimates.weighting.active
    out = []
    for cell in group.cells:
        main = cell.weighted if weighted else cell.unweighted
        out.append(
            {
                "value": cell.value,
                "label": option_label(question, cell.value, language),
                "count": cell.count,
                **proportion(main),
                "unweighted": proportion(cell.unweighted),
            }
        )
    return out


def estimates_json(estimates: Estimates, *, language: str = "ar") -> dict[str, Any]:
    weighting = estimates.weighting
    english = language == "en"
    questions = []
    for q in estimates.questions:
        entry: dict[str, Any] = {
            "key": q.question.key,
            "text": q.question.text.get("en" if english else "ar"),
            "n": q.overall.n,
            "n_eff": q.overall.n_eff,
            "deff": q.overall.deff,
            "answers": _answers(q.overall, estimates, q.question, language),
        }
        if estimates.by is not None:
            entry["groups"] = [
                {
                    "group": g.key,
                    "n": g.n,
                    "n_eff": g.n_eff,
                    "deff": g.deff,
                    "answers": _answers(g, estimates, q.question, language),
                }
                for g in q.groups
            ]
        questions.append(entry)
    report = None
    if weighting.weights is not None and weighting.plan is not None:
        report = weighting.weights.report.to_json() | {"sources": dict(weighting.plan.sources)}
    return {
        "inquiry": estimates.inquiry.slug,
        "status": estimates.inquiry.status.value,
        "weighted": weighting.active,
        "weighting": report,
        "weighting_error": None if weighting.error is None else str(weighting.error),
        "by": estimates.by,
        "suppression_threshold": estimates.threshold,
        "questions": questions,
    }


def order_effects_json(effects: tuple[QuestionEffects, ...], *, language: str = "ar") -> list[dict[str, Any]]:
    """Per randomised question, each option's share when listed first and when not, the gap
    with its interval, the share at each place, and ``flag``: first | later | none |
    insufficient (hidden cells are null)."""
    english = language == "en"
    out = []
    for q in effects:
        options = []
        for o in q.options:
            gap = None
            if o.gap is not None:
                gap = {"estimate": o.gap.estimate, "low": o.gap.low, "high": o.gap.high}
            options.append(
                {
                    "value": o.value,
                    "label": option_label(q.question, o.value, language),
                    "first": proportion(o.first),
                    "later": proportion(o.later),
                    "gap": gap,
                    "by_position": [proportion(p) for p in o.by_position],
                    "flag": o.flag,
                }
            )
        out.append(
            {
                "key": q.question.key,
                "text": q.question.text.get("en" if english else "ar"),
                "answers": q.answers,
                "options": options,
            }
        )
    return out
