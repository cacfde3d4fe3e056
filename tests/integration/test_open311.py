"""Open311 GeoReport v2 through the application, on both databases: every document in JSON
and XML field by field against the specification's examples; a client's request made,
routed and read back (Arabic intact in both formats); mySociety's servicerequestupdates with
the extended statuses; keys checked, scoped, revoked and audited; and the bad input each
answered in the specification's error format."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor
from callcenter.open311.clients import issue, revoke, verify
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.lifecycle import Status
from callcenter.requests.service import Intake, change_status, create_request
from callcenter.requests.store import load
from callcenter.settings import Settings
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities

BASE = "/open311/v2"
ARABIC = 'عمود الإنارة مكسور أمام مسجد "النور" & الحي <الصابري>'
# the fields of a service request, in the specification's order (GeoReport v2, GET Service Requests)
REQUEST_FIELDS = [
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url",
]  # fmt: skip
SERVICE_FIELDS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
ATTRIBUTE_FIELDS = [
    "variable",
    "code",
    "datatype",
    "required",
    "datatype_description",
    "order",
    "description",
]
UPDATE_FIELDS = [
    "update_id", "service_request_id", "status", "updated_datetime", "description", "media_url",
    "external_status_code",
]  # fmt: skip
W3C = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$"


@pytest.fixture
async def client(web: FastAPI, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    await add_municipalities(engine)
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="https://1415.test") as http:
        yield http


async def make_key(engine: AsyncEngine, jurisdictions: list[str] | None = None) -> str:
    async with AsyncSession(engine) as session, session.begin():
        _, key = await issue(
            session, name="FixMyStreet Libya", jurisdictions=jurisdictions or [], actor="test"
        )
    return key


def xml_records(text: str, root: str, item: str) -> list[dict[str, str | None]]:
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    tree = ET.fromstring(text.encode())
    assert tree.tag == root
    return [{child.tag: child.text for child in element} for element in tree.iterfind(item)]


def only_error(response: httpx.Response, code: int, fmt: str = "json") -> str:
    """The specification's error document: one {code, description}; its description."""
    assert response.status_code == code, response.text
    if fmt == "json":
        assert response.headers["content-type"].startswith("application/json")
        (error,) = response.json()
        assert set(error) == {"code", "description"} and error["code"] == code
        return str(error["description"])
    assert response.headers["content-type"].startswith("text/xml")
    (error,) = xml_records(response.text, "errors", "error")
    assert list(error) == ["code", "description"] and error["code"] == str(code)
    return str(error["description"])


async def post(http: httpx.AsyncClient, fmt: str = "json", **form: str) -> httpx.Response:
    return await http.post(f"{BASE}/requests.{fmt}", data=form)


def good_form(key: str, **extra: str) -> dict[str, str]:
    return {
        "api_key": key, "jurisdiction_id": "benghazi", "service_code": "street_lighting",
        "lat": "32.1167", "long": "20.0667", "description": ARABIC, "phone": "0912345678",
        "attribute[neighbourhood]": "الصابري", **extra,
    }  # fmt: skip


async def test_the_services_list_and_a_definition_match_the_specification_in_both_formats(
    client: httpx.AsyncClient,
) -> None:
    as_json = await client.get(f"{BASE}/services.json")
    assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json; charset=utf-8"
    services = as_json.json()
    assert [s["service_code"] for s in services][:2] == ["street_lighting", "waste_collection"]
    lighting = services[0]
    assert list(lighting) == SERVICE_FIELDS
    assert lighting["service_name"] == "إنارة الشوارع" and lighting["metadata"] is True
    assert lighting["type"] == "realtime" and lighting["group"] == "الإدارة الخدمية بالبلدية"
    english = (await client.get(f"{BASE}/services.json", params={"locale": "en"})).json()
    assert english[0]["service_name"] == "Street lighting"

    as_xml = await client.get(f"{BASE}/services.xml")
    assert as_xml.headers["content-type"] == "text/xml; charset=utf-8"
    records = xml_records(as_xml.text, "services", "service")
    assert records[0] == {k: ("true" if v is True else v or None) for k, v in lighting.items()}

    definition = (await client.get(f"{BASE}/services/street_lighting.json")).json()
    assert (
        list(definition) == ["service_code", "attributes"] and definition["service_code"] == "street_lighting"
    )
    first = definition["attributes"][0]
    assert list(first) == ATTRIBUTE_FIELDS
    assert (first["code"], first["datatype"], first["order"], first["variable"], first["required"]) == (
        "neighbourhood", "string", 1, True, False,
    )  # fmt: skip
    xml = ET.fromstring((await client.get(f"{BASE}/services/street_lighting.xml")).content)
    assert xml.tag == "service_definition" and xml.findtext("service_code") == "street_lighting"
    assert [a.findtext("code") for a in xml.iterfind("attributes/attribute")] == ["neighbourhood", "landmark"]
    assert xml.findtext("attributes/attribute/description") == first["description"]

    benghazi = await client.get(f"{BASE}/services.json", params={"jurisdiction_id": "benghazi"})
    assert benghazi.json() == services
    nowhere = await client.get(f"{BASE}/services.xml", params={"jurisdiction_id": "atlantis"})
    assert only_error(nowhere, 404, "xml") == "jurisdiction_id 'atlantis' was not found"
    missing = await client.get(f"{BASE}/services/no_such.xml")
    assert "no_such" in only_error(missing, 404, "xml")
    assert "json or xml" in only_error(await client.get(f"{BASE}/services.html"), 404)


async def test_a_client_s_request_is_made_routed_and_read_back_field_by_field_with_arabic_intact(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    key = await make_key(engine)
    made = await post(client, "xml", **good_form(key))
    assert made.status_code == 201, made.text
    (answer,) = xml_records(made.text, "service_requests", "request")
    assert list(answer) == ["service_request_id", "service_notice", "account_id"]
    reference = str(answer["service_request_id"])
    assert reference.startswith("1415-") and answer["account_id"] is None

    async with engine.connect() as conn:
        row = (await conn.execute(select(models.table(models.ServiceRequest)))).mappings().one()
        extra = (await conn.execute(select(models.table(models.Open311Request)))).mappings().one()
        audit = (
            await conn.execute(
                select(models.table(models.AuditLog).c.actor, models.table(models.AuditLog).c.action)
            )
        ).all()
    assert (row["channel"], row["phone"], row["description"], row["status"]) == (
        "open311",
        "+218912345678",
        ARABIC,
        "sent",
    )
    assert row["details"] == {"neighbourhood": "الصابري"}
    assert (extra["lat"], extra["long"]) == (32.1167, 20.0667)
    assert any(action == "requests.create" and actor.startswith("open311:o311_") for actor, action in audit)

    as_json = await client.get(f"{BASE}/requests/{reference}.json", params={"api_key": key})
    (one,) = as_json.json()
    assert list(one) == REQUEST_FIELDS
    assert one["service_request_id"] == reference and one["status"] == "open"
    assert one["description"] == ARABIC and one["service_code"] == "street_lighting"
    assert one["service_name"] == "إنارة الشوارع" and one["agency_responsible"] == "الإدارة الخدمية بالبلدية"
    assert (one["lat"], one["long"], one["zipcode"], one["media_url"]) == (32.1167, 20.0667, "", "")
    for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
        assert re.match(W3C, one[name]), one[name]
    assert one["requested_datetime"].endswith("+02:00")  # Africa/Tripoli

    as_xml = await client.get(f"{BASE}/requests/{reference.replace('-', '')}.xml", params={"api_key": key})
    (record,) = xml_records(as_xml.text, "service_requests", "request")
    assert list(record) == REQUEST_FIELDS
    assert record["description"] == ARABIC and record["lat"] == "32.1167" and record["status"] == "open"
    assert record["address"] is None  # an empty element


async def test_the_request_list_filters_pages_and_never_shows_a_phone_caller_s_words(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    key = await make_key(engine)
    for n in range(3):
        assert (await post(client, **good_form(key, description=f"طلب {n}"))).status_code == 201
    async with AsyncSession(engine) as session, session.begin():
        desk = await create_request(
            session,
            Intake(category="water_leak", channel="desk", municipality="misrata", phone="+218923456789",
                   description="my name is Ali, call me on 0923456789"),
            actor="agent@1415.local", calendar=WorkingCalendar(), settings=settings,
        )  # fmt: skip
        await change_status(
            session, desk.id, Status.ACKNOWLEDGED, expected_version=desk.version, actor=Actor("o@x"),
            role="officer", calendar=WorkingCalendar(), settings=settings, note="سنتصل بك يا علي",
        )  # fmt: skip

    everything = (await client.get(f"{BASE}/requests.json", params={"api_key": key})).json()
    assert len(everything) == 4
    by_desk = next(r for r in everything if r["service_request_id"] == desk.reference)
    assert by_desk["description"] == "" and by_desk["status_notes"] == ""  # the caller never published it
    assert "0923456789" not in json.dumps(everything, ensure_ascii=False)

    params: dict[str, Any] = {"api_key": key}
    water = (
        await client.get(f"{BASE}/requests.json", params={**params, "service_code": "water_leak"})
    ).json()
    assert [r["service_request_id"] for r in water] == [desk.reference]
    misrata = (
        await client.get(f"{BASE}/requests.json", params={**params, "jurisdiction_id": "misrata"})
    ).json()
    assert len(misrata) == 1
    assert (await client.get(f"{BASE}/requests.json", params={**params, "status": "closed"})).json() == []
    page2 = (await client.get(f"{BASE}/requests.json", params={**params, "page": 2, "page_size": 3})).json()
    assert len(page2) == 1
    later = {"start_date": datetime.now(UTC).replace(year=2100).isoformat()}
    assert (await client.get(f"{BASE}/requests.json", params={**params, **later})).json() == []
    picked = await client.get(f"{BASE}/requests.xml", params={**params, "service_request_id": desk.reference})
    assert [r["service_code"] for r in xml_records(picked.text, "service_requests", "request")] == [
        "water_leak"
    ]
    bad = await client.get(f"{BASE}/requests.xml", params={**params, "status": "fixed"})
    assert "open or closed" in only_error(bad, 400, "xml")
    unknown = await client.get(f"{BASE}/requests.json", params={**params, "jurisdiction_id": "atlantis"})
    assert "atlantis" in only_error(unknown, 404)


async def test_servicerequestupdates_give_the_client_its_requests_public_changes_in_extended_statuses(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    key = await make_key(engine)
    reference = (await post(client, **good_form(key))).json()[0]["service_request_id"]
    other = await make_key(engine)
    async with AsyncSession(engine) as session, session.begin():
        row = (await session.execute(select(models.ServiceRequest))).scalars().one()
        assert row.id is not None
        officer = Actor("officer@benghazi.ly")
        common: dict[str, Any] = {
            "actor": officer,
            "role": "officer",
            "calendar": WorkingCalendar(),
            "settings": settings,
        }
        done = await change_status(
            session, row.id, Status.ACKNOWLEDGED, expected_version=row.version, note="تم الاستلام", **common
        )
        done = await change_status(
            session, row.id, Status.IN_PROGRESS, expected_version=done.version, **common
        )
        await change_status(
            session, row.id, Status.RESOLVED, expected_version=done.version, note="تم الإصلاح", **common
        )

    as_json = await client.get(f"{BASE}/servicerequestupdates.json", params={"api_key": key})
    updates = as_json.json()
    assert [list(u) for u in updates] == [UPDATE_FIELDS] * 3
    assert [(u["status"], u["external_status_code"], u["description"]) for u in updates] == [
        ("INVESTIGATING", "acknowledged", "تم الاستلام"), ("IN_PROGRESS", "in_progress", ""),
        ("FIXED", "resolved", "تم الإصلاح"),
    ]  # fmt: skip
    assert all(u["service_request_id"] == reference for u in updates)
    as_xml = await client.get(f"{BASE}/servicerequestupdates.xml", params={"api_key": key})
    records = xml_records(as_xml.text, "service_request_updates", "request_update")
    assert [r["status"] for r in records] == ["INVESTIGATING", "IN_PROGRESS", "FIXED"]
    assert records[2]["description"] == "تم الإصلاح"
    closed = (await client.get(f"{BASE}/requests/{reference}.json", params={"api_key": key})).json()
    assert closed[0]["status"] == "closed" and closed[0]["status_notes"] == "تم الإصلاح"
    # another client hears nothing of requests it did not make
    assert (await client.get(f"{BASE}/servicerequestupdates.json", params={"api_key": other})).json() == []


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_bad_posts_are_refused_in_the_specification_s_error_format(
    client: httpx.AsyncClient, engine: AsyncEngine, fmt: str
) -> None:
    key = await make_key(engine)
    form = good_form(key)
    no_key = {k: v for k, v in form.items() if k != "api_key"}
    assert only_error(await post(client, fmt, **no_key), 403, fmt) == "api_key was not provided"
    assert "not valid" in only_error(await post(client, fmt, **{**form, "api_key": "o311_forged"}), 403, fmt)
    unknown = await post(client, fmt, **{**form, "service_code": "dragons"})
    assert "'dragons' is not a service of 1415" in only_error(unknown, 400, fmt)
    long = await post(client, fmt, **{**form, "description": "ض" * 10_000})
    assert (
        only_error(long, 400, fmt)
        == "description is limited to 2000 characters; this one has 10000: shorten it"
    )
    lat = await post(client, fmt, **{**form, "lat": "32.1.1"})
    assert "lat is a decimal number" in only_error(lat, 400, fmt)
    question = await post(client, fmt, **{**form, "attribute[colour]": "red"})
    assert "attribute[colour] is not a question" in only_error(question, 400, fmt)
    phone = await post(client, fmt, **{**form, "phone": "12"})
    assert only_error(phone, 400, fmt).startswith("phone:")
    nowhere = await post(client, fmt, **{**form, "jurisdiction_id": "atlantis"})
    assert "atlantis" in only_error(nowhere, 404, fmt)
    async with engine.connect() as conn:
        assert (await conn.execute(select(models.table(models.ServiceRequest).c.id))).all() == []
    reads = await client.get(f"{BASE}/requests.{fmt}")
    assert only_error(reads, 403, fmt) == "api_key was not provided"


async def test_a_key_reaches_only_its_jurisdictions_and_a_revoked_key_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    key = await make_key(engine, ["misrata"])
    elsewhere = await post(client, **good_form(key))
    assert "does not reach" in only_error(elsewhere, 403)
    assert (await post(client, **good_form(key, jurisdiction_id="misrata"))).status_code == 201
    listed = (await client.get(f"{BASE}/requests.json", params={"api_key": key})).json()
    assert len(listed) == 1
    async with AsyncSession(engine) as session, session.begin():
        await revoke(session, prefix=key[:10], actor="test")
    assert "not valid" in only_error(await client.get(f"{BASE}/requests.json", params={"api_key": key}), 403)
    async with engine.connect() as conn:
        log = models.table(models.AuditLog)
        actions = (
            (await conn.execute(select(log.c.action).where(log.c.action.like("open311.%")))).scalars().all()
        )
    assert sorted(actions) == ["open311.client.issue", "open311.client.revoke"]


async def test_the_command_issues_a_key_that_works_lists_it_and_revokes_it(
    engine: AsyncEngine, settings: Settings
) -> None:
    from tests.integration.test_results_cli import cli

    await add_municipalities(engine)
    issued = cli(settings, "requests", "open311", "issue", "FixMyStreet Libya", "-j", "benghazi")
    assert issued.returncode == 0, issued.stderr
    found = re.search(r"o311_[\w-]{43}", issued.stdout)
    assert found is not None and "not shown again" in issued.stdout
    key = found.group(0)
    async with engine.connect() as conn:
        holder = await verify(conn, key, now=datetime.now(UTC))
    assert holder is not None and holder.jurisdictions == {"benghazi"} and holder.name == "FixMyStreet Libya"
    listed = cli(settings, "requests", "open311", "list")
    assert key[:10] in listed.stdout and "benghazi" in listed.stdout
    assert key not in listed.stdout  # only the prefix is ever shown again
    assert cli(settings, "requests", "open311", "revoke", key[:10]).returncode == 0
    async with engine.connect() as conn:
        assert await verify(conn, key, now=datetime.now(UTC)) is None
    unknown = cli(settings, "requests", "open311", "issue", "X", "-j", "atlantis")
    assert unknown.returncode == 2 and "unknown municipality: atlantis" in unknown.stderr
