"""The analysts' read model: the I/O edge that queries answers, citizens and deliveries and
feeds the pure functions (weights, shares, differences, AAPOR rates, suppression).

Every query aggregates in the database (``GROUP BY`` answer value, group and weighting
cell): the work in Python grows with the number of cells, not of respondents. Weights are
per cell (everyone in a municipality gets the same weight when weighting by municipality),
so a weighted share is computed from ``(value, respondents, weight of the cell)`` rows.

Scope: a :class:`Scope` with municipality ids limits every read to the citizens of those
municipalities (a municipality-scoped analyst); the margins are cut to the same
municipalities (and their districts), each used as shares.

Usage::

    async with engine.connect() as conn:
        inquiry = await load_inquiry(conn, "return-of-life-roads")
        weighting = await weigh(conn, inquiry, ("municipality",), scope=Scope())
        result = await estimates(conn, inquiry, weighting, by="channel", threshold=5)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, and_, case, cast, func, literal, null, select
from sqlalchemy.ext.asyncio import AsyncConnection

from callcenter import models
from callcenter.analysis.aapor import (
    DISPOSITIONS,
    Case,
    Contact,
    Counts,
    Disposition,
    Rates,
    disposition,
    rates,
)
from callcenter.analysis.estimates import Difference, Proportion, ShareTable, Status, difference, share_table
from callcenter.analysis.margin_store import stored_tables
from callcenter.analysis.margins import PROFILE, VARIABLES, NoMargin, Plan, Table, plan
from callcenter.analysis.order_effects import QuestionEffects
from callcenter.analysis.order_effects import order_effects as compute_order_effects
from callcenter.analysis.suppression import Suppressed, SuppressionError, suppress
from callcenter.analysis.weighting import (
    DEFAULT_TRIM_RATIO,
    NotConverged,
    Sample,
    WeightingError,
    Weights,
    post_stratify,
    rake,
)
from callcenter.errors import NotFound
from callcenter.inquiries import to_definition
from callcenter.inquiry.definition import Inquiry, Question, QuestionKind
from callcenter.messages import N_

A = models.table(models.Answer)
C = models.table(models.Citizen)
MU = models.table(models.Municipality)
D = models.table(models.Delivery)
K = models.table(models.Campaign)
S = models.table(models.InquirySession)
CALL = models.table(models.Call)
INQ = models.table(models.Inquiry)
Q = models.table(models.Question)

#: the dimensions a question can be split by (and ``q:KEY``: the answer to another question)
DIMENSIONS = ("municipality", "district", "channel", "language", "sex", "age_band")
#: free-answer questions (number, text) show their most frequent values only
TOP_VALUES = 20
UNKNOWN = "-"  # a citizen without a municipality (or district)
Weighed = Literal["weighted", "unweighted"]


@dataclass(frozen=True, slots=True)
class Scope:
    """The municipalities a reader may see; empty: all of them."""

    municipalities: frozenset[int] = frozenset()

    def where(self) -> list[ColumnElement[bool]]:
        return [C.c.municipality_id.in_(sorted(self.municipalities))] if self.municipalities else []


# -- the inquiry --------------------------------------------------------------------------------


async def load_inquiry(conn: AsyncConnection, slug: str) -> Inquiry:
    """The inquiry's definition by its slug (404 when there is none)."""
    row = (await conn.execute(select(INQ).where(INQ.c.slug == slug[:100]))).one_or_none()
    if row is None:
        raise NotFound(N_("There is no such inquiry."))
    questions = (await conn.execute(select(Q).where(Q.c.inquiry_id == row.id).order_by(Q.c.position))).all()
    return to_definition(models.Inquiry(**row._asdict()), [models.Question(**q._asdict()) for q in questions])


async def is_public(conn: AsyncConnection, slug: str) -> bool:
    """Whether the inquiry's public results page is switched on."""
    return bool((await conn.execute(select(INQ.c.results_public).where(INQ.c.slug == slug[:100]))).scalar())


def option_values(question: Question) -> list[str]:
    """The values a question can take, in order (empty for number and text questions)."""
    if question.kind is QuestionKind.CHOICE:
        return [o.value for o in question.options]
    if question.kind is QuestionKind.RATING:
        low, high = question.bounds
        return [str(v) for v in range(low, high + 1)]
    if question.kind is QuestionKind.YES_NO:
        return ["yes", "no"]
    return []


def option_label(question: Question, value: str, language: str) -> str:
    for option in question.options:
        if option.value == value:
            return option.label.get("en" if language == "en" else "ar")
    if question.kind is QuestionKind.YES_NO and value in ("yes", "no"):
        return {"yes": "نعم", "no": "لا"}[value] if language != "en" else value
    return value


@dataclass(frozen=True, slots=True)
class Listed:
    slug: str
    title_ar: str
    title_en: str
    status: str
    respondents: int
    answers: int


async def list_inquiries(conn: AsyncConnection, scope: Scope) -> list[Listed]:
    """Every inquiry with its respondents and answers within the scope, newest first."""
    counts = (
        select(
            A.c.inquiry_id,
            func.count(func.distinct(A.c.citizen_id)).label("respondents"),
            func.count().label("answers"),
        )
        .select_from(A.join(C, C.c.id == A.c.citizen_id))
        .where(*scope.where())
        .group_by(A.c.inquiry_id)
        .subquery()
    )
    rows = await conn.execute(
        select(
            INQ.c.slug, INQ.c.title_ar, INQ.c.title_en, INQ.c.status, counts.c.respondents, counts.c.answers
        )
        .select_from(INQ.outerjoin(counts, counts.c.inquiry_id == INQ.c.id))
        .order_by(INQ.c.id.desc())
        .limit(500)
    )
    return [
        Listed(r.slug, r.title_ar, r.title_en, r.status, int(r.respondents or 0), int(r.answers or 0))
        for r in rows
    ]


# -- the register -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    code: str
    name_ar: str
    name_en: str
    district_code: str
    district_ar: str
    district_en: str


async def places(conn: AsyncConnection) -> dict[str, Place]:
    """Municipality code -> its names and district."""
    rows = await conn.execute(
        select(MU.c.code, MU.c.name_ar, MU.c.name_en, MU.c.district_code, MU.c.district_ar, MU.c.district_en)
    )
    return {r.code: Place(*r) for r in rows}


async def scope_codes(conn: AsyncConnection, scope: Scope) -> tuple[frozenset[str], frozenset[str]]:
    """The municipality codes and district codes of a scope."""
    rows = (
        await conn.execute(
            select(MU.c.code, MU.c.district_code).where(MU.c.id.in_(sorted(scope.municipalities)))
        )
    ).all()
    return frozenset(r.code for r in rows), frozenset(r.district_code or UNKNOWN for r in rows)


async def municipality_id(conn: AsyncConnection, code: str) -> int | None:
    return (await conn.execute(select(MU.c.id).where(MU.c.code == code[:64]))).scalar_one_or_none()


# -- weighting ----------------------------------------------------------------------------------


def _variable(name: str) -> ColumnElement[Any]:
    if name == "municipality":
        return func.coalesce(MU.c.code, literal(UNKNOWN))
    if name == "district":
        return func.coalesce(func.nullif(MU.c.district_code, ""), literal(UNKNOWN))
    if name == "language":
        return C.c.language
    if name == "sex":
        return func.coalesce(C.c.sex, literal(UNKNOWN))
    if name == "age_band":
        return func.coalesce(C.c.age_band, literal(UNKNOWN))
    raise ValueError(f"no such weighting variable {name!r}")


async def default_variables(
    conn: AsyncConnection, inquiry: Inquiry, tables: Iterable[Table]
) -> tuple[str, ...]:
    """What to weigh on when the reader has not chosen: municipality when a table gives its
    margin, and beside it sex and age band when a table gives theirs and the inquiry's
    respondents carry them (at least one does: those who do not are then a category the
    margin lacks, reported as such rather than weighted silently)."""
    assert inquiry.id is not None
    stored = {v for t in tables for v in t.variables}
    chosen = ["municipality"] if "municipality" in stored else []
    for variable in PROFILE:
        if variable not in stored:
            continue
        carried = (
            select(A.c.id)
            .select_from(A.join(C, C.c.id == A.c.citizen_id))
            .where(A.c.inquiry_id == inquiry.id, C.c[variable].is_not(None))
            .limit(1)
        )
        if (await conn.execute(carried)).first() is not None:
            chosen.append(variable)
    return tuple(chosen)


@dataclass(frozen=True, slots=True)
class Weighting:
    """The weights of an inquiry's respondents, or why there are none.

    ``cells`` maps a weighting cell (the values of ``variables``) to the weight of each of its
    respondents; empty when unweighted. ``error`` is the reason weighting failed (the
    results are then shown unweighted with the reason beside them)."""

    variables: tuple[str, ...] = ()
    plan: Plan | None = None
    weights: Weights | None = None
    error: WeightingError | NoMargin | None = None
    normalised: bool = False
    scoped: bool = False

    @property
    def active(self) -> bool:
        """Weights to use: computed, and without an error (raking that did not converge keeps
        its last weights in ``weights`` for the report, but they are not used)."""
        return self.weights is not None and self.error is None

    def weight(self, cell: tuple[str, ...]) -> float:
        if self.weights is None or self.error is not None:
            return 1.0
        return self.weights.cells.get(cell, 1.0)


async def respondent_cells(
    conn: AsyncConnection, inquiry_id: int, variables: Sequence[str], scope: Scope
) -> dict[tuple[str, ...], int]:
    """Respondents (citizens with at least one answer) per weighting cell."""
    columns = [_variable(v).label(f"v{i}") for i, v in enumerate(variables)]
    answered = select(A.c.citizen_id).where(A.c.inquiry_id == inquiry_id).distinct().subquery()
    rows = await conn.execute(
        select(*columns, func.count())
        .select_from(
            answered.join(C, C.c.id == answered.c.citizen_id).outerjoin(MU, MU.c.id == C.c.municipality_id)
        )
        .where(*scope.where())
        .group_by(*columns)
    )
    return {tuple(str(v) for v in row[:-1]): int(row[-1]) for row in rows}


def _restrict(chosen: Plan, codes: frozenset[str], districts: frozenset[str]) -> Plan:
    """The plan cut to a scope's municipalities and districts."""
    keep = {"municipality": codes, "district": districts}
    table = chosen.table
    if table is not None:
        for variable in table.variables:
            if variable in keep:
                table = table.restricted(variable, keep[variable])
    margins = {
        v: ({k: x for k, x in m.items() if k in keep[v]} if v in keep else dict(m))
        for v, m in chosen.margins.items()
    }
    return Plan(chosen.method, chosen.variables, table=table, margins=margins, sources=chosen.sources)


async def weigh(
    conn: AsyncConnection,
    inquiry: Inquiry,
    variables: Sequence[str],
    *,
    scope: Scope,
    tables: Iterable[Table] | None = None,
    trim_ratio: float = DEFAULT_TRIM_RATIO,
    normalise: bool = False,
) -> Weighting:
    """Weights of the inquiry's respondents on ``variables`` from the stored margins; the
    errors of the weighting functions (a category the margins lack, totals that differ,
    raking that does not converge) come back in ``error``, never silently."""
    wanted = tuple(v for v in dict.fromkeys(variables) if v in VARIABLES)
    if not wanted:
        return Weighting()
    assert inquiry.id is not None
    stored = list(tables) if tables is not None else await stored_tables(conn)
    scoped = bool(scope.municipalities)
    try:
        chosen = plan(wanted, stored)
    except NoMargin as exc:
        return Weighting(wanted, error=exc, scoped=scoped)
    if scoped:
        chosen = _restrict(chosen, *await scope_codes(conn, scope))
    counts = await respondent_cells(conn, inquiry.id, wanted, scope)
    return weights_for(
        counts, wanted, chosen, trim_ratio=trim_ratio, normalise=normalise or scoped, scoped=scoped
    )


def weights_for(
    counts: dict[tuple[str, ...], int],
    variables: tuple[str, ...],
    chosen: Plan,
    *,
    trim_ratio: float,
    normalise: bool,
    scoped: bool = False,
) -> Weighting:
    """Pure: the weights of respondents ``counts`` per cell under the plan ``chosen``."""
    try:
        sample = Sample.from_counts(counts, variables=variables)
        if chosen.method == "post_stratification":
            assert chosen.table is not None
            weights = post_stratify(sample, population=chosen.table.reordered(variables))
        else:
            weights = rake(sample, margins=chosen.margins, trim_ratio=trim_ratio, normalise=normalise)
    except NotConverged as exc:
        return Weighting(variables, chosen, exc.weights, exc, normalise, scoped)
    except WeightingError as exc:
        return Weighting(variables, chosen, error=exc, normalised=normalise, scoped=scoped)
    return Weighting(variables, chosen, weights, normalised=normalise, scoped=scoped)


# -- shares, crosstabs, differences ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """One answer value in one group, as published: ``None`` where suppression hides it."""

    value: str
    count: int | None
    unweighted: Proportion | None
    weighted: Proportion | None


@dataclass(frozen=True, slots=True)
class Group:
    """One group's table of a question (the whole sample, a municipality, a channel...)."""

    key: str
    n: int | None  # None: hidden
    n_eff: float
    deff: float
    cells: tuple[Cell, ...]
    status: Status
    table: ShareTable = field(repr=False, compare=False)

    def cell(self, value: str) -> Cell:
        return next(c for c in self.cells if c.value == value)


@dataclass(frozen=True, slots=True)
class QuestionEstimate:
    question: Question
    values: tuple[str, ...]
    overall: Group
    groups: tuple[Group, ...]
    suppressed: Suppressed | None  # the table as published (groups x values, with totals)


@dataclass(frozen=True, slots=True)
class Estimates:
    inquiry: Inquiry
    weighting: Weighting
    by: str | None
    threshold: int
    questions: tuple[QuestionEstimate, ...]

    def question(self, key: str) -> QuestionEstimate:
        return next(q for q in self.questions if q.question.key == key)


def _group_expression(by: str | None, other: Any) -> ColumnElement[Any]:
    if by is None:
        return literal("*")
    if by == "channel":
        return A.c.channel
    if by.startswith("q:"):
        return func.coalesce(other.c.value, literal(UNKNOWN))
    return _variable(by)


def check_dimension(inquiry: Inquiry, by: str | None) -> str | None:
    """``by`` if it names a dimension of this inquiry, else None."""
    if by in DIMENSIONS:
        return by
    if by and by.startswith("q:") and any(q.key == by[2:] for q in inquiry.questions):
        return by
    return None


async def answer_counts(
    conn: AsyncConnection,
    inquiry: Inquiry,
    variables: Sequence[str],
    *,
    scope: Scope,
    by: str | None,
) -> list[tuple[int, str, str, tuple[str, ...], int]]:
    """``(question id, group, value, weighting cell, answers)`` rows."""
    assert inquiry.id is not None
    other = A.alias("other")
    group = _group_expression(by, other).label("grp")
    cells = [_variable(v).label(f"v{i}") for i, v in enumerate(variables)]
    source = A.join(C, C.c.id == A.c.citizen_id).outerjoin(MU, MU.c.id == C.c.municipality_id)
    if by is not None and by.startswith("q:"):
        other_id = next(q.id for q in inquiry.questions if q.key == by[2:])
        source = source.outerjoin(
            other,
            and_(
                other.c.citizen_id == A.c.citizen_id,
                other.c.inquiry_id == inquiry.id,
                other.c.question_id == other_id,
            ),
        )
    rows = await conn.execute(
        select(A.c.question_id, group, A.c.value, *cells, func.count())
        .select_from(source)
        .where(A.c.inquiry_id == inquiry.id, *scope.where())
        .group_by(A.c.question_id, group, A.c.value, *cells)
    )
    return [(int(r[0]), str(r[1]), str(r[2]), tuple(str(v) for v in r[3:-1]), int(r[-1])) for r in rows]


def _values_of(question: Question, counts: dict[str, int]) -> tuple[str, ...]:
    listed = option_values(question)
    if listed:
        return tuple(listed)
    return tuple(sorted(counts, key=lambda v: (-counts[v], v))[:TOP_VALUES])


def _publish(table: ShareTable, values: Sequence[str], shown: Sequence[int | None]) -> tuple[Cell, ...]:
    cells = []
    for value, count in zip(values, shown, strict=True):
        share = table.share(value) if any(s.value == value for s in table.shares) else None
        hidden = count is None
        cells.append(
            Cell(
                value,
                count,
                None if hidden or share is None else share.unweighted,
                None if hidden or share is None else share.weighted,
            )
        )
    return tuple(cells)


def _group(
    key: str, table: ShareTable, values: Sequence[str], shown: Sequence[int | None], n: int | None
) -> Group:
    return Group(key, n, table.n_eff, table.deff, _publish(table, values, shown), table.status, table)


def assemble(
    inquiry: Inquiry,
    rows: Iterable[tuple[int, str, str, tuple[str, ...], int]],
    weighting: Weighting,
    *,
    by: str | None,
    threshold: int,
) -> Estimates:
    """Pure: the rows of :func:`answer_counts` into published tables (one suppression for the
    groups and their totals, so the whole-sample row is the suppressed table's totals)."""
    per_question: dict[int, dict[str, list[tuple[str, int, float]]]] = defaultdict(lambda: defaultdict(list))
    for question_id, group, value, cell, count in rows:
        per_question[question_id][group].append((value, count, weighting.weight(cell)))
    out = []
    for question in inquiry.questions:
        assert question.id is not None
        groups = per_question.get(question.id, {})
        totals: dict[str, int] = defaultdict(int)
        for group_rows in groups.values():
            for value, count, _ in group_rows:
                totals[value] += count
        values = _values_of(question, totals)
        all_rows = [r for group_rows in groups.values() for r in group_rows]
        overall_table = share_table(all_rows, values=values)
        keys = sorted(groups) if by is not None else []
        tables = {k: share_table(groups[k], values=values) for k in keys}
        matrix = [[tables[k].share(v).count for v in values] for k in keys] if keys else []
        if not matrix:
            matrix = [[overall_table.share(v).count if values else 0 for v in values]]
        published = None
        try:
            published = suppress(matrix, threshold=threshold) if values else None
        except SuppressionError:
            published = None
        if published is None:
            overall = _group("*", overall_table, values, [None] * len(values), None)
            out.append(QuestionEstimate(question, values, overall, (), None))
            continue
        if keys:
            column_totals = list(published.column_totals)
            overall = _group("*", overall_table, values, column_totals, published.total)
            group_list = tuple(
                _group(k, tables[k], values, published.cells[i], published.row_totals[i])
                for i, k in enumerate(keys)
            )
        else:
            overall = _group("*", overall_table, values, published.cells[0], published.row_totals[0])
            group_list = ()
        out.append(QuestionEstimate(question, values, overall, group_list, published))
    return Estimates(inquiry, weighting, by, threshold, tuple(out))


async def estimates(
    conn: AsyncConnection,
    inquiry: Inquiry,
    weighting: Weighting,
    *,
    scope: Scope,
    by: str | None = None,
    threshold: int = 5,
) -> Estimates:
    rows = await answer_counts(conn, inquiry, weighting.variables, scope=scope, by=by)
    return assemble(inquiry, rows, weighting, by=by, threshold=threshold)


@dataclass(frozen=True, slots=True)
class Comparison:
    """``a - b`` for one answer value, unweighted and weighted, as published."""

    value: str
    unweighted: Any  # estimates.Difference
    weighted: Any
    hidden: bool  # a group too small to publish: no difference is shown


def compare(estimate: QuestionEstimate, a: str, b: str) -> list[Comparison]:
    """The difference between groups ``a`` and ``b`` of a crosstab for every answer value
    (Newcombe's interval; Kish-adjusted for the weighted one). A group missing, hidden by
    suppression or with fewer than two answers gives an insufficient difference."""
    found = {g.key: g for g in estimate.groups}
    out = []
    for value in estimate.values:
        ga, gb = found.get(a), found.get(b)
        if ga is None or gb is None or ga.n is None or gb.n is None:
            out.append(Comparison(value, None, None, True))
            continue
        ca, cb = ga.cell(value), gb.cell(value)
        if ca.count is None or cb.count is None:
            out.append(Comparison(value, None, None, True))
            continue
        sa, sb = ga.table.share(value), gb.table.share(value)
        out.append(
            Comparison(
                value, difference(sa.unweighted, sb.unweighted), difference(sa.weighted, sb.weighted), False
            )
        )
    return out


# -- AAPOR outcome rates ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateGroup:
    key: str
    counts: Counts
    cases: int
    rates: Rates | None  # None: too few cases to publish


@dataclass(frozen=True, slots=True)
class OutcomeRates:
    e: float | None
    overall: RateGroup
    by_channel: tuple[RateGroup, ...]
    by_municipality: tuple[RateGroup, ...]
    mapping: tuple[Any, ...] = DISPOSITIONS


def _counts(tally: dict[Disposition, int]) -> Counts:
    return Counts(**{d.value.lower(): tally.get(d, 0) for d in Disposition})


async def outcome_rates(
    conn: AsyncConnection,
    inquiry: Inquiry,
    *,
    scope: Scope,
    e: float | None,
    threshold: int = 5,
    partial_min_share: float = 0.0,
) -> OutcomeRates:
    """Every case (a citizen a campaign of the inquiry reached for, or who answered it
    unasked) classified into an AAPOR disposition, overall, per channel (on that channel's
    contacts and answers) and per municipality; the rates of each."""
    assert inquiry.id is not None
    questions = len(inquiry.questions)
    answered = (
        select(
            A.c.citizen_id,
            func.sum(case((A.c.channel == "sms", 1), else_=0)).label("n_sms"),
            func.sum(case((A.c.channel == "voice", 1), else_=0)).label("n_voice"),
        )
        .where(A.c.inquiry_id == inquiry.id)
        .group_by(A.c.citizen_id)
        .subquery()
    )
    callbacks = (
        select(CALL.c.citizen_id)
        .select_from(CALL.join(K, K.c.id == CALL.c.campaign_id))
        .where(K.c.inquiry_id == inquiry.id, CALL.c.outcome == "callback")
        .distinct()
        .subquery()
    )
    session = S.alias("s")
    municipality = func.coalesce(MU.c.code, literal(UNKNOWN)).label("municipality")

    def cases(delivered: bool) -> Any:
        base = (
            D.join(K, K.c.id == D.c.campaign_id).join(C, C.c.id == D.c.citizen_id)
            if delivered
            else session.join(C, C.c.id == session.c.citizen_id)
        )
        base = base.outerjoin(MU, MU.c.id == C.c.municipality_id)
        if delivered:
            base = base.outerjoin(
                session, and_(session.c.citizen_id == D.c.citizen_id, session.c.inquiry_id == inquiry.id)
            )
        base = base.outerjoin(answered, answered.c.citizen_id == C.c.id).outerjoin(
            callbacks, callbacks.c.citizen_id == C.c.id
        )
        columns = [
            C.c.id.label("citizen"),
            municipality,
            (K.c.channel if delivered else cast(null(), String)).label("channel"),
            (D.c.status if delivered else cast(null(), String)).label("status"),
            (D.c.outcome if delivered else cast(null(), String)).label("outcome"),
            session.c.status.label("session"),
            session.c.channel.label("session_channel"),
            func.coalesce(answered.c.n_sms, 0).label("n_sms"),
            func.coalesce(answered.c.n_voice, 0).label("n_voice"),
            (callbacks.c.citizen_id.is_not(None)).label("callback"),
        ]
        where: list[ColumnElement[bool]] = [*scope.where()]
        if delivered:
            where.append(K.c.inquiry_id == inquiry.id)
        else:
            reached = (
                select(D.c.id)
                .select_from(D.join(K, K.c.id == D.c.campaign_id))
                .where(K.c.inquiry_id == inquiry.id, D.c.citizen_id == session.c.citizen_id)
                .exists()
            )
            where += [session.c.inquiry_id == inquiry.id, ~reached]
        return select(*columns).select_from(base).where(*where)

    query = cases(True).union_all(cases(False)).order_by("citizen")
    overall: dict[Disposition, int] = defaultdict(int)
    channel_tally: dict[str, dict[Disposition, int]] = defaultdict(lambda: defaultdict(int))
    municipality_tally: dict[str, dict[Disposition, int]] = defaultdict(lambda: defaultdict(int))

    def settle(rows: list[Any]) -> None:
        first = rows[0]
        contacts = [
            Contact(r.channel, r.status, r.outcome)
            for r in rows
            if r.channel in ("sms", "voice") and r.status
        ]
        answers = {"sms": int(first.n_sms or 0), "voice": int(first.n_voice or 0)}
        whole = Case(
            contacts=tuple(contacts),
            session=first.session,
            answered=sum(answers.values()),
            questions=questions,
            replied=first.session is not None,
            callback=bool(first.callback),
        )
        found = disposition(whole, partial_min_share=partial_min_share)
        overall[found] += 1
        municipality_tally[first.municipality][found] += 1
        channels = {c.channel for c in contacts} or (
            {first.session_channel} if first.session_channel else set()
        )
        for channel in channels:
            engaged = first.session_channel == channel or answers.get(channel, 0) > 0
            arm = Case(
                contacts=tuple(c for c in contacts if c.channel == channel),
                session=first.session if first.session_channel == channel else None,
                answered=answers.get(channel, 0),
                questions=questions,
                replied=first.session is not None and engaged,
                callback=bool(first.callback) and channel == "voice",
            )
            channel_tally[channel][disposition(arm, partial_min_share=partial_min_share)] += 1

    pending: list[Any] = []
    result = await conn.stream(query.execution_options(yield_per=20_000))
    async for part in result.partitions():  # row by row, an async result costs a switch per row
        for row in part:
            if pending and row.citizen != pending[0].citizen:
                settle(pending)
                pending = []
            pending.append(row)
    if pending:
        settle(pending)

    def group(key: str, tally: dict[Disposition, int]) -> RateGroup:
        counts = _counts(tally)
        cases_n = sum(tally.values())
        return RateGroup(key, counts, cases_n, rates(counts, e=e) if cases_n >= threshold else None)

    return OutcomeRates(
        e,
        group("*", overall),
        tuple(group(k, v) for k, v in sorted(channel_tally.items())),
        tuple(group(k, v) for k, v in sorted(municipality_tally.items())),
    )


# -- SMS versus voice ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelGap:
    """SMS minus voice for one answer value: as answered (``raw``), and with each channel
    weighted on its own to the same population profile (``adjusted``): what is left is how
    people answer on each channel rather than who answers it."""

    value: str
    sms: Proportion | None
    voice: Proportion | None
    raw: Difference | None
    adjusted: Difference | None
    hidden: bool


@dataclass(frozen=True, slots=True)
class ChannelComparison:
    """Per question, the gaps; ``sms`` and ``voice`` are each channel's own weighting (None
    when unweighted or when it failed, with the reason in its ``error``)."""

    sms: Weighting
    voice: Weighting
    questions: tuple[tuple[Question, tuple[ChannelGap, ...]], ...]


async def channel_comparison(
    conn: AsyncConnection,
    inquiry: Inquiry,
    weighting: Weighting,
    *,
    scope: Scope,
    threshold: int = 5,
    trim_ratio: float = DEFAULT_TRIM_RATIO,
) -> ChannelComparison:
    """The SMS-voice gap of every answer, raw and after weighting both channels to the same
    profile (the margins of ``weighting``'s plan), with Newcombe intervals."""
    rows = await answer_counts(conn, inquiry, weighting.variables, scope=scope, by="channel")
    # respondents per cell and channel: a citizen counts once per channel they answered on
    channel_cells: dict[str, dict[tuple[str, ...], int]] = defaultdict(lambda: defaultdict(int))
    answered = await _channel_respondents(conn, inquiry, weighting.variables, scope)
    for (channel, cell), count in answered.items():
        channel_cells[channel][cell] += count
    arms: dict[str, Weighting] = {}
    for channel in ("sms", "voice"):
        if weighting.plan is None or not channel_cells.get(channel):
            arms[channel] = Weighting()
            continue
        arms[channel] = weights_for(
            dict(channel_cells[channel]),
            weighting.variables,
            weighting.plan,
            trim_ratio=trim_ratio,
            normalise=weighting.normalised,
            scoped=weighting.scoped,
        )
    grouped: dict[int, dict[str, list[tuple[str, int, float]]]] = defaultdict(lambda: defaultdict(list))
    raw: dict[int, dict[str, list[tuple[str, int, float]]]] = defaultdict(lambda: defaultdict(list))
    for question_id, channel, value, cell, count in rows:
        if channel in arms:
            grouped[question_id][channel].append((value, count, arms[channel].weight(cell)))
            raw[question_id][channel].append((value, count, 1.0))
    out: list[tuple[Question, tuple[ChannelGap, ...]]] = []
    for question in inquiry.questions:
        assert question.id is not None
        counts: dict[str, int] = defaultdict(int)
        for channel_rows in raw[question.id].values():
            for value, count, _ in channel_rows:
                counts[value] += count
        values = _values_of(question, counts)
        tables = {c: share_table(grouped[question.id].get(c, []), values=values) for c in ("sms", "voice")}
        if not values:
            out.append((question, ()))
            continue
        matrix = [[tables[c].share(v).count for v in values] for c in ("sms", "voice")]
        try:
            published: Suppressed | None = suppress(matrix, threshold=threshold)
        except SuppressionError:
            published = None
        gaps = []
        for j, value in enumerate(values):
            hidden = published is None or any(published.cells[i][j] is None for i in (0, 1))
            hidden = hidden or published is None or any(published.row_totals[i] is None for i in (0, 1))
            sms, voice = tables["sms"].share(value), tables["voice"].share(value)
            both_weighted = arms["sms"].active and arms["voice"].active
            gaps.append(
                ChannelGap(
                    value,
                    None if hidden else (sms.weighted if both_weighted else sms.unweighted),
                    None if hidden else (voice.weighted if both_weighted else voice.unweighted),
                    None if hidden else difference(sms.unweighted, voice.unweighted),
                    None if hidden or not both_weighted else difference(sms.weighted, voice.weighted),
                    hidden,
                )
            )
        out.append((question, tuple(gaps)))
    return ChannelComparison(arms["sms"], arms["voice"], tuple(out))


async def _channel_respondents(
    conn: AsyncConnection, inquiry: Inquiry, variables: Sequence[str], scope: Scope
) -> dict[tuple[str, tuple[str, ...]], int]:
    """Respondents per (channel, weighting cell)."""
    assert inquiry.id is not None
    pairs = select(A.c.citizen_id, A.c.channel).where(A.c.inquiry_id == inquiry.id).distinct().subquery()
    columns = [_variable(v).label(f"v{i}") for i, v in enumerate(variables)]
    rows = await conn.execute(
        select(pairs.c.channel, *columns, func.count())
        .select_from(
            pairs.join(C, C.c.id == pairs.c.citizen_id).outerjoin(MU, MU.c.id == C.c.municipality_id)
        )
        .where(*scope.where())
        .group_by(pairs.c.channel, *columns)
    )
    return {(str(r[0]), tuple(str(v) for v in r[1:-1])): int(r[-1]) for r in rows}


# -- over time ----------------------------------------------------------------------------------

#: the estimate has "settled" when no answer's cumulative share moved this much in the last day
SETTLED_POINTS = 0.01
SETTLED_WINDOW_H = 24


@dataclass(frozen=True, slots=True)
class Checkpoint:
    hour: int  # since the first answer
    shares: tuple[Proportion, ...]  # cumulative, one per value (weighted when weighting is active)


@dataclass(frozen=True, slots=True)
class Trend:
    """One question over the hours since its first answer."""

    question: Question
    values: tuple[str, ...]
    started: datetime | None
    hours: int
    per_hour: dict[str, tuple[tuple[int, int], ...]]  # channel -> (hour, answers in that hour)
    checkpoints: tuple[Checkpoint, ...]  # every hour, cumulative
    settled: bool | None  # None: fewer than 24 hours of answers
    moved: float | None  # the largest move of a share in the last 24 hours


def _hour(column: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.date_trunc("hour", column)
    return func.strftime("%Y-%m-%dT%H:00:00", column)


async def trend(
    conn: AsyncConnection, inquiry: Inquiry, question: Question, weighting: Weighting, *, scope: Scope
) -> Trend:
    """Answers per hour by channel, and each answer's cumulative share with its interval; the
    estimate is "settled" when no share moved ``SETTLED_POINTS`` in the last 24 hours."""
    assert inquiry.id is not None and question.id is not None
    hour = _hour(A.c.created_at, conn.dialect.name).label("hour")
    cells = [_variable(v).label(f"v{i}") for i, v in enumerate(weighting.variables)]
    rows = (
        await conn.execute(
            select(hour, A.c.channel, A.c.value, *cells, func.count())
            .select_from(A.join(C, C.c.id == A.c.citizen_id).outerjoin(MU, MU.c.id == C.c.municipality_id))
            .where(A.c.inquiry_id == inquiry.id, A.c.question_id == question.id, *scope.where())
            .group_by(hour, A.c.channel, A.c.value, *cells)
        )
    ).all()

    def when(value: Any) -> datetime:
        found = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return found if found.tzinfo else found.replace(tzinfo=UTC)

    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[str(r[2])] += int(r[-1])
    values = _values_of(question, counts)
    if not rows:
        return Trend(question, values, None, 0, {}, (), None, None)
    started = min(when(r[0]) for r in rows)
    by_hour: dict[int, list[tuple[str, int, float]]] = defaultdict(list)
    per_hour: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        at = int((when(r[0]) - started).total_seconds() // 3600)
        count = int(r[-1])
        per_hour[str(r[1])][at] += count
        by_hour[at].append((str(r[2]), count, weighting.weight(tuple(str(v) for v in r[3:-1]))))
    hours = max(by_hour)
    cumulative: list[tuple[str, int, float]] = []
    checkpoints = []
    for at in range(hours + 1):
        cumulative += by_hour.get(at, [])
        table = share_table(cumulative, values=values)
        pick = [table.share(v).weighted if weighting.active else table.share(v).unweighted for v in values]
        checkpoints.append(Checkpoint(at, tuple(pick)))
    settled: bool | None = None
    moved: float | None = None
    if hours >= SETTLED_WINDOW_H and values:
        now, before = checkpoints[-1], checkpoints[hours - SETTLED_WINDOW_H]
        moved = max(
            abs((a.estimate or 0.0) - (b.estimate or 0.0))
            for a, b in zip(now.shares, before.shares, strict=True)
        )
        settled = moved < SETTLED_POINTS
    return Trend(
        question,
        values,
        started,
        hours,
        {c: tuple(sorted(h.items())) for c, h in sorted(per_hour.items())},
        tuple(checkpoints),
        settled,
        moved,
    )


# -- order effects ------------------------------------------------------------------------------


async def order_effects(
    conn: AsyncConnection, inquiry: Inquiry, *, scope: Scope, threshold: int = 5
) -> tuple[QuestionEffects, ...]:
    """Per choice question, each option's share when shown first and when not (answers that
    carry the order their citizen saw: an inquiry with randomised options); empty otherwise."""
    assert inquiry.id is not None
    rows = await conn.execute(
        select(A.c.question_id, A.c.value, A.c.option_order, func.count())
        .select_from(A.join(C, C.c.id == A.c.citizen_id))
        .where(A.c.inquiry_id == inquiry.id, A.c.option_order.is_not(None), *scope.where())
        .group_by(A.c.question_id, A.c.value, A.c.option_order)
    )
    found = [(int(r[0]), str(r[1]), r[2], int(r[3])) for r in rows]
    return compute_order_effects(inquiry.questions, found, threshold=threshold)
