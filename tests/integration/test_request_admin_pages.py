"""The service requests' admin pages through the app, on both databases.

The citizens' SMS texts: an admin previews an edit with sample values and its SMS count, saves
it (audited), and the next SMS a citizen gets says it; an edit wins over the data directory's
file, which wins over the default, and restoring the default takes the edit back; a broken or
unknown placeholder, a missing language or a text too long is refused in words with nothing
saved. The holiday calendar: the ministry adds a day off and every open request's due date
moves, drops the correction and it moves back, removes an estimated holiday; a date that is
not one, an action that is neither, a day that is no holiday are refused in words, nothing
written. Only the roles of the policy reach them, scoped staff cannot change them, and a form
without its CSRF token is refused."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta
from typing import Any

import pyotp
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor
from callcenter.requests.calendar import WorkingCalendar, libya_holidays
from callcenter.requests.citizen_texts import defaults
from callcenter.requests.holiday_admin import holiday_names
from callcenter.requests.notify import due_date, notify_change
from callcenter.requests.read import RequestView
from callcenter.requests.service import change_status
from callcenter.requests.store import load_calendar
from callcenter.requests.text_overrides import current_texts
from callcenter.settings import Settings
from tests.integration.test_admin_municipalities import client_on
from tests.integration.test_request_pages import current, make, seed
from tests.webapp import StaffClient, logged_in, make_user

AUDIT = models.table(models.AuditLog)
TEXT = models.table(models.RequestText)
CORRECTION = models.table(models.HolidayCorrection)
MESSAGE = models.table(models.Message)
REPORTER = "+218912345678"
TEXTS = "/admin/requests/texts"
HOLIDAYS = "/admin/requests/holidays"


async def ministry_client(
    web: FastAPI,
    engine: AsyncEngine,
    role: str = "admin",
    *,
    language: str = "en",
    municipalities: list[int] | None = None,
) -> StaffClient:
    """Staff of the ministry logged in the whole way (password, then the TOTP code)."""
    secret = pyotp.random_base32()
    row = await make_user(
        engine, role, totp_secret=secret, language=language, municipalities=municipalities or []
    )
    client = client_on(web)
    response = await client.login(row.email)
    assert response.headers["location"] == "/login/totp"
    response = await client.post("/login/totp", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 303, response.text
    return client


async def count(engine: AsyncEngine, table: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def audit_rows(engine: AsyncEngine, action: str) -> list[Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(AUDIT.c.before, AUDIT.c.after, AUDIT.c.actor).where(AUDIT.c.action == action)
        )
        return list(rows.all())


def text_of(response: Any) -> str:
    """The page's text as read: the isolating ``<bdi>`` around dates and placeholders taken off."""
    return html.unescape(re.sub(r"</?bdi[^>]*>", "", response.text))


@pytest.fixture
async def places(engine: AsyncEngine) -> dict[str, int]:
    return await seed(engine)


@pytest.fixture
async def admin(web: FastAPI, engine: AsyncEngine, places: dict[str, int]) -> Any:
    client = await ministry_client(web, engine)
    yield client
    await client.http.aclose()


# -- the citizens' SMS texts -------------------------------------------------------------------


async def test_an_admin_previews_and_saves_a_text_and_the_next_sms_says_it_until_the_default_is_restored(
    admin: StaffClient, engine: AsyncEngine, settings: Settings, redis: aioredis.Redis
) -> None:
    listing = await admin.get(TEXTS)
    assert listing.status_code == 200
    row = listing.text.split('data-text="texts.update"')[1].split("</tr>")[0]
    assert 'data-source="default"' in row and 'data-segments="2"' in row  # Arabic: UCS-2, 2 parts
    assert 'data-encoding="ucs2"' in row and 'data-encoding="gsm7"' in row  # the English one fits GSM-7
    page = await admin.get(f"{TEXTS}/texts.update")
    assert page.status_code == 200
    placeholders = page.text.split('id="placeholders"')[1].split("</ul>")[0]
    assert [p for p in ("{due}", "{note}", "{reference}", "{status}") if p in placeholders] == [
        "{due}", "{note}", "{reference}", "{status}",
    ]  # fmt: skip

    edit = {
        "ar": "1415: طلبكم {reference} أصبح: {status}. الموعد المتوقع {due}.{note}",
        "en": "1415: request {reference} is now {status}. Due {due}.{note}",
    }
    preview = await admin.post(f"{TEXTS}/texts.update", {**edit, "action": "preview"})
    assert preview.status_code == 200
    shown = text_of(preview)
    assert "Preview of your change (not saved)" in shown
    assert "1415: طلبكم 1415-4217-0393 أصبح: قيد التنفيذ. الموعد المتوقع 2026-03-17. سيصل فريق" in shown
    assert "1415: request 1415-4217-0393 is now in progress. Due 2026-03-17. The maintenance crew" in shown
    assert await count(engine, TEXT) == 0  # a preview saves nothing

    saved = await admin.post(f"{TEXTS}/texts.update", {**edit, "action": "save"})
    assert saved.status_code == 303 and saved.headers["location"] == f"{TEXTS}/texts.update?done=saved"
    after = await admin.get(saved.headers["location"])
    assert "The text is saved" in text_of(after) and 'data-source="database"' in after.text
    ((before, changed, actor),) = await audit_rows(engine, "requests.texts.save")
    assert before == defaults().texts["update"] and changed == edit and actor.startswith("admin-")

    made = await make(engine, settings, "benghazi", language="en")
    await officer_acknowledges(engine, settings, made)
    assert await notify_change(settings, engine, redis, request_id=made.id, version=2, note="Sunday") == 1
    assert await last_sms(
        engine
    ) == f"1415: request {made.reference} is now acknowledged by the responsible body. " + (
        f"Due {due_of(await current(engine, made), settings)}. Sunday"
    )

    restored = await admin.post(f"{TEXTS}/texts.update/default", {})
    assert restored.status_code == 303 and await count(engine, TEXT) == 0
    assert len(await audit_rows(engine, "requests.texts.restore")) == 1
    assert (await current_texts(settings, engine)).texts["update"] == defaults().texts["update"]


async def officer_acknowledges(engine: AsyncEngine, settings: Settings, made: RequestView) -> None:
    async with AsyncSession(engine) as session, session.begin():
        await change_status(
            session, made.id, "acknowledged", expected_version=made.version, actor=Actor("o@x"),
            role="officer", calendar=WorkingCalendar(), settings=settings,
        )  # fmt: skip


async def last_sms(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(MESSAGE.c.body)
            .where(MESSAGE.c.phone == REPORTER, MESSAGE.c.direction == "out")
            .order_by(MESSAGE.c.id)
        )
        return str(rows.scalars().all()[-1])


def due_of(view: RequestView, settings: Settings) -> str:
    return due_date(view.resolution_due_at, settings.timezone)


async def test_an_edit_in_the_app_wins_over_the_file_which_wins_over_the_default(
    admin: StaffClient, engine: AsyncEngine, settings: Settings
) -> None:
    (settings.data_dir / "request_texts.yaml").write_text(
        'texts:\n  fixed_thanks: {ar: "شكراً، الطلب {reference} مكتمل", en: "Thanks: {reference} is done"}\n',
        encoding="utf-8",
    )
    assert (await current_texts(settings, engine)).say(
        "fixed_thanks", "en", reference="R"
    ) == "Thanks: R is done"
    page = await admin.get(f"{TEXTS}/texts.fixed_thanks")
    assert 'data-source="file"' in page.text and 'id="default"' not in page.text
    saved = await admin.post(
        f"{TEXTS}/texts.fixed_thanks",
        {"ar": "شكراً {reference}", "en": "Thank you ({reference})", "action": "save"},
    )
    assert saved.status_code == 303
    assert (await current_texts(settings, engine)).say("fixed_thanks", "en", reference="R") == "Thank you (R)"
    again = await admin.get(f"{TEXTS}/texts.fixed_thanks")
    assert 'data-source="database"' in again.text
    assert "شكراً، الطلب {reference} مكتمل" in text_of(again).split('id="default"')[1]  # what restoring gives
    assert (await admin.post(f"{TEXTS}/texts.fixed_thanks/default", {})).status_code == 303
    assert (await current_texts(settings, engine)).say(
        "fixed_thanks", "en", reference="R"
    ) == "Thanks: R is done"
    # a status's words are edited the same way, and shown inside the update text
    words = await admin.post(
        f"{TEXTS}/statuses.in_progress",
        {"ar": "جارٍ العمل عليه", "en": "being worked on", "action": "preview"},
    )
    assert "1415: your request 1415-4217-0393: being worked on. Expected by 2026-03-17." in text_of(words)


@pytest.mark.parametrize(
    ("text_id", "typed", "said"),
    [
        ("texts.update", {"en": "Request {refrence}: {status}."},
         "Unknown placeholder {refrence}. This text may use: {due}, {note}, {reference}, {status}."),
        ("texts.update", {"en": "Request {reference: {status}."},
         "A brace opens or closes no placeholder. Write a placeholder as its name in braces, such as {due}"),
        ("texts.update", {"en": "Request {}: {status}."}, "A placeholder needs its name, such as {due}."),
        ("texts.update", {"en": "Request {reference!r}."}, "Write the placeholder plainly, as {reference}."),
        ("texts.update", {"en": "   "}, "Write the text in this language."),
        ("texts.update", {"en": "x" * 1001}, "A text has at most 1,000 characters; this one has 1,001."),
        ("statuses.closed", {"en": "closed {reference}"},
         "Unknown placeholder {reference}. This text takes no placeholders."),
    ],
)  # fmt: skip
async def test_a_broken_edit_is_refused_in_words_and_nothing_is_saved(
    admin: StaffClient, engine: AsyncEngine, text_id: str, typed: dict[str, str], said: str
) -> None:
    page = await admin.get(f"{TEXTS}/{text_id}")
    assert page.status_code == 200
    current_pair = defaults().texts.get(text_id.split(".")[1]) if text_id.startswith("texts.") else None
    form = {**(current_pair or {"ar": "مغلق", "en": "closed"}), **typed}
    for action in ("save", "preview"):
        refused = await admin.post(f"{TEXTS}/{text_id}", {**form, "action": action})
        assert refused.status_code == 400
        shown = text_of(refused)
        assert said in shown and "Correct the texts marked below: nothing was saved." in shown
        assert 'aria-invalid="true"' in refused.text
    assert await count(engine, TEXT) == 0
    assert await audit_rows(engine, "requests.texts.save") == []


async def test_the_texts_pages_say_their_errors_in_arabic_and_refuse_what_is_not_a_text(
    web: FastAPI, engine: AsyncEngine, places: dict[str, int]
) -> None:
    client = await ministry_client(web, engine, language="ar")
    try:
        await client.get(f"{TEXTS}/texts.update")
        refused = await client.post(
            f"{TEXTS}/texts.update", {"ar": "{refrence}", "en": "ok", "action": "save"}
        )
        assert refused.status_code == 400
        assert (
            "عنصر نائب غير معروف: {refrence}. يمكن لهذا النص استخدام: {due}, {note}, {reference}, {status}."
            in text_of(refused)
        )
        assert "صحّح النصوص المشار إليها أدناه: لم يُحفظ شيء." in text_of(refused)
        for missing in ("texts.nosuch", "nosuch.update", "update", "statuses.", "texts.update.x"):
            assert (await client.get(f"{TEXTS}/{missing}")).status_code == 404
            assert (
                await client.post(f"{TEXTS}/{missing}", {"ar": "ا", "en": "a", "action": "save"})
            ).status_code == 404
    finally:
        await client.http.aclose()


async def test_only_unscoped_admins_change_the_texts_and_a_form_needs_its_csrf_token(
    web: FastAPI, engine: AsyncEngine, places: dict[str, int]
) -> None:
    officer, _ = await logged_in(web, engine, "officer", municipalities=[places["benghazi"]])
    supervisor = await ministry_client(web, engine, "supervisor")
    scoped = await ministry_client(web, engine, municipalities=[places["benghazi"]])
    admin = await ministry_client(web, engine)
    form = {"ar": "شكراً {reference}", "en": "Thanks {reference}", "action": "save"}
    try:
        assert (await officer.get(TEXTS)).status_code == 403
        assert (await supervisor.get(TEXTS)).status_code == 403
        assert (await scoped.get(TEXTS)).status_code == 200  # reads them
        await scoped.get(f"{TEXTS}/texts.fixed_thanks")
        assert (await scoped.post(f"{TEXTS}/texts.fixed_thanks", form)).status_code == 403
        await admin.get(f"{TEXTS}/texts.fixed_thanks")
        no_token = await admin.post(f"{TEXTS}/texts.fixed_thanks", form, csrf=False)
        assert no_token.status_code == 403 and no_token.headers.get("x-error-id") == "csrf_failed"
        assert (await admin.post(f"{TEXTS}/texts.fixed_thanks/default", {}, csrf=False)).status_code == 403
        assert await count(engine, TEXT) == 0
    finally:
        for client in (officer, supervisor, scoped, admin):
            await client.http.aclose()


# -- the holiday calendar ------------------------------------------------------------------------


async def next_working_day(engine: AsyncEngine, settings: Settings) -> date:
    calendar = await load_calendar(engine, settings)
    day = date.today() + timedelta(days=1)
    while not calendar.is_working_day(day):
        day += timedelta(days=1)
    return day


def holiday_name(day: date, language: str) -> str:
    return holiday_names(day.year, language)[day]


def estimated_weekday_holiday(year: int, weekend: list[int]) -> tuple[date, str]:
    return next((d, n) for d, n in sorted(libya_holidays(year).items()) if d.weekday() not in weekend)


async def test_a_day_off_moves_every_open_request_s_due_date_and_dropping_it_moves_them_back(
    web: FastAPI, engine: AsyncEngine, settings: Settings, places: dict[str, int]
) -> None:
    made = await make(engine, settings, "benghazi")
    other = await make(engine, settings, "misrata", phone="+218923456789")
    before = (await current(engine, made)).resolution_due_at
    other_before = (await current(engine, other)).resolution_due_at
    assert before is not None and other_before is not None
    day = await next_working_day(engine, settings)
    supervisor = await ministry_client(web, engine, "supervisor")
    try:
        await supervisor.get(HOLIDAYS)
        added = await supervisor.post(
            HOLIDAYS, {"day": day.isoformat(), "action": "add", "name": "Eid (announced)"}
        )
        assert added.status_code == 303, added.text
        assert added.headers["location"] == (
            f"{HOLIDAYS}?year={day.year}&done=add&open_requests=2&changed=2#corrections"
        )
        page = text_of(await supervisor.get(added.headers["location"]))
        assert "The day off is added to the calendar." in page
        assert "SLA clocks recomputed: 2 open requests, 2 with new due dates." in page
        corrections = page.split('id="corrections-table"')[1].split("</table>")[0]
        assert (
            day.isoformat() in corrections
            and "Eid (announced)" in corrections
            and "Day off added" in corrections
        )
        moved = (await current(engine, made)).resolution_due_at
        assert moved is not None and moved > before  # one working day later
        assert (await current(engine, other)).resolution_due_at == other_before + (moved - before)

        dropped = await supervisor.post(f"{HOLIDAYS}/drop", {"day": day.isoformat()})
        assert dropped.status_code == 303
        assert "done=drop&open_requests=2&changed=2" in dropped.headers["location"]
        assert (await current(engine, made)).resolution_due_at == before
        assert (await current(engine, other)).resolution_due_at == other_before
    finally:
        await supervisor.http.aclose()
    assert len(await audit_rows(engine, "requests.holiday.correct")) == 1
    assert len(await audit_rows(engine, "requests.holiday.drop")) == 1
    assert await count(engine, CORRECTION) == 0


async def test_an_estimated_holiday_is_removed_and_shown_as_a_working_day(
    web: FastAPI, admin: StaffClient, engine: AsyncEngine, settings: Settings
) -> None:
    year = date.today().year + 1
    day, name = estimated_weekday_holiday(year, settings.request_weekend)
    listing = await admin.get(HOLIDAYS, params={"year": str(year)})
    assert listing.status_code == 200 and f'data-day="{day.isoformat()}"' in listing.text
    assert name in listing.text  # the package's name, in English for this admin
    removed = await admin.post(
        HOLIDAYS, {"day": day.isoformat(), "action": "remove", "name": "moon sighted later"}
    )
    assert removed.status_code == 303
    page = await admin.get(removed.headers["location"])
    row = page.text.split(f'<tr data-day="{day.isoformat()}"')[1].split("</tr>")[0]
    assert 'data-removed="yes"' in row and "Removed: a working day" in row
    calendar = await load_calendar(engine, settings)
    assert calendar.is_working_day(day)
    # in Arabic, the package's holiday names are Arabic
    arabic = await ministry_client(web, engine, language="ar")
    try:
        shown = text_of(await arabic.get(HOLIDAYS, params={"year": str(year)}))
        assert holiday_name(day, "ar") in shown and name not in shown
    finally:
        await arabic.http.aclose()


DATE_FORMAT = "Enter the date as year-month-day, such as 2026-03-20."


@pytest.mark.parametrize(
    ("day", "action", "name", "said"),
    [
        ("", "add", "x", "Enter the date."),
        ("20-03-2026", "add", "x", DATE_FORMAT),
        ("2026-02-30", "add", "x", DATE_FORMAT),
        ("1999-03-02", "add", "x", "Choose a date from 2000 to 2099."),
        ("2027-03-02", "move", "x", "Choose whether the day becomes a day off or a working day."),
        ("2027-03-02", "add", "", "Name the day off, such as Eid al-Fitr."),
        ("2027-03-02", "add", "x" * 201, "A name has at most 200 characters."),
        ("2027-03-05", "add", "x", "2027-03-05 falls on the weekend: it is off every week already."),
        ("2027-02-17", "add", "x", "2027-02-17 is a public holiday already."),
        (
            "2027-03-02",
            "remove",
            "",
            "2027-03-02 is not a public holiday in the calendar: there is nothing to remove.",
        ),
    ],
)
async def test_a_bad_correction_is_refused_in_words_and_nothing_is_written(
    admin: StaffClient, engine: AsyncEngine, day: str, action: str, name: str, said: str
) -> None:
    await admin.get(HOLIDAYS)
    refused = await admin.post(HOLIDAYS, {"day": day, "action": action, "name": name})
    assert refused.status_code == 400
    shown = text_of(refused)
    assert said in shown and "Correct the fields marked below: nothing was changed." in shown
    assert await count(engine, CORRECTION) == 0
    assert await audit_rows(engine, "requests.holiday.correct") == []


async def test_corrections_of_corrections_are_refused_and_arabic_indic_digits_are_dates(
    admin: StaffClient, engine: AsyncEngine
) -> None:
    await admin.get(HOLIDAYS)
    added = await admin.post(HOLIDAYS, {"day": "٢٠٢٧-٠٣-٠٢", "action": "add", "name": "يوم حداد"})
    assert added.status_code == 303 and "year=2027" in added.headers["location"]
    again = await admin.post(HOLIDAYS, {"day": "2027-03-02", "action": "remove", "name": ""})
    assert again.status_code == 400
    assert "2027-03-02 is a day off that a correction added: drop that correction instead." in text_of(again)
    removed = await admin.post(HOLIDAYS, {"day": "2027-02-17", "action": "remove", "name": ""})
    assert removed.status_code == 303
    twice = await admin.post(HOLIDAYS, {"day": "2027-02-17", "action": "remove", "name": ""})
    assert "2027-02-17 is removed from the holidays already." in text_of(twice)
    nothing = await admin.post(f"{HOLIDAYS}/drop", {"day": "2027-03-03"})
    assert nothing.status_code == 400 and "There is no correction for 2027-03-03." in text_of(nothing)
    garbled = await admin.post(f"{HOLIDAYS}/drop", {"day": "tomorrow"})
    assert garbled.status_code == 400 and "Enter the date as year-month-day" in text_of(garbled)
    year = await admin.get(HOLIDAYS, params={"year": "20x7"})
    assert year.status_code == 400 and "Choose a year from 2000 to 2099." in text_of(year)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(CORRECTION.c.day, CORRECTION.c.action).order_by(CORRECTION.c.day))
        ).all()
    assert [(d.isoformat(), a) for d, a in rows] == [("2027-02-17", "remove"), ("2027-03-02", "add")]


async def test_the_ministry_reaches_the_calendar_scoped_staff_cannot_change_it_and_forms_need_csrf(
    web: FastAPI, engine: AsyncEngine, places: dict[str, int]
) -> None:
    officer, _ = await logged_in(web, engine, "officer", municipalities=[places["benghazi"]])
    scoped = await ministry_client(web, engine, "supervisor", municipalities=[places["benghazi"]])
    admin = await ministry_client(web, engine)
    form = {"day": "2027-03-02", "action": "add", "name": "x"}
    try:
        assert (await officer.get(HOLIDAYS)).status_code == 403
        assert (await scoped.get(HOLIDAYS)).status_code == 200
        assert (await scoped.post(HOLIDAYS, form)).status_code == 403
        assert (await scoped.post(f"{HOLIDAYS}/drop", {"day": "2027-03-02"})).status_code == 403
        await admin.get(HOLIDAYS)
        no_token = await admin.post(HOLIDAYS, form, csrf=False)
        assert no_token.status_code == 403 and no_token.headers.get("x-error-id") == "csrf_failed"
        assert await count(engine, CORRECTION) == 0
    finally:
        for client in (officer, scoped, admin):
            await client.http.aclose()
