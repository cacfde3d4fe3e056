"""Results: counts, shares, Wilson intervals, splits, funnel; the pseudonymised export."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.phones import pseudonym
from callcenter.results import export_rows, inquiry_results, wilson
from callcenter.sms.gateways.base import InboundSms
from callcenter.sms.inbox import Inbox
from tests.factories import THREE_QUESTIONS, invite, make_citizens, make_inquiry


def test_wilson_interval_matches_the_textbook_values() -> None:
    low, high = wilson(81, 263)  # Wilson (1927) / Newcombe (1998) example: 0.2553-0.3662
    assert math.isclose(low, 0.2553, abs_tol=5e-4) and math.isclose(high, 0.3662, abs_tol=5e-4)
    assert wilson(0, 10)[0] == 0.0 and 0.0 < wilson(0, 10)[1] < 0.35
    assert wilson(10, 10)[1] == pytest.approx(1.0) and wilson(0, 0) == (0.0, 0.0)


async def test_results_count_answers_by_question_municipality_and_channel(
    engine: AsyncEngine, inbox: Inbox
) -> None:
    inquiry_id = await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    tripoli = await make_citizens(engine, 6, municipality="tripoli")
    sabha = await make_citizens(engine, 4, start=100, municipality="sabha")
    campaign = await invite(engine, inquiry_id, tripoli + sabha)
    async with engine.begin() as conn:
        d = models.Delivery.__table__
        await conn.execute(
            update(d).where(d.c.campaign_id == campaign, d.c.id <= 3).values(status="delivered")
        )
    ratings = {p: (5 if i < 4 else 2) for i, p in enumerate(tripoli)} | {p: 1 for p in sabha[:2]}
    for i, (phone, rating) in enumerate(ratings.items()):
        await inbox.receive(InboundSms("loopback", f"r{i}", phone, str(rating)))
    for i, phone in enumerate(tripoli[:3]):
        await inbox.receive(InboundSms("loopback", f"y{i}", phone, "نعم"))
        await inbox.receive(InboundSms("loopback", f"z{i}", phone, "3"))

    res = await inquiry_results(engine, "three")
    q1 = res.questions[0]
    assert q1.total == 8
    by_value = {s.value: s for s in q1.shares}
    assert [s.value for s in q1.shares] == ["1", "2", "3", "4", "5"]  # zero counts shown
    assert by_value["5"].count == 4 and by_value["5"].share == pytest.approx(0.5)
    assert by_value["5"].ci_low < 0.5 < by_value["5"].ci_high
    assert by_value["3"].count == 0
    assert q1.mean == pytest.approx((4 * 5 + 2 * 2 + 2 * 1) / 8)
    assert {s.value: s.count for s in q1.by_municipality["sabha"]}["1"] == 2
    assert set(q1.by_channel) == {"sms"}
    assert res.funnel.planned == 10 and res.funnel.sent == 10 and res.funnel.delivered == 3
    assert res.funnel.started == 8 and res.funnel.completed == 3


async def test_export_pseudonymises_citizens_and_never_contains_phones(
    engine: AsyncEngine, inbox: Inbox
) -> None:
    inquiry_id = await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    phones = await make_citizens(engine, 2)
    await invite(engine, inquiry_id, phones)
    await inbox.receive(InboundSms("loopback", "e1", phones[0], "4"))
    rows = [row async for row in export_rows(engine, "three", key="secret")]
    assert len(rows) == 1
    assert rows[0][0] == pseudonym(phones[0], "secret") != pseudonym(phones[0], "other")
    assert not any(phones[0][1:] in cell or phones[0][4:] in cell for cell in rows[0])
    assert rows[0][4:6] == ["q1", "4"]
