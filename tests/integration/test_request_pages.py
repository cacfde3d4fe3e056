"""The service requests' pages through the app: an officer's queue holds only their
municipality's requests, most urgent first, and another municipality's request answers 404;
a status change appends a history row, is audited and texts the citizen; a save made against
an older version is refused with the conflict shown and nothing overwritten; a duplicate's
reference with a wrong check digit is refused in words; the reporter's number is masked
until an audited reveal; refusals go back to the ministry, which re-routes them; the
ministry's view ranks the municipalities and shows the overdue requests escalated."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from datetime import timedelta

import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.phones import mask_phone
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.read import RequestView, get_request, history
from callcenter.requests.recompute import recompute_sla
from callcenter.requests.reference import damm
from callcenter.requests.service import Intake, create_request
from callcenter.requests.store import load
from callcenter.settings import Settings
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities
from tests.webapp import StaffClient, logged_in, make_user, staff_client

REPORTER = "+218912345678"
OTHER = "+218923456789"
AUDIT = models.table(models.AuditLog)
MESSAGE = models.table(models.Message)
WEEK = WorkingCalendar()


async def seed(engine: AsyncEngine) -> dict[str, int]:
    places = await add_municipalities(engine)
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    return places


async def make(
    engine: AsyncEngine, settings: Settings, municipality: str, *, phone: str = REPORTER, days_ago: float = 0,
    category: str = "waste_collection", language: str = "en",
) -> RequestView:  # fmt: skip
    async with AsyncSession(engine) as session, session.begin():
        return await create_request(
            session,
            Intake(category=category, channel="desk", municipality=municipality, phone=phone,
                   description="rubbish not collected for a week", language=language),
            actor="agent@1415.local", calendar=WEEK, settings=settings,
            now=models.utcnow() - timedelta(days=days_ago),
        )  # fmt: skip


async def officer_of(web: FastAPI, engine: AsyncEngine, municipality_id: int) -> StaffClient:
    client, _ = await logged_in(web, engine, "officer", municipalities=[municipality_id], language="en")
    return client


async def ministry(web: FastAPI, engine: AsyncEngine, role: str = "supervisor") -> StaffClient:
    """A supervisor (or admin) logged in the whole way: password, then the TOTP code."""
    secret = pyotp.random_base32()
    row = await make_user(engine, role, totp_secret=secret, language="en")
    from tests.integration.test_admin_municipalities import client_on

    client = client_on(web)
    response = await client.login(row.email)
    assert response.headers["location"] == "/login/totp"
    response = await client.post("/login/totp", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 303, response.text
    return client


async def audits(engine: AsyncEngine, action: str) -> list[models.AuditLog]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(select(models.AuditLog).where(AUDIT.c.action == action))
        return list(rows.scalars())


async def current(engine: AsyncEngine, made: RequestView) -> RequestView:
    async with engine.connect() as conn:
        return await get_request(conn, made.id)


def wrong_check_digit(reference: str) -> str:
    digits = reference.replace("-", "")[4:]
    bad = str((int(digits[-1]) + 1) % 10)
    assert damm(digits[:-1] + bad) != 0
    return f"1415-{digits[:4]}-{digits[4:7]}{bad}"


@pytest.fixture
async def places(engine: AsyncEngine) -> dict[str, int]:
    return await seed(engine)


@pytest.fixture
async def officer(web: FastAPI, engine: AsyncEngine, places: dict[str, int]) -> AsyncIterator[StaffClient]:
    client = await officer_of(web, engine, places["benghazi"])
    yield client
    await client.http.aclose()


# -- the queue and its scope --------------------------------------------------------------------


async def test_an_officer_sees_only_their_municipality_and_another_ones_request_is_not_found(
    officer: StaffClient, engine: AsyncEngine, settings: Settings
) -> None:
    ours = await make(engine, settings, "benghazi")
    theirs = await make(engine, settings, "misrata", phone=OTHER)

    queue = await officer.get("/requests")
    assert queue.status_code == 200
    assert ours.reference in queue.text and theirs.reference not in queue.text
    assert "1 request" in queue.text

    assert (await officer.get(f"/requests/{theirs.reference}")).status_code == 404
    refused = await officer.post(
        f"/requests/{theirs.reference}/status", {"to": "acknowledged", "note": "x", "version": "1"}
    )
    assert refused.status_code == 404
    assert (await current(engine, theirs)).status == "sent"  # untouched
    typed = await officer.get("/requests", params={"ref": theirs.reference})
    assert typed.status_code == 400 and "No request of yours has this reference." in typed.text
    found = await officer.get("/requests", params={"ref": ours.reference.replace("-", "")})
    assert found.status_code == 303 and found.headers["location"] == f"/requests/{ours.reference}"


async def test_the_queue_puts_overdue_requests_first_and_filters_them(
    officer: StaffClient, engine: AsyncEngine, settings: Settings
) -> None:
    fresh = await make(engine, settings, "benghazi")
    late = await make(engine, settings, "benghazi", phone=OTHER, days_ago=30)
    done = await recompute_sla(engine, WEEK)
    assert late.id in done.newly_breached

    queue = (await officer.get("/requests")).text
    assert queue.index(late.reference) < queue.index(fresh.reference)
    assert 'class="row--overdue"' in queue and "Overdue — escalated to the ministry" in queue
    overdue = (await officer.get("/requests", params={"overdue": "1"})).text
    assert late.reference in overdue and fresh.reference not in overdue
    mine = (await officer.get("/requests", params={"mine": "1"})).text
    assert "No request matches." in mine


# -- changes ------------------------------------------------------------------------------------


async def test_a_public_status_change_appends_history_audits_and_texts_the_citizen(
    officer: StaffClient, engine: AsyncEngine, settings: Settings
) -> None:
    made = await make(engine, settings, "benghazi")
    page = await officer.get(f"/requests/{made.reference}")
    assert page.status_code == 200 and "Expected by" in page.text

    saved = await officer.post(
        f"/requests/{made.reference}/status",
        {
            "to": "acknowledged",
            "note": "The crew comes on Sunday",
            "public": "1",
            "version": str(made.version),
        },
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/requests/{made.reference}?done=status&sms=1"

    after = await current(engine, made)
    assert after.status == "acknowledged" and after.version == made.version + 1
    async with engine.connect() as conn:
        events = await history(conn, made.id)
        texts = (
            (await conn.execute(select(MESSAGE.c.body).where(MESSAGE.c.phone == REPORTER))).scalars().all()
        )
    assert [(e["kind"], e["to_status"], e["note"], e["public"]) for e in events][-1] == (
        "status", "acknowledged", "The crew comes on Sunday", True,
    )  # fmt: skip
    assert len(await audits(engine, "requests.status")) == 1
    assert len(texts) == 1 and made.reference in texts[0] and "The crew comes on Sunday" in texts[0]
    assert "acknowledged" in texts[0]

    shown = await officer.get(saved.headers["location"])
    assert "The status is changed." in shown.text and "The citizen is told by SMS." in shown.text
    assert "The crew comes on Sunday" in shown.text and 'data-public="yes"' in shown.text

    internal = await officer.post(
        f"/requests/{made.reference}/status",
        {"to": "", "note": "called the crew", "version": str(after.version)},
    )
    assert internal.headers["location"] == f"/requests/{made.reference}?done=note"
    async with engine.connect() as conn:
        sent = await conn.execute(
            select(func.count()).select_from(MESSAGE).where(MESSAGE.c.phone == REPORTER)
        )
        assert sent.scalar_one() == 1  # an internal note is not texted


async def test_a_save_against_an_older_version_shows_the_conflict_and_overwrites_nothing(
    web: FastAPI, officer: StaffClient, engine: AsyncEngine, settings: Settings, places: dict[str, int]
) -> None:
    made = await make(engine, settings, "benghazi")
    colleague = await officer_of(web, engine, places["benghazi"])
    try:
        await officer.get(f"/requests/{made.reference}")
        await colleague.get(f"/requests/{made.reference}")
        first = await colleague.post(
            f"/requests/{made.reference}/status", {"to": "in_progress", "note": "on it", "version": "1"}
        )
        assert first.status_code == 303
        second = await officer.post(
            f"/requests/{made.reference}/status",
            {"to": "resolved", "note": "fixed already", "public": "1", "version": "1"},
        )
    finally:
        await colleague.http.aclose()
    assert second.status_code == 409
    text = html.unescape(second.text)
    assert "Someone else changed this request while you were looking at it." in text
    assert "In progress" in text and "on it" in text  # the request as it now is, their change shown
    assert "fixed already" in text  # what this officer typed is kept in the form
    after = await current(engine, made)
    assert after.status == "in_progress" and after.version == 2
    async with engine.connect() as conn:
        assert [e["to_status"] for e in await history(conn, made.id) if e["kind"] == "status"] == [
            "in_progress"
        ]


async def test_a_duplicate_with_a_wrong_check_digit_is_refused_in_words(
    officer: StaffClient, engine: AsyncEngine, settings: Settings
) -> None:
    original = await make(engine, settings, "benghazi")
    copy = await make(engine, settings, "benghazi", phone=OTHER)

    wrong = await officer.post(
        f"/requests/{copy.reference}/duplicate",
        {"original": wrong_check_digit(original.reference), "version": str(copy.version)},
    )
    assert wrong.status_code == 422
    assert "A digit of this reference is wrong (its check digit does not match)" in html.unescape(wrong.text)
    assert (await current(engine, copy)).status == "sent"

    unknown = await officer.post(
        f"/requests/{copy.reference}/duplicate", {"original": "42", "version": str(copy.version)}
    )
    assert unknown.status_code == 422 and "A reference has 8 digits after 1415" in unknown.text

    right = await officer.post(
        f"/requests/{copy.reference}/duplicate",
        {"original": original.reference.replace("-", " "), "version": str(copy.version)},
    )
    assert right.status_code == 303
    marked = await current(engine, copy)
    assert marked.status == "duplicate" and marked.duplicate_of == original.id
    page = (await officer.get(f"/requests/{original.reference}")).text
    assert copy.reference in page  # listed among its duplicates


async def test_the_reporters_number_is_masked_until_an_audited_reveal(
    officer: StaffClient, engine: AsyncEngine, settings: Settings
) -> None:
    made = await make(engine, settings, "benghazi")
    page = (await officer.get(f"/requests/{made.reference}")).text
    assert REPORTER not in page and mask_phone(REPORTER) in page
    shown = await officer.post(f"/requests/{made.reference}/reveal")
    assert shown.status_code == 200 and REPORTER in shown.text
    assert shown.headers["cache-control"] == "no-store"
    (row,) = await audits(engine, "requests.reveal_phone")
    assert row.target == f"request:{made.id}"
    assert REPORTER not in (await officer.get(f"/requests/{made.reference}")).text  # once, not for good


async def test_a_refused_request_goes_back_to_the_ministry_which_reroutes_it(
    web: FastAPI, officer: StaffClient, engine: AsyncEngine, settings: Settings
) -> None:
    made = await make(engine, settings, "benghazi")
    no_note = await officer.post(f"/requests/{made.reference}/refuse", {"note": "", "version": "1"})
    assert no_note.status_code == 422 and "Write a note saying why." in no_note.text
    refused = await officer.post(
        f"/requests/{made.reference}/refuse", {"note": "the water company's", "version": "1"}
    )
    assert refused.status_code == 303
    assert (await current(engine, made)).status == "not_responsible"
    assert (await officer.post(f"/requests/{made.reference}/reroute", {"body": "gcww"})).status_code == 403

    boss = await ministry(web, engine)
    try:
        page = (await boss.get(f"/requests/{made.reference}")).text
        assert 'action="/requests/' + made.reference + '/reroute"' in page
        moved = await boss.post(f"/requests/{made.reference}/reroute", {"body": "gcww", "version": "2"})
        assert moved.status_code == 303, moved.text
    finally:
        await boss.http.aclose()
    after = await current(engine, made)
    assert after.status == "sent" and after.referrals == 1
    async with engine.connect() as conn:
        body = models.table(models.ResponsibleBody)
        assert (await conn.execute(select(body.c.key).where(body.c.id == after.body_id))).scalar() == "gcww"


async def test_assigning_to_a_colleague_is_saved_and_the_queue_filters_by_it(
    web: FastAPI, engine: AsyncEngine, settings: Settings, places: dict[str, int]
) -> None:
    made = await make(engine, settings, "benghazi")
    client, me = await logged_in(web, engine, "officer", municipalities=[places["benghazi"]], language="en")
    try:
        page = (await client.get(f"/requests/{made.reference}")).text
        assert f'<option value="{me.id}"' in page
        bad = await client.post(f"/requests/{made.reference}/assign", {"user": "x", "version": "1"})
        assert bad.status_code == 422 and "Choose an active colleague from the list." in bad.text
        given = await client.post(f"/requests/{made.reference}/assign", {"user": str(me.id), "version": "1"})
        assert given.status_code == 303
        assert made.reference in (await client.get("/requests", params={"mine": "1"})).text
    finally:
        await client.http.aclose()
    assert (await current(engine, made)).assigned_to == me.id


# -- the ministry's view ------------------------------------------------------------------------


async def test_the_ministry_ranks_municipalities_and_sees_overdue_requests_escalated(
    web: FastAPI, officer: StaffClient, engine: AsyncEngine, settings: Settings
) -> None:
    late = await make(engine, settings, "misrata", days_ago=30)
    await make(engine, settings, "benghazi", phone=OTHER)
    await recompute_sla(engine, WEEK)
    assert (await officer.get("/requests/municipalities")).status_code == 403

    boss = await ministry(web, engine)
    try:
        page = await boss.get("/requests/municipalities")
        by_opened = await boss.get("/requests/municipalities", params={"sort": "opened", "days": "30"})
    finally:
        await boss.http.aclose()
    assert page.status_code == 200
    escalated = page.text[page.text.index('id="escalated"') : page.text.index('id="ranking"')]
    assert late.reference in escalated and "Overdue — escalated to the ministry" in escalated
    ranking = page.text[page.text.index('id="ranking"') :]
    # Misrata: its one request overdue, 0 % on time; Benghazi: nothing judged yet (—), ranked last
    assert ranking.index("Misrata") < ranking.index("Benghazi") and "0%" in ranking
    assert by_opened.status_code == 200 and "Misrata" not in by_opened.text.split('id="ranking"')[1]


# -- the catalogue ------------------------------------------------------------------------------


async def test_an_admin_edits_the_catalogue_with_errors_in_words_and_every_save_audited(
    web: FastAPI, engine: AsyncEngine, places: dict[str, int]
) -> None:
    admin = await ministry(web, engine, "admin")
    try:
        listing = await admin.get("/admin/catalogue")
        assert listing.status_code == 200 and "Waste collection" in listing.text
        async with engine.connect() as conn:
            body = models.table(models.ResponsibleBody)
            gcww = (await conn.execute(select(body.c.id).where(body.c.key == "gcww"))).scalar_one()
        form = {
            "key": "tree_fallen", "keypad": "2", "name_ar": "Fallen tree", "name_en": "Fallen tree",
            "first_response_hours": "8", "resolution_hours": "4", "body_id": str(gcww), "active": "1",
            "questions": "neighbourhood | ما اسم الحي؟",
        }  # fmt: skip
        bad = await admin.post("/admin/catalogue/categories", form)
        assert bad.status_code == 400
        text = html.unescape(bad.text)
        for said in (
            "Another category answers this keypad code.", "Write the Arabic name in Arabic letters.",
            "The resolution cannot be due before the first response.",
            "Write each question as: key | Arabic | English.",
        ):  # fmt: skip
            assert said in text, said
        form |= {
            "keypad": "9", "name_ar": "سقوط شجرة", "resolution_hours": "14",
            "questions": "neighbourhood | ما اسم الحي؟ | Which neighbourhood?",
        }  # fmt: skip
        made = await admin.post("/admin/catalogue/categories", form)
        assert made.status_code == 303, made.text
        target = made.headers["location"].split("?")[0]
        override = await admin.post(
            f"{target}/overrides", {"municipality_id": str(places["misrata"]), "body_id": str(gcww)}
        )
        assert override.status_code == 303
        page = await admin.get(target)
        overrides = page.text.split('id="overrides"')[1]
        assert "Misrata" in overrides and "General Company for Water and Wastewater" in overrides
    finally:
        await admin.http.aclose()
    assert len(await audits(engine, "requests.catalogue.category")) == 1
    assert len(await audits(engine, "requests.catalogue.override")) == 1
    async with engine.connect() as conn:
        category = models.table(models.ServiceCategory)
        row = (await conn.execute(select(category).where(category.c.key == "tree_fallen"))).mappings().one()
    assert (row["keypad"], row["resolution_hours"], row["questions"][0]["en"]) == (
        "9",
        14.0,
        "Which neighbourhood?",
    )


async def test_only_admins_reach_the_catalogue_pages(
    web: FastAPI, engine: AsyncEngine, places: dict[str, int]
) -> None:
    async with staff_client(web) as anonymous:
        assert (await anonymous.get("/admin/catalogue")).status_code == 303
    client, _ = await logged_in(web, engine, "officer", municipalities=[places["benghazi"]])
    try:
        assert (await client.get("/admin/catalogue")).status_code == 403
    finally:
        await client.http.aclose()
