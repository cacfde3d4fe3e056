"""What the fuzzing found: one test per crash, named after the behaviour now kept."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.citizens.fields import valid_municipality
from callcenter.citizens.importer import _Reader, import_citizens
from callcenter.settings import Settings
from callcenter.sms.gateways.base import InboundSms, StatusReport
from callcenter.sms.kannel_webhooks import decode_text
from callcenter.telephony.agi_wire import AgiReply
from callcenter.web.app import create_app
from tests.fuzz import targets
from tests.webapp import logged_in


def test_ami_repeated_actionid_or_event_header_keeps_the_first_not_the_connection() -> None:
    stream = (
        b"Response: Success\r\nActionID: fuzz-1\r\nActionID: other\r\nPing: Pong\r\n\r\n"
        b"Event: Hangup\r\nEvent: Newchannel\r\nUniqueid: 1.1\r\n\r\n"
    )
    events, response = targets.run(targets.ami_feed([stream]))
    # (panoramisk also lists the body, empty here, as a "content" header)
    assert [event[:2] for event in events] == [(("Event", "Hangup"), ("Uniqueid", "1.1"))]
    assert isinstance(response, tuple)
    assert response[:3] == (("Response", "Success"), ("ActionID", "fuzz-1"), ("Ping", "Pong"))


@pytest.mark.parametrize("text", ["²", "١", "-" + "9" * 5000, "9" * 19, "--1", ""])
def test_agi_result_that_is_no_ascii_int_is_none_not_a_value_error(text: str) -> None:
    assert AgiReply(200, text).result is None


def test_agi_key_code_that_is_no_number_is_a_protocol_error() -> None:
    env = b"agi_network: yes\nagi_channel: PJSIP/a-1\n\n"
    with pytest.raises(Exception) as caught:
        targets.run(targets.agi_session(env + b"200 result=0\n200 result=12\n200 result=\xc2\xb2\n"))
    assert type(caught.value).__name__ == "AgiProtocolError"
    assert "not a key code" in str(caught.value)


@pytest.mark.parametrize("charset", ["base64", "rot13", "zlib", "idna", "punycode", "undefined", "utf-8\x00"])
def test_kannel_text_in_a_charset_that_is_no_text_encoding_is_read_as_utf8(charset: str) -> None:
    assert decode_text("نعم".encode(), charset=charset) == "نعم"


def test_kannel_dlr_status_of_thousands_of_digits_is_a_400_not_a_500() -> None:
    app, inbox = targets.webhook_app()
    url = f"/sms/kannel/dlr?secret={targets.KANNEL_SECRET}&ref=d1&status={'1' * 5000}"
    response = targets.run(targets._call(app, "GET", url))
    assert response.status_code == 400 and "unknown DLR status" in response.text
    assert inbox.reports == []


def test_gateway_text_with_nul_or_lone_surrogates_becomes_storable() -> None:
    sms = InboundSms("kannel", "id\x00", "\x00+218912345678", "نعم\x00\ud800", "14\x0015")
    assert (sms.gateway_id, sms.sender, sms.body, sms.to) == (
        "id\ufffd",
        "\ufffd+218912345678",
        "نعم\ufffd\ufffd",
        "14\ufffd15",
    )
    report = StatusReport("kannel", "failed", ref="d1\x00", error="undelivered: \x00")
    assert (report.ref, report.error) == ("d1\ufffd", "undelivered: \ufffd")


async def test_a_reply_with_nul_is_stored_not_refused_by_the_database(inbox: Any) -> None:
    outcome = await inbox.handle(InboundSms("kannel", "nul-1", "+218912345678\x00", "نعم\x00", "1415"))
    assert outcome.event == "unknown_sender" and outcome.reply


def test_a_field_over_the_csv_limit_rejects_its_row_not_the_import() -> None:
    data = b'phone\n0912345678\n"' + b"y" * 140_000 + b"\n0912345679\n"
    reader = _Reader.open(io.BytesIO(data), region="LY", batch_size=100, error_limit=100)
    batch = reader.next_batch()
    reader.close()
    assert batch is not None and "+218912345678" in batch.citizens
    assert [e.reason for e in reader.errors][:1] == ["unreadable row: field larger than field limit (131072)"]


@pytest.mark.parametrize("name", ["طرابلس\x00", "Tripoli\x1b", "بنغازي\x85"])
def test_a_municipality_name_with_a_control_character_is_rejected(name: str) -> None:
    assert not valid_municipality(name)


async def test_a_register_naming_a_municipality_with_nul_imports_the_rest(engine: AsyncEngine) -> None:
    data = "phone,municipality\n0912345678,طرابلس\x00\n0912345679,بنغازي\n".encode()
    report = await import_citizens(engine, io.BytesIO(data), create_municipalities=True)
    assert (report.imported, report.rejected, report.municipalities_created) == (1, 1, 1)
    assert report.errors[0].reason == "invalid municipality"


def test_openapi_operation_ids_are_unique() -> None:
    schema = create_app(Settings(_env_file=None, env="test")).openapi()  # type: ignore[call-arg]
    ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("method,path", [("GET", ""), ("POST", "/start"), ("POST", "/cancel")])
async def test_a_campaign_id_beyond_bigint_is_a_422_not_a_500(web: Any, method: str, path: str) -> None:
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="http://1415.test") as client:
        response = await client.request(method, f"/api/campaigns/{2**63}{path}")
        assert response.status_code == 422, response.text
        assert (await client.get(f"/api/campaigns/{2**63 - 1}")).status_code == 404


async def test_revoking_a_token_id_beyond_bigint_changes_nothing_not_a_500(
    web: Any, engine: AsyncEngine
) -> None:
    client, _ = await logged_in(web, engine, "operator")
    try:
        response = await client.post(f"/account/tokens/{2**63}/revoke")
        assert response.status_code == 303 and response.headers["location"] == "/account"
    finally:
        await client.http.aclose()
