"""Service requests by SMS through the inbox and the loopback gateway, on PostgreSQL and
SQLite: a request started with a keyword and completed by two questions, status by
reference told only to the reporter, the citizen kept informed of the changes that matter,
and "not fixed" reopening the request."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor
from callcenter.requests.lifecycle import Status
from callcenter.requests.notify import notify_change
from callcenter.requests.read import RequestView
from callcenter.requests.reference import parse
from callcenter.requests.service import (
    Intake,
    add_note,
    change_status,
    create_request,
    mark_duplicate,
    reroute,
)
from callcenter.requests.sms_intake import DESCRIPTION_LIMIT, INTAKE_KEY
from callcenter.requests.store import load, load_calendar
from callcenter.settings import Settings
from callcenter.sms.gateways.base import InboundSms, OutboundSms
from callcenter.sms.gateways.loopback import read_outbox
from callcenter.sms.inbox import Inbox
from tests.factories import make_citizens
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities

REPORTER = "+218912345678"
STRANGER = "+218923456789"
OFFICER = Actor("officer@benghazi.ly", None)
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
R = models.table(models.ServiceRequest)
_gid = itertools.count()


@pytest.fixture
async def seeded(engine: AsyncEngine) -> AsyncEngine:
    await add_municipalities(engine)
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    return engine


@pytest.fixture
async def box(seeded: AsyncEngine, settings: Settings, redis: Redis) -> AsyncIterator[Inbox]:
    inbox = Inbox(seeded, settings, redis=redis)
    yield inbox
    await inbox.aclose()


async def say(inbox: Inbox, phone: str, body: str) -> tuple[str | None, str]:
    outcome = await inbox.handle(InboundSms("loopback", f"g{next(_gid)}", phone, body))
    return outcome.reply, outcome.event


async def texted(redis: Redis) -> list[OutboundSms]:
    items, _ = await read_outbox(redis)
    return [sms for _, sms, _ in items]


async def requests(engine: AsyncEngine) -> list[RequestView]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(R).order_by(R.c.id))).mappings().all()
    return [RequestView.of(row) for row in rows]


async def make(
    engine: AsyncEngine, settings: Settings, *, phone: str = REPORTER, language: str = "ar"
) -> RequestView:
    calendar = await load_calendar(engine, settings)
    async with AsyncSession(engine) as session, session.begin():
        return await create_request(
            session, Intake(category="waste_collection", channel="desk", municipality="benghazi", phone=phone,
                            description="rubbish not collected", language=language),
            actor="agent@1415.local", calendar=calendar, settings=settings,
        )  # fmt: skip


async def move(
    engine: AsyncEngine, settings: Settings, view: RequestView, to: Status, note: str = ""
) -> RequestView:
    calendar = await load_calendar(engine, settings)
    async with AsyncSession(engine) as session, session.begin():
        return await change_status(
            session, view.id, to, expected_version=view.version, actor=OFFICER, role="officer", note=note,
            calendar=calendar, settings=settings,
        )  # fmt: skip


# -- the intake ---------------------------------------------------------------------------------


async def test_a_keyword_then_category_then_municipality_makes_the_request(
    seeded: AsyncEngine, box: Inbox
) -> None:
    asked, event = await say(box, REPORTER, "طلب عمود إنارة معطل أمام المدرسة")
    assert event == "request_asked" and asked is not None
    assert "1 إنارة" in asked or "1 " in asked  # the categories with their numbers
    asked, _ = await say(box, REPORTER, "١")  # Arabic-Indic digit: street lighting
    assert asked is not None and "بلدية" in asked
    done, event = await say(box, REPORTER, "بنغازي")
    [made] = await requests(seeded)
    assert event == "request_created" and done is not None
    assert made.reference in done and made.resolution_due_at is not None
    assert made.resolution_due_at.astimezone(UTC).date().isoformat()[:4] in done  # the expected date
    assert (made.channel, made.phone, made.description, made.citizen_id) == (
        "sms", REPORTER, "عمود إنارة معطل أمام المدرسة", None,
    )  # fmt: skip
    M, C = models.table(models.Municipality), models.table(models.ServiceCategory)
    async with seeded.connect() as conn:
        code = (await conn.execute(select(M.c.code).where(M.c.id == made.municipality_id))).scalar()
        category = (await conn.execute(select(C.c.key).where(C.c.id == made.category_id))).scalar()
    assert (code, category) == ("benghazi", "street_lighting")


async def test_english_keyword_in_any_case_and_the_registers_municipality(
    seeded: AsyncEngine, box: Inbox
) -> None:
    [phone] = await make_citizens(seeded, 1, language="en", municipality="misrata")
    asked, _ = await say(box, phone, "ReQuEsT: water leaking in the street")
    assert asked is not None and "Send its number" in asked and "3 " in asked
    done, event = await say(box, phone, "3")  # no municipality question: the register knows it
    [made] = await requests(seeded)
    assert event == "request_created" and done is not None and done.startswith("1415: your request")
    assert (made.language, made.description) == ("en", "water leaking in the street")
    assert made.citizen_id is not None


async def test_harakat_on_the_keyword_do_not_matter(seeded: AsyncEngine, box: Inbox) -> None:
    _, event = await say(box, REPORTER, "طَلَبٌ حفرة كبيرة في الطريق")
    assert event == "request_asked"


async def test_an_opted_out_citizen_still_makes_requests_and_hears_back(
    seeded: AsyncEngine, box: Inbox, settings: Settings, redis: Redis
) -> None:
    [phone] = await make_citizens(seeded, 1, municipality="benghazi")
    C = models.table(models.Citizen)
    async with seeded.begin() as conn:
        await conn.execute(update(C).values(opted_out_at=datetime.now(UTC)))
    assert (await say(box, phone, "hello"))[1] == "ignored"  # polls: nothing
    await say(box, phone, "طلب القمامة لم تجمع منذ أسبوع")
    done, event = await say(box, phone, "2")
    [made] = await requests(seeded)
    assert event == "request_created" and done is not None and made.reference in done
    status, event = await say(box, phone, made.reference)
    assert event == "request_status" and status is not None and made.reference in status
    await move(seeded, settings, made, Status.ACKNOWLEDGED)
    assert await notify_change(settings, seeded, redis, request_id=made.id, version=made.version + 1) == 1
    assert [sms.to for sms in await texted(redis)] == [phone]


async def test_a_10000_character_description_is_refused_saying_the_limit(
    seeded: AsyncEngine, box: Inbox, redis: Redis
) -> None:
    reply, event = await say(box, REPORTER, "طلب " + "ا" * 10_000)
    assert event == "request_refused" and reply is not None and str(DESCRIPTION_LIMIT) in reply
    assert await requests(seeded) == []
    assert await redis.get(INTAKE_KEY + REPORTER) is None  # nothing half-started
    reply, event = await say(box, REPORTER, "REQUEST")
    assert event == "request_refused" and reply is not None and "REQUEST" in reply  # how to write one


async def test_an_unknown_category_is_asked_again_then_the_intake_is_dropped(
    seeded: AsyncEngine, box: Inbox
) -> None:
    await say(box, REPORTER, "طلب مشكلة")
    again, event = await say(box, REPORTER, "99")
    assert event == "request_asked" and again is not None and "لم نتعرف" in again
    await say(box, REPORTER, "شيء آخر")
    dropped, event = await say(box, REPORTER, "كذا")
    assert event == "request_dropped" and dropped is not None
    assert await requests(seeded) == []


async def test_an_unknown_municipality_is_asked_again(seeded: AsyncEngine, box: Inbox) -> None:
    await say(box, REPORTER, "طلب مشكلة في الصرف الصحي")
    await say(box, REPORTER, "5")
    again, _ = await say(box, REPORTER, "أطلانتس")
    assert again is not None and "لم نجد بلدية" in again
    _, event = await say(box, REPORTER, "مصراتة")
    assert event == "request_created"


# -- status by reference ------------------------------------------------------------------------


async def test_the_reporter_gets_state_body_date_and_last_public_note(
    seeded: AsyncEngine, box: Inbox, settings: Settings
) -> None:
    made = await make(seeded, settings)
    moved = await move(seeded, settings, made, Status.ACKNOWLEDGED, note="الفرقة تصل يوم الأحد")
    async with AsyncSession(seeded) as session, session.begin():
        await add_note(session, made.id, note="internal: call the contractor", public=False,
                       expected_version=moved.version, actor=OFFICER, role="officer")  # fmt: skip
    reply, event = await say(box, REPORTER, made.reference.translate(ARABIC_INDIC))
    assert event == "request_status" and reply is not None
    assert made.reference in reply and "استلمته الجهة المسؤولة" in reply
    assert "شركة الخدمات العامة بنغازي" in reply and "الفرقة تصل يوم الأحد" in reply
    assert "contractor" not in reply


async def test_someone_elses_reference_is_texted_to_the_reporter_not_the_sender(
    seeded: AsyncEngine, box: Inbox, settings: Settings, redis: Redis
) -> None:
    made = await make(seeded, settings)
    reply, event = await say(box, STRANGER, made.reference)
    assert event == "request_status_elsewhere" and reply is not None
    assert "صاحب الطلب" in reply and "شركة الخدمات العامة" not in reply
    await say(box, STRANGER, made.reference)  # again the same day: the reporter is not texted twice
    [sms] = await texted(redis)
    assert sms.to == REPORTER and made.reference in sms.body and "شركة الخدمات العامة بنغازي" in sms.body


async def test_a_wrong_check_digit_is_told_at_once_and_the_right_one_answers(
    seeded: AsyncEngine, box: Inbox, settings: Settings
) -> None:
    made = await make(seeded, settings)
    digits = parse(made.reference).digits
    wrong = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    reply, event = await say(box, REPORTER, wrong)
    assert event == "bad_reference" and reply is not None and "خاطئ" in reply
    swapped = digits[1] + digits[0] + digits[2:]
    if swapped != digits:
        assert (await say(box, REPORTER, "1415-" + swapped))[1] == "bad_reference"
    assert (await say(box, REPORTER, "١٤١٥ " + digits.translate(ARABIC_INDIC)))[1] == "request_status"


async def test_an_unknown_reference_is_said(seeded: AsyncEngine, box: Inbox) -> None:
    reply, event = await say(box, REPORTER, "1415-0000-0000")
    assert event == "unknown_reference" and reply is not None and "1415-0000-0000" in reply


# -- kept informed --------------------------------------------------------------------------------


async def test_changes_that_matter_are_texted_once_in_the_citizens_language(
    seeded: AsyncEngine, settings: Settings, redis: Redis
) -> None:
    made = await make(seeded, settings, language="en")
    dup = await make(seeded, settings, phone=STRANGER)  # a neighbour's, marked as its duplicate
    calendar = await load_calendar(seeded, settings)
    async with AsyncSession(seeded) as session, session.begin():
        await mark_duplicate(
            session, dup.id, original=made.reference, expected_version=dup.version, actor=OFFICER,
            role="officer", calendar=calendar, settings=settings,
        )  # fmt: skip
    refused = await move(seeded, settings, made, Status.NOT_RESPONSIBLE, note="not ours")
    assert await notify_change(settings, seeded, redis, request_id=made.id, version=refused.version) == 0
    assert await texted(redis) == []  # internal: silent
    async with AsyncSession(seeded) as session, session.begin():  # the ministry re-routes it
        rerouted = await reroute(
            session, made.id, body="municipal_services", expected_version=refused.version,
            actor=Actor("supervisor@ministry.ly", None), role="supervisor", calendar=calendar,
            settings=settings,
        )  # fmt: skip
    acked = await move(seeded, settings, rerouted, Status.ACKNOWLEDGED)
    for _ in range(2):  # a page retried: texted once
        await notify_change(
            settings, seeded, redis, request_id=made.id, version=acked.version, note="On Sunday"
        )
    sent = await texted(redis)
    assert sorted(sms.to for sms in sent) == sorted([REPORTER, STRANGER])
    mine = next(sms for sms in sent if sms.to == REPORTER)
    theirs = next(sms for sms in sent if sms.to == STRANGER)
    assert (
        mine.body.startswith("1415: your request")
        and "acknowledged" in mine.body
        and "On Sunday" in mine.body
    )
    assert "استلمته" in theirs.body  # the neighbour reported in Arabic


async def resolved_and_asked(engine: AsyncEngine, settings: Settings, redis: Redis) -> RequestView:
    """A request acknowledged, then resolved, and the reporter texted "was it fixed?"."""
    made = await make(engine, settings)
    done = await move(
        engine, settings, await move(engine, settings, made, Status.ACKNOWLEDGED), Status.RESOLVED
    )
    await notify_change(settings, engine, redis, request_id=made.id, version=done.version)
    return made


async def test_after_resolution_no_reopens_and_yes_thanks(
    seeded: AsyncEngine, box: Inbox, settings: Settings, redis: Redis
) -> None:
    made = await resolved_and_asked(seeded, settings, redis)
    [question] = await texted(redis)
    assert "1 نعم" in question.body and "2 لا" in question.body
    reply, event = await say(box, STRANGER, "٢")  # not the reporter: not theirs to answer
    assert event != "request_reopened"
    reply, event = await say(box, REPORTER, "٢")
    assert event == "request_reopened" and reply is not None and made.reference in reply
    [row] = await requests(seeded)
    assert row.status is Status.REOPENED
    # resolved again: "1" thanks and leaves it resolved
    again = await move(seeded, settings, row, Status.RESOLVED)
    await notify_change(settings, seeded, redis, request_id=made.id, version=again.version)
    reply, event = await say(box, REPORTER, "نعم")
    assert event == "request_fixed"
    assert (await requests(seeded))[0].status is Status.RESOLVED


async def test_no_after_the_reopening_window_asks_for_a_new_request(
    seeded: AsyncEngine, box: Inbox, settings: Settings, redis: Redis
) -> None:
    made = await resolved_and_asked(seeded, settings, redis)
    long_ago = datetime.now(UTC) - timedelta(days=settings.request_reopen_days + 1)
    async with seeded.begin() as conn:
        await conn.execute(update(R).values(resolved_at=long_ago))
    reply, event = await say(box, REPORTER, "لا")
    assert event == "reopen_too_late" and reply is not None and "طلب جديد" in reply
    assert made.reference in reply
    assert (await requests(seeded))[0].status is Status.RESOLVED
