"""Open311's two formats from one shape: the specification's documents (errors, services, a
service definition, requests) in JSON and XML, field by field; text escaped; Arabic kept;
characters XML cannot carry dropped; the life cycle in Open311's and mySociety's statuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from callcenter.open311.formats import errors, render, w3c
from callcenter.open311.statuses import extended, standard, statuses_for
from callcenter.requests.lifecycle import Status

# the specification's own example of an error (GeoReport v2, "Errors")
SPEC_ERROR_JSON = [{"code": 403, "description": "api_key was not provided"}]
SPEC_ERROR_XML = (
    '<?xml version="1.0" encoding="utf-8"?>'
    "<errors><error><code>403</code><description>api_key was not provided</description></error></errors>"
)


def test_an_error_is_the_specification_s_list_of_code_and_description() -> None:
    assert json.loads(errors("json", [(403, "api_key was not provided")])) == SPEC_ERROR_JSON
    assert errors("xml", [(403, "api_key was not provided")]) == SPEC_ERROR_XML


def test_a_service_list_in_xml_has_one_element_per_field_in_order_and_booleans_as_words() -> None:
    service = {
        "service_code": "001", "service_name": "Cans left out 24x7", "description": "Garbage cans",
        "metadata": True, "type": "realtime", "keywords": "lorem, ipsum", "group": "sanitation",
    }  # fmt: skip
    root = ET.fromstring(render("xml", "services", "service", [service]).encode())
    assert root.tag == "services"
    (item,) = list(root)
    assert item.tag == "service"
    assert [(c.tag, c.text) for c in item] == [
        ("service_code", "001"), ("service_name", "Cans left out 24x7"), ("description", "Garbage cans"),
        ("metadata", "true"), ("type", "realtime"), ("keywords", "lorem, ipsum"), ("group", "sanitation"),
    ]  # fmt: skip
    assert json.loads(render("json", "services", "service", [service])) == [service]


def test_a_service_definition_nests_attributes_and_values() -> None:
    definition = {
        "service_code": "DMV66",
        "attributes": [
            {"variable": True, "code": "WHISHETN", "datatype": "singlevaluelist", "required": True,
             "datatype_description": None, "order": 1, "description": "What is the ticket number?",
             "values": [{"key": 123, "name": "Ford"}, {"key": 124, "name": "Chrysler"}]},
        ],
    }  # fmt: skip
    root = ET.fromstring(render("xml", "service_definition", None, definition).encode())
    assert root.tag == "service_definition" and root.findtext("service_code") == "DMV66"
    attribute = root.find("attributes/attribute")
    assert attribute is not None
    assert attribute.findtext("variable") == "true" and attribute.findtext("order") == "1"
    assert (
        attribute.find("datatype_description") is not None
        and attribute.findtext("datatype_description") == ""
    )
    assert [(v.findtext("key"), v.findtext("name")) for v in attribute.iterfind("values/value")] == [
        ("123", "Ford"), ("124", "Chrysler"),
    ]  # fmt: skip
    assert json.loads(render("json", "service_definition", None, definition)) == definition


def test_text_is_escaped_arabic_kept_and_characters_xml_cannot_carry_dropped() -> None:
    text = 'عمود <إنارة> & "مكسور"\x00\x07 في الحي\nسطر'
    document = render("xml", "service_requests", "request", [{"description": text, "lat": None}])
    assert "&lt;إنارة&gt; &amp;" in document
    root = ET.fromstring(document.encode())
    assert root.findtext("request/description") == 'عمود <إنارة> & "مكسور" في الحي\nسطر'
    assert root.find("request/lat") is not None and root.findtext("request/lat") == ""
    assert json.loads(render("json", "service_requests", "request", [{"description": text}])) == [
        {"description": text}
    ]


def test_dates_are_w3c_with_the_offset_and_no_fraction() -> None:
    moment = datetime(2026, 3, 15, 6, 0, 0, 123456, tzinfo=UTC)
    assert w3c(moment, ZoneInfo("Africa/Tripoli")) == "2026-03-15T08:00:00+02:00"
    assert w3c(None, ZoneInfo("Africa/Tripoli")) is None


def test_the_life_cycle_in_open311_s_and_mysociety_s_statuses() -> None:
    assert {s: standard(s) for s in Status} == {
        Status.NEW: "open", Status.SENT: "open", Status.ACKNOWLEDGED: "open", Status.IN_PROGRESS: "open",
        Status.ACTION_SCHEDULED: "open", Status.REOPENED: "open", Status.NOT_RESPONSIBLE: "open",
        Status.RESOLVED: "closed", Status.DUPLICATE: "closed", Status.CLOSED: "closed",
    }  # fmt: skip
    # the values FixMyStreet's Open311 client understands (perllib/Open311.pm, map_state)
    mysociety = {"OPEN", "INVESTIGATING", "IN_PROGRESS", "ACTION_SCHEDULED", "FIXED", "INTERNAL_REFERRAL",
                 "DUPLICATE", "CLOSED", "NOT_COUNCILS_RESPONSIBILITY", "NO_FURTHER_ACTION"}  # fmt: skip
    assert {extended(s) for s in Status} <= mysociety
    assert extended(Status.RESOLVED) == "FIXED" and extended(Status.ACKNOWLEDGED) == "INVESTIGATING"
    assert statuses_for("closed") == ["closed", "duplicate", "resolved"]
