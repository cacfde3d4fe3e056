"""mySociety's POST servicerequestupdates through the application, on both databases: a client's
note and its reporter's reopening go through the life cycle as the citizen's, answered with
1415's update_id in JSON and XML field by field; the same update sent again is stored once
and answered the same; what the life cycle refuses, a request out of the key's reach and each
bad field come back in the specification's error format, with nothing stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.lifecycle import Status
from callcenter.requests.read import RequestView, find_by_reference
from callcenter.requests.reference import reference_for
from callcenter.requests.service import Intake, change_status, create_request
from callcenter.requests.store import load
from callcenter.settings import Settings
from tests.integration.test_open311 import BASE, good_form, make_key, only_error, post, xml_records
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities

EVENT = models.table(models.RequestEvent)
AUDIT = models.table(models.AuditLog)
MESSAGE = models.table(models.Message)
REPORTER = "+218912345678"  # good_form's phone, in E.164
UPDATED = "2026-03-15T10:30:00+02:00"


@pytest.fixture
async def http(web: FastAPI, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """An Open311 client's HTTP on the app, with the sample catalogue loaded."""
    await add_municipalities(engine)
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="https://1415.test") as client:
        yield client


async def made_by(http: httpx.AsyncClient, key: str, **extra: str) -> str:
    """A request made through Open311 with ``key``; its reference."""
    answer = await post(http, **good_form(key, **extra))
    assert answer.status_code == 201, answer.text
    return str(answer.json()[0]["service_request_id"])


async def send(http: httpx.AsyncClient, fmt: str = "json", **form: str) -> httpx.Response:
    return await http.post(f"{BASE}/servicerequestupdates.{fmt}", data=form)


def update_form(key: str, reference: str, **extra: str) -> dict[str, str]:
    """What FixMyStreet sends with a user's comment (its name and e-mail are not kept)."""
    return {
        "api_key": key, "service_request_id": reference, "update_id": "fms-comment-77", "status": "OPEN",
        "updated_datetime": UPDATED, "description": "ما زال العمود مطفأً", "first_name": "Ali",
        "last_name": "Salem", "email": "ali@example.ly", **extra,
    }  # fmt: skip


def update_id_of(response: httpx.Response, fmt: str) -> str:
    """The answer's one update_id, checked field by field: mySociety's ``service_request_updates``
    of one ``request_update`` holding ``update_id``."""
    assert response.status_code == 201, response.text
    if fmt == "json":
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        (record,) = response.json()
        assert list(record) == ["update_id"] and isinstance(record["update_id"], str)
        return str(record["update_id"])
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    (element,) = xml_records(response.text, "service_request_updates", "request_update")
    assert list(element) == ["update_id"]
    return str(element["update_id"])


async def events(engine: AsyncEngine, reference: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        found = await find_by_reference(conn, reference)
        assert found is not None
        rows = await conn.execute(select(EVENT).where(EVENT.c.request_id == found.id).order_by(EVENT.c.id))
        return [dict(row) for row in rows.mappings()]


async def request_of(engine: AsyncEngine, reference: str) -> RequestView:
    async with engine.connect() as conn:
        found = await find_by_reference(conn, reference)
    assert found is not None
    return found


async def officer_moves(
    engine: AsyncEngine, settings: Settings, reference: str, *statuses: Status, days_ago: float = 0
) -> RequestView:
    """The body's officer works the request through ``statuses`` (``days_ago``: back then)."""
    view = await request_of(engine, reference)
    when = models.utcnow() - timedelta(days=days_ago)
    for status in statuses:
        async with AsyncSession(engine) as session, session.begin():
            view = await change_status(
                session, view.id, status, expected_version=view.version, actor=Actor("officer@benghazi.ly"),
                role="officer", calendar=WorkingCalendar(), settings=settings, note="", now=when,
            )  # fmt: skip
    return view


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_a_client_s_note_is_recorded_once_as_the_citizen_s_and_answered_with_the_same_update_id(
    http: httpx.AsyncClient, engine: AsyncEngine, fmt: str
) -> None:
    key = await make_key(engine)
    reference = await made_by(http, key)
    first = update_id_of(await send(http, fmt, **update_form(key, reference)), fmt)
    again = update_id_of(await send(http, fmt, **update_form(key, reference)), fmt)
    assert again == first

    history = await events(engine, reference)
    notes = [e for e in history if e["kind"] == "note"]
    assert len(notes) == 1  # stored once
    (note,) = notes
    assert str(note["id"]) == first
    assert (note["role"], note["public"], note["note"]) == ("citizen", True, "ما زال العمود مطفأً")
    assert note["actor"] == f"open311:{key[:10]}" and note["to_status"] is None
    assert note["data"] == {
        "open311_update_id": "fms-comment-77",
        "updated_datetime": "2026-03-15T10:30:00+02:00",
    }
    assert "ali@example.ly" not in str(history) and "Salem" not in str(history)
    assert (await request_of(engine, reference)).status is Status.SENT  # a note moves nothing
    async with engine.connect() as conn:
        actions = (await conn.execute(select(AUDIT.c.action, AUDIT.c.actor))).all()
    assert [a for a in actions if a[0] == "requests.note"] == [("requests.note", f"open311:{key[:10]}")]

    # the client finds its own update in its feed under the same id, so it never copies it back
    feed = (await http.get(f"{BASE}/servicerequestupdates.json", params={"api_key": key})).json()
    mine = [u for u in feed if u["update_id"] == first]
    assert len(mine) == 1
    assert (mine[0]["status"], mine[0]["description"]) == ("OPEN", "ما زال العمود مطفأً")
    # a new update_id is a new update, also when the words are the same
    other = update_id_of(await send(http, fmt, **update_form(key, reference, update_id="fms-78")), fmt)
    assert other != first and len([e for e in await events(engine, reference) if e["kind"] == "note"]) == 2


async def test_the_reporter_reopens_a_resolved_request_through_the_client_and_is_texted(
    http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    key = await make_key(engine)
    reference = await made_by(http, key)
    await officer_moves(engine, settings, reference, Status.ACKNOWLEDGED, Status.RESOLVED)
    # FixMyStreet's view is the request's standard one: "closed" says the same as resolved, a note
    closed = await send(http, **update_form(key, reference, status="CLOSED", update_id="c1"))
    update_id_of(closed, "json")
    assert (await request_of(engine, reference)).status is Status.RESOLVED

    reopened = await send(http, "xml", **update_form(key, reference, update_id="c2", description="لم يُصلح"))
    update_id = update_id_of(reopened, "xml")
    view = await request_of(engine, reference)
    assert view.status is Status.REOPENED and view.resolved_at is None
    last = (await events(engine, reference))[-1]
    assert (str(last["id"]), last["from_status"], last["to_status"], last["role"], last["note"]) == (
        update_id, "resolved", "reopened", "citizen", "لم يُصلح",
    )  # fmt: skip
    async with engine.connect() as conn:
        texts = (
            (await conn.execute(select(MESSAGE.c.body).where(MESSAGE.c.phone == REPORTER))).scalars().all()
        )
    told = [t for t in texts if reference in t and "أُعيد فتحه" in t]
    assert len(told) == 1, texts  # "reopened", in the reporter's language
    assert "لم يُصلح" not in told[0]  # the reporter is not sent their own words back

    # sent again: nothing moves, nobody is texted twice
    assert update_id_of(await send(http, **update_form(key, reference, update_id="c2")), "json") == update_id
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).where(MESSAGE.c.phone == REPORTER))).scalar_one()
    assert count == len(texts)
    # REOPEN (FixMyStreet's word when it marks reopenings) on a reopened request is a note
    update_id_of(await send(http, **update_form(key, reference, status="REOPEN", update_id="c3")), "json")
    assert (await request_of(engine, reference)).status is Status.REOPENED


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_what_the_life_cycle_refuses_a_reporter_is_answered_400_with_the_reason(
    http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, fmt: str
) -> None:
    key = await make_key(engine)
    reference = await made_by(http, key)
    before = len(await events(engine, reference))

    reopen_open = await send(http, fmt, **update_form(key, reference, status="REOPEN"))
    assert only_error(reopen_open, 400, fmt) == (
        f"status REOPEN is not possible now: request {reference} is OPEN (sent), and a request cannot "
        "go from sent to reopened"
    )
    fixed = await send(http, fmt, **update_form(key, reference, status="FIXED"))
    said = only_error(fixed, 400, fmt)
    assert said.startswith(
        f"status FIXED is the responsible body's to set (request {reference} is OPEN (sent))"
    )
    assert "speaks for the citizen who reported the request" in said
    duplicate = await send(http, fmt, **update_form(key, reference, status="duplicate"))
    assert only_error(duplicate, 400, fmt).startswith("status DUPLICATE is the responsible body's to set")
    empty = await send(http, fmt, **update_form(key, reference, description=""))
    assert only_error(empty, 400, fmt) == (
        "description was not provided: status OPEN leaves the request as it is, so the update is a note"
    )
    assert len(await events(engine, reference)) == before  # nothing stored

    await officer_moves(engine, settings, reference, Status.ACKNOWLEDGED, Status.RESOLVED, days_ago=30)
    late = await send(http, fmt, **update_form(key, reference))
    assert only_error(late, 400, fmt) == (
        "status OPEN: the request was resolved too long ago to reopen: make a new one"
    )
    silent = await send(http, fmt, **update_form(key, reference, status="REOPEN", description=""))
    assert only_error(silent, 400, fmt) == "description was not provided: say why the request is reopened"
    assert (await request_of(engine, reference)).status is Status.RESOLVED


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_bad_updates_are_refused_in_the_specification_s_error_format(
    http: httpx.AsyncClient, engine: AsyncEngine, fmt: str
) -> None:
    key = await make_key(engine)
    reference = await made_by(http, key)
    form = update_form(key, reference)
    before = len(await events(engine, reference))

    async def refused(code: int, **changed: str) -> str:
        sent = {k: v for k, v in {**form, **changed}.items() if v != "<absent>"}
        return only_error(await send(http, fmt, **sent), code, fmt)

    assert await refused(403, api_key="<absent>") == "api_key was not provided"
    assert "not valid" in await refused(403, api_key="o311_forged")
    assert await refused(400, service_request_id="<absent>") == "service_request_id was not provided"
    nobody = reference_for(987_654).display
    assert await refused(404, service_request_id=nobody) == (
        f"service_request_id '{nobody}' was not found among the requests this api_key reaches"
    )
    assert "was not found" in await refused(404, service_request_id="1415-1234-5678")  # wrong check digit
    assert await refused(400, status="<absent>") == (
        "status was not provided (one of OPEN, INVESTIGATING, IN_PROGRESS, ACTION_SCHEDULED, FIXED, "
        "INTERNAL_REFERRAL, DUPLICATE, CLOSED, REOPEN)"
    )
    assert (await refused(400, status="SOLVED")).endswith("not 'SOLVED'")
    assert (await refused(400, status="NOT_COUNCILS_RESPONSIBILITY")).startswith("status is one of OPEN,")
    zone = "updated_datetime is a W3C date-time with its zone, e.g. 2026-03-15T08:00:00+02:00 or ...Z"
    assert await refused(400, updated_datetime="yesterday") == zone
    assert await refused(400, updated_datetime="2026-03-15 10:30") == zone  # no zone
    assert await refused(400, updated_datetime="2026-02-30T10:00:00Z") == zone  # no such day
    assert await refused(400, updated_datetime="<absent>") == (
        "updated_datetime was not provided (a W3C date-time with its zone)"
    )
    assert await refused(400, description="ض" * 10_000) == (
        "description is limited to 2000 characters; this one has 10000: shorten it"
    )
    assert (await refused(400, update_id="<absent>")).startswith("update_id was not provided")
    assert await refused(400, update_id="x" * 101) == "update_id is limited to 100 characters"
    assert await refused(400, media_url="ftp://x/y.jpg") == "media_url is an http or https address"
    assert await refused(404, jurisdiction_id="atlantis") == "jurisdiction_id 'atlantis' was not found"
    assert "json or xml" in only_error(await send(http, "html", **form), 404)
    assert len(await events(engine, reference)) == before  # nothing stored


async def test_a_key_updates_only_the_requests_it_made_within_its_jurisdictions(
    http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    maker = await make_key(engine, ["benghazi"])
    reference = await made_by(http, maker)
    elsewhere = await make_key(engine, ["misrata"])
    everywhere = await make_key(engine)

    outside = await send(http, **update_form(elsewhere, reference))
    assert only_error(outside, 404) == (
        f"service_request_id '{reference}' was not found among the requests this api_key reaches"
    )
    named = await send(http, **update_form(elsewhere, reference, jurisdiction_id="benghazi"))
    assert only_error(named, 403) == "this api_key does not reach jurisdiction_id 'benghazi'"
    not_theirs = await send(http, "xml", **update_form(everywhere, reference))
    assert only_error(not_theirs, 403, "xml") == (
        f"service_request_id '{reference}' was not made with this api_key: a client sends updates only on "
        "the requests it made"
    )
    wrong_place = await send(http, **update_form(maker, reference, jurisdiction_id="misrata"))
    assert "does not reach" in only_error(wrong_place, 403)
    async with AsyncSession(engine) as session, session.begin():
        desk = await create_request(
            session,
            Intake(category="water_leak", channel="desk", municipality="benghazi", phone="+218923456789"),
            actor="agent@1415.local", calendar=WorkingCalendar(), settings=settings,
        )  # fmt: skip
    by_phone = await send(http, **update_form(everywhere, desk.reference))
    assert "was not made with this api_key" in only_error(by_phone, 403)
    assert all(e["kind"] != "note" for e in await events(engine, reference))
    # its own, in its jurisdiction: recorded
    update_id_of(await send(http, **update_form(maker, reference, jurisdiction_id="benghazi")), "json")


async def test_the_same_update_sent_twice_at_once_is_stored_once_and_both_get_its_id(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    key = await make_key(engine)
    reference = await made_by(http, key)
    answers = await asyncio.gather(*(send(http, **update_form(key, reference)) for _ in range(4)))
    ids = {update_id_of(answer, "json") for answer in answers}
    assert len(ids) == 1
    assert len([e for e in await events(engine, reference) if e["kind"] == "note"]) == 1
