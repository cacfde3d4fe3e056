"""Order effects: does an option get chosen more when it is listed first?

When an inquiry randomises its options (``inquiry/order.py``), every answer to a choice
question stores the order that citizen saw. Per option, the answers split into those of
citizens who saw it first and those who saw it elsewhere; because the order was drawn at
random, the two groups differ only by the order, and the difference of the option's share
between them is the order effect (primacy when positive). The share by position (1st, 2nd,
...) is given beside it.

Pure: ``(question id, value, stored order, answers)`` rows in, tables out. Shares are
unweighted on purpose: randomisation, not weighting, makes the groups comparable. Each share
has its Wilson interval, the difference Newcombe's hybrid score interval, and ``flag`` says
in one word whether it excludes zero (``first`` favoured, ``later`` favoured, or ``none``).
Small cells are hidden as elsewhere: a row whose choosers or non-choosers in either group
number from 1 to ``threshold - 1`` shows no figures (``hidden``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from callcenter.analysis.estimates import Difference, Proportion, difference, proportion
from callcenter.inquiry.definition import Question, QuestionKind
from callcenter.inquiry.order import parse_order

Flag = Literal["first", "later", "none", "insufficient"]


@dataclass(frozen=True, slots=True)
class OptionEffect:
    value: str
    first: Proportion | None  # its share among those who saw it first
    later: Proportion | None  # ... and among those who saw it at another place
    gap: Difference | None  # first - later
    by_position: tuple[Proportion | None, ...]  # its share when shown at place 1, 2, ...
    flag: Flag
    hidden: bool


@dataclass(frozen=True, slots=True)
class QuestionEffects:
    question: Question
    answers: int  # answers that carry an order
    options: tuple[OptionEffect, ...]


def order_effects(
    questions: Iterable[Question],
    rows: Iterable[tuple[int, str, str | None, int]],
    *,
    threshold: int = 5,
) -> tuple[QuestionEffects, ...]:
    """The order effects of every choice question with answers that carry an order."""
    # question id -> (value, order) -> answers
    tallies: dict[int, dict[tuple[str, tuple[int, ...]], int]] = defaultdict(lambda: defaultdict(int))
    counts = {q.id: len(q.options) for q in questions if q.kind is QuestionKind.CHOICE}
    for question_id, value, stored, count in rows:
        if question_id not in counts:
            continue
        order = parse_order(stored, counts[question_id])
        if order is not None:
            tallies[question_id][(value, order)] += count
    out = []
    for question in questions:
        tally = tallies.get(question.id or -1)
        if not tally or question.kind is not QuestionKind.CHOICE:
            continue
        out.append(_question(question, tally, threshold))
    return tuple(out)


def _question(
    question: Question, tally: dict[tuple[str, tuple[int, ...]], int], threshold: int
) -> QuestionEffects:
    size = len(question.options)
    # at[place][option] = answers of citizens who saw ``option`` at ``place``; chose[...] = of
    # those, the answers choosing it
    seen = [[0] * size for _ in range(size)]
    chose = [[0] * size for _ in range(size)]
    values = [o.value for o in question.options]
    for (value, order), count in tally.items():
        picked = values.index(value) if value in values else None
        for place, original in enumerate(order):
            seen[place][original - 1] += count
            if picked == original - 1:
                chose[place][original - 1] += count
    options = []
    for i, value in enumerate(values):
        n_first, k_first = seen[0][i], chose[0][i]
        n_later = sum(seen[p][i] for p in range(1, size))
        k_later = sum(chose[p][i] for p in range(1, size))
        small = any(0 < x < threshold for x in (k_first, n_first - k_first, k_later, n_later - k_later))
        if small:
            options.append(OptionEffect(value, None, None, None, (), "insufficient", True))
            continue
        first, later = proportion(k_first, n_first), proportion(k_later, n_later)
        gap = difference(first, later)
        flag: Flag = "insufficient"
        if gap.excludes_zero is not None:
            flag = "none" if not gap.excludes_zero else "first" if (gap.estimate or 0) > 0 else "later"
        positions = tuple(proportion(chose[p][i], seen[p][i]) for p in range(size))
        options.append(OptionEffect(value, first, later, gap, positions, flag, False))
    return QuestionEffects(question, sum(tally.values()), tuple(options))
