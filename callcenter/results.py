"""Results of an inquiry: counts and shares per answer with a 95 % Wilson interval, split by
municipality and channel, and the response funnel (sent -> delivered -> started -> completed).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.inquiries import load_definition
from callcenter.inquiry.definition import Inquiry, Language, Question, QuestionKind
from callcenter.phones import pseudonym

A = models.table(models.Answer)
C = models.table(models.Citizen)
MU = models.table(models.Municipality)
D = models.table(models.Delivery)
K = models.table(models.Campaign)
S = models.table(models.InquirySession)
Q = models.table(models.Question)

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials (sound for small n and p near 0/1)."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Share:
    value: str
    label: str
    count: int
    share: float
    ci_low: float
    ci_high: float


@dataclass
class QuestionResult:
    key: str
    kind: str
    text: str
    total: int
    shares: list[Share]
    mean: float | None = None
    by_municipality: dict[str, list[Share]] = field(default_factory=dict)
    by_channel: dict[str, list[Share]] = field(default_factory=dict)


@dataclass
class Funnel:
    planned: int
    sent: int
    delivered: int
    started: int
    completed: int
    opted_out: int


@dataclass
class Results:
    inquiry: str
    status: str
    funnel: Funnel
    questions: list[QuestionResult]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _values(question: Question, language: str) -> list[tuple[str, str]]:
    """Every possible value with its label, so zero counts show too."""
    lang: Language = "en" if language == "en" else "ar"
    if question.kind is QuestionKind.CHOICE:
        return [(o.value, o.label.get(lang)) for o in question.options]
    if question.kind is QuestionKind.RATING:
        lo, hi = question.bounds
        return [(str(v), str(v)) for v in range(lo, hi + 1)]
    if question.kind is QuestionKind.YES_NO:
        return [("yes", "نعم" if lang == "ar" else "yes"), ("no", "لا" if lang == "ar" else "no")]
    return []


def _shares(question: Question, counts: dict[str, int], language: str) -> list[Share]:
    n = sum(counts.values())
    known = _values(question, language)
    if not known:  # number / text: the most frequent values
        known = [(v, v) for v, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:20]]
    out = []
    for value, label in known:
        k = counts.get(value, 0)
        lo, hi = wilson(k, n)
        out.append(Share(value, label, k, k / n if n else 0.0, lo, hi))
    return out


async def inquiry_results(engine: AsyncEngine, ref: int | str, *, language: str = "ar") -> Results:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        inquiry = await load_definition(session, ref)
    assert inquiry.id is not None
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    A.c.question_id,
                    A.c.value,
                    A.c.channel,
                    func.coalesce(MU.c.code, "-").label("municipality"),
                    func.count().label("n"),
                    func.sum(A.c.number).label("total"),
                )
                .select_from(
                    A.join(C, C.c.id == A.c.citizen_id).outerjoin(MU, MU.c.id == C.c.municipality_id)
                )
                .where(A.c.inquiry_id == inquiry.id)
                .group_by(A.c.question_id, A.c.value, A.c.channel, "municipality")
            )
        ).all()
        funnel = await _funnel(conn, inquiry)
    by_q: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_q[row.question_id].append(row)
    results = []
    for question in inquiry.questions:
        assert question.id is not None
        qrows = by_q.get(question.id, [])
        overall: dict[str, int] = defaultdict(int)
        per_muni: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        per_channel: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        number_sum, number_n = 0.0, 0
        for r in qrows:
            overall[r.value] += r.n
            per_muni[r.municipality][r.value] += r.n
            per_channel[r.channel][r.value] += r.n
            if r.total is not None:
                number_sum += float(r.total)
                number_n += r.n
        mean = (
            number_sum / number_n
            if number_n and question.kind in (QuestionKind.RATING, QuestionKind.NUMBER)
            else None
        )
        results.append(
            QuestionResult(
                key=question.key,
                kind=question.kind.value,
                text=question.text.get("en" if language == "en" else "ar"),
                total=sum(overall.values()),
                shares=_shares(question, overall, language),
                mean=mean,
                by_municipality={m: _shares(question, c, language) for m, c in sorted(per_muni.items())},
                by_channel={ch: _shares(question, c, language) for ch, c in sorted(per_channel.items())},
            )
        )
    return Results(inquiry.slug, inquiry.status.value, funnel, results)


async def _funnel(conn: Any, inquiry: Inquiry) -> Funnel:
    deliveries = dict(
        (
            await conn.execute(
                select(D.c.status, func.count())
                .select_from(D.join(K, K.c.id == D.c.campaign_id))
                .where(K.c.inquiry_id == inquiry.id)
                .group_by(D.c.status)
            )
        ).all()
    )
    started = (
        await conn.execute(
            select(func.count(func.distinct(A.c.citizen_id))).where(A.c.inquiry_id == inquiry.id)
        )
    ).scalar_one()
    sessions = dict(
        (
            await conn.execute(
                select(S.c.status, func.count()).where(S.c.inquiry_id == inquiry.id).group_by(S.c.status)
            )
        ).all()
    )
    delivered = int(deliveries.get("delivered", 0))
    return Funnel(
        planned=int(sum(deliveries.values())),
        sent=int(deliveries.get("sent", 0)) + delivered,
        delivered=delivered,
        started=int(started),
        completed=int(sessions.get("completed", 0)),
        opted_out=int(sessions.get("opted_out", 0)) + int(deliveries.get("skipped", 0)),
    )


EXPORT_HEADER = [
    "citizen",
    "municipality",
    "language",
    "channel",
    "question",
    "value",
    "number",
    "answered_at",
]


async def export_rows(engine: AsyncEngine, ref: int | str, *, key: str) -> AsyncIterator[list[str]]:
    """Answer rows for export; the citizen is a keyed pseudonym, never the phone number."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        inquiry = await load_definition(session, ref)
    query = (
        select(
            C.c.phone,
            func.coalesce(MU.c.code, "").label("municipality"),
            C.c.language,
            A.c.channel,
            Q.c.key,
            A.c.value,
            A.c.number,
            A.c.created_at,
        )
        .select_from(
            A.join(C, C.c.id == A.c.citizen_id)
            .join(Q, Q.c.id == A.c.question_id)
            .outerjoin(MU, MU.c.id == C.c.municipality_id)
        )
        .where(A.c.inquiry_id == inquiry.id)
        .order_by(A.c.citizen_id, Q.c.position)
    )
    async with engine.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=5000))
        async for row in result:
            yield [
                pseudonym(row.phone, key),
                row.municipality,
                row.language,
                row.channel,
                row.key,
                row.value,
                "" if row.number is None else f"{row.number:g}",
                row.created_at.isoformat() if row.created_at else "",
            ]
