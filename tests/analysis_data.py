"""A small inquiry with answers on both channels across three municipalities in two
districts, for the analysts' workspace tests (real rows, inserted directly)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from tests.factories import make_inquiry

SURVEY = """
slug: roads
title: {ar: رضا المواطنين عن الطرق, en: Satisfaction with the roads}
questions:
  - key: satisfied
    kind: yes_no
    text: {ar: "هل أنت راضٍ عن أعمال صيانة الطرق في بلديتك؟", en: "Are you satisfied with the road works?"}
  - key: priority
    kind: choice
    text: {ar: "ما الأولوية؟", en: "What comes first?"}
    options:
      - {value: roads, ar: الطرق, en: Roads}
      - {value: water, ar: المياه, en: Water}
      - {value: power, ar: الكهرباء, en: Power}
"""

#: municipality -> (district, Arabic name)
PLACES = {
    "tripoli": ("west", "طرابلس"),
    "misrata": ("west", "مصراتة"),
    "sabha": ("south", "سبها"),
}


@dataclass(frozen=True, slots=True)
class Seeded:
    inquiry_id: int
    municipality_ids: dict[str, int]
    citizens: int


async def seed(engine: AsyncEngine, *, plan: dict[str, list[tuple[str, str, str]]] | None = None) -> Seeded:
    """``plan``: municipality -> a list of (channel, satisfied, priority) per respondent;
    each municipality also has two citizens who never answered (one delivered SMS, one busy
    call). The default: Tripoli 30 (20 yes), Misrata 12 (3 yes), Sabha 8 (6 yes)."""
    if plan is None:
        plan = {
            "tripoli": [("sms", "yes", "roads")] * 14
            + [("voice", "yes", "water")] * 6
            + [("sms", "no", "roads")] * 6
            + [("voice", "no", "power")] * 4,
            "misrata": [("sms", "yes", "water")] * 3
            + [("sms", "no", "roads")] * 6
            + [("voice", "no", "water")] * 3,
            "sabha": [("voice", "yes", "power")] * 6 + [("sms", "no", "roads")] * 2,
        }
    inquiry_id = await make_inquiry(engine, yaml_text=SURVEY)
    M, Ci, Qt = models.table(models.Municipality), models.table(models.Citizen), models.table(models.Question)
    K, D, S, A = (
        models.table(models.Campaign),
        models.table(models.Delivery),
        models.table(models.InquirySession),
        models.table(models.Answer),
    )
    ids: dict[str, int] = {}
    start = datetime.now(UTC) - timedelta(hours=40)
    async with engine.begin() as conn:
        for code, (district, name) in PLACES.items():
            found = (await conn.execute(select(M.c.id).where(M.c.code == code))).scalar()
            if found is None:
                found = (
                    await conn.execute(
                        insert(M)
                        .values(code=code, name_ar=name, name_en=code.title(), district_code=district,
                                district_ar="الغربية" if district == "west" else "الجنوبية",
                                district_en=district.title())
                        .returning(M.c.id)
                    )
                ).scalar_one()  # fmt: skip
            ids[code] = int(found)
        questions = {
            r.key: r.id
            for r in await conn.execute(select(Qt.c.key, Qt.c.id).where(Qt.c.inquiry_id == inquiry_id))
        }
        campaigns = {}
        for channel in ("sms", "voice"):
            campaigns[channel] = (
                await conn.execute(
                    insert(K)
                    .values(inquiry_id=inquiry_id, channel=channel, audience={}, status="done")
                    .returning(K.c.id)
                )
            ).scalar_one()
        n = 0
        for code, answers in plan.items():
            people = [*answers, ("sms", "", ""), ("voice", "", "")]
            for index, (channel, satisfied, priority) in enumerate(people):
                n += 1
                citizen = (
                    await conn.execute(
                        insert(Ci)
                        .values(
                            phone=f"+21892{n:07d}",
                            municipality_id=ids[code],
                            language="en" if n % 7 == 0 else "ar",
                        )
                        .returning(Ci.c.id)
                    )
                ).scalar_one()
                silent = not satisfied
                await conn.execute(
                    insert(D).values(
                        campaign_id=campaigns[channel],
                        citizen_id=citizen,
                        status="delivered" if channel == "sms" else "sent",
                        outcome=None if channel == "sms" else ("busy" if silent else "answered"),
                    )
                )
                if silent:
                    continue
                at = start + timedelta(minutes=67 * index)
                session = (
                    await conn.execute(
                        insert(S)
                        .values(inquiry_id=inquiry_id, citizen_id=citizen, channel=channel,
                                status="completed", answered={}, completed_at=at)
                        .returning(S.c.id)
                    )
                ).scalar_one()  # fmt: skip
                for key, value in (("satisfied", satisfied), ("priority", priority)):
                    await conn.execute(
                        insert(A).values(
                            inquiry_id=inquiry_id, question_id=questions[key], citizen_id=citizen,
                            session_id=session, channel=channel, raw=value, value=value, created_at=at,
                        )
                    )  # fmt: skip
    return Seeded(inquiry_id, ids, n)


#: population margins: Tripoli is half the population, Misrata a third, Sabha a sixth
MARGINS_CSV = "municipality,population\ntripoli,1200000\nمصراتة,800000\nSabha,400000\n"
