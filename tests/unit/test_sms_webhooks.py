"""The SMS webhooks, signed with the real Twilio validator, against a recording inbox."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from callcenter.settings import Settings
from callcenter.sms.gateways.base import InboundSms, StatusReport
from callcenter.sms.webhooks import make_router

TOKEN = "webhook-test-token-0123456789abcdef"
PUBLIC = "https://sms.example.ly"
INBOUND = "/sms/twilio/inbound"
STATUS = "/sms/twilio/status"
REPLY_AR = 'شكراً لمشاركتك! <نعم> & "لا"'


@dataclass
class FakeInbox:
    reply: str | None = None
    received: list[InboundSms] = field(default_factory=list)
    reports: list[StatusReport] = field(default_factory=list)

    async def receive(self, sms: InboundSms) -> str | None:
        self.received.append(sms)
        return self.reply

    async def status(self, report: StatusReport) -> None:
        self.reports.append(report)


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "twilio_auth_token": TOKEN,
        "public_base_url": PUBLIC,
        "sms_gateway": "twilio",
        "env": "test",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def make_app(settings: Settings) -> tuple[FastAPI, FakeInbox]:
    app = FastAPI()
    app.include_router(make_router(settings))
    inbox = FakeInbox()
    app.state.inbox = inbox
    return app, inbox


@pytest.fixture
def inbox_app() -> tuple[FastAPI, FakeInbox]:
    return make_app(make_settings())


@pytest.fixture
async def client(inbox_app: tuple[FastAPI, FakeInbox]) -> AsyncIterator[httpx.AsyncClient]:
    # The app sees http://internal:8000, as behind a proxy; Twilio signs the public URL.
    transport = httpx.ASGITransport(app=inbox_app[0])
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as c:
        yield c


@pytest.fixture
def inbox(inbox_app: tuple[FastAPI, FakeInbox]) -> FakeInbox:
    return inbox_app[1]


def sign(path: str, params: Mapping[str, str], *, token: str = TOKEN) -> str:
    signature: str = RequestValidator(token).compute_signature(PUBLIC + path, dict(params))
    return signature


async def post_signed(
    client: httpx.AsyncClient,
    path: str,
    params: Mapping[str, str],
    *,
    signature: str | None = None,
) -> httpx.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    headers["X-Twilio-Signature"] = signature if signature is not None else sign(path, params)
    return await client.post(path, content=urlencode(dict(params)), headers=headers)


def inbound(body: str = "نعم", **extra: str) -> dict[str, str]:
    params = {
        "MessageSid": "SM" + "a" * 32,
        "SmsSid": "SM" + "a" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": "+218910000001",
        "To": "1415",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "FromCountry": "LY",
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def twiml_messages(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


# --- Twilio inbound -----------------------------------------------------------------------


async def test_inbound_valid_signature_no_reply(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    response = await post_signed(client, INBOUND, inbound())
    assert response.status_code == 200
    assert twiml_messages(response) == []
    assert inbox.received == [
        InboundSms(
            gateway="twilio",
            gateway_id="SM" + "a" * 32,
            sender="+218910000001",
            body="نعم",
            to="1415",
        )
    ]


async def test_inbound_arabic_reply_is_escaped_twiml(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    inbox.reply = REPLY_AR
    response = await post_signed(client, INBOUND, inbound())
    assert response.status_code == 200
    assert "&lt;نعم&gt; &amp;" in response.text
    assert twiml_messages(response) == [REPLY_AR]


async def test_inbound_signature_over_query_string(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    path = INBOUND + "?campaign=7&lang=ar"
    response = await post_signed(client, path, inbound())
    assert response.status_code == 200
    # Signed without the query string: refused.
    response = await post_signed(client, path, inbound(), signature=sign(INBOUND, inbound()))
    assert response.status_code == 403
    assert len(inbox.received) == 1


async def test_inbound_signed_with_default_port(client: httpx.AsyncClient) -> None:
    params = inbound()
    signature = RequestValidator(TOKEN).compute_signature("https://sms.example.ly:443" + INBOUND, params)
    response = await post_signed(client, INBOUND, params, signature=signature)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    ["", "👍", "🇱🇾 نعم 😀", "ن" * 2000, "a" * 2000, "1\n2\r\n3", "&<>\"'%+=;"],
    ids=["empty", "emoji", "flag-arabic-emoji", "2000-arabic", "2000-latin", "newlines", "punct"],
)
async def test_inbound_bodies_pass_through(client: httpx.AsyncClient, inbox: FakeInbox, body: str) -> None:
    inbox.reply = body or None
    response = await post_signed(client, INBOUND, inbound(body))
    assert response.status_code == 200
    assert inbox.received[-1].body == body
    assert twiml_messages(response) == ([body.replace("\r\n", "\n")] if body else [])


async def test_inbound_forged_signature(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    params = inbound()
    forged = sign(INBOUND, params, token="not-the-token")
    response = await post_signed(client, INBOUND, params, signature=forged)
    assert response.status_code == 403
    assert response.json()["error"] == "invalid_signature"
    assert inbox.received == []


async def test_inbound_tampered_body(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    signature = sign(INBOUND, inbound("نعم"))
    response = await post_signed(client, INBOUND, inbound("لا"), signature=signature)
    assert response.status_code == 403
    assert inbox.received == []


async def test_inbound_signed_for_internal_url_is_refused(client: httpx.AsyncClient) -> None:
    params = inbound()
    internal = RequestValidator(TOKEN).compute_signature("http://internal:8000" + INBOUND, params)
    response = await post_signed(client, INBOUND, params, signature=internal)
    assert response.status_code == 403


async def test_inbound_missing_signature(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    response = await client.post(INBOUND, data=inbound())
    assert response.status_code == 403
    assert response.json()["error"] == "invalid_signature"
    response = await post_signed(client, INBOUND, inbound(), signature="")
    assert response.status_code == 403
    assert inbox.received == []


@pytest.mark.parametrize("missing", ["MessageSid", "From"])
async def test_inbound_missing_fields(client: httpx.AsyncClient, inbox: FakeInbox, missing: str) -> None:
    params = inbound()
    del params[missing]
    params.pop("SmsSid")
    response = await post_signed(client, INBOUND, params)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert missing in response.json()["detail"]
    assert inbox.received == []


async def test_inbound_empty_form(client: httpx.AsyncClient) -> None:
    response = await post_signed(client, INBOUND, {})
    assert response.status_code == 400


async def test_inbound_garbage_body_with_signature_is_403_not_500(
    client: httpx.AsyncClient,
) -> None:
    headers = {"X-Twilio-Signature": "abc", "Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post(INBOUND, content=b"\xff\xfe%%%&&==", headers=headers)
    assert response.status_code == 403


# --- Twilio status callbacks --------------------------------------------------------------


@pytest.mark.parametrize(
    ("twilio_status", "state", "error_code", "error"),
    [
        ("queued", "sent", None, None),
        ("sending", "sent", None, None),
        ("sent", "sent", None, None),
        ("delivered", "delivered", None, None),
        ("read", "delivered", None, None),
        ("failed", "failed", "30008", "30008"),
        ("undelivered", "failed", "30003", "30003"),
        ("undelivered", "failed", None, "undelivered"),
    ],
)
async def test_status_mapping(
    client: httpx.AsyncClient,
    inbox: FakeInbox,
    twilio_status: str,
    state: str,
    error_code: str | None,
    error: str | None,
) -> None:
    params = {
        "MessageSid": "SM" + "b" * 32,
        "SmsSid": "SM" + "b" * 32,
        "MessageStatus": twilio_status,
        "SmsStatus": twilio_status,
        "AccountSid": "AC" + "0" * 32,
        "From": "1415",
        "To": "+218910000001",
    }
    if error_code:
        params["ErrorCode"] = error_code
    response = await post_signed(client, STATUS, params)
    assert response.status_code == 204
    assert response.content == b""
    assert inbox.reports == [
        StatusReport(gateway="twilio", state=state, gateway_id="SM" + "b" * 32, error=error)  # type: ignore[arg-type]
    ]


async def test_status_unknown_value_is_acknowledged(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    params = {"MessageSid": "SM1", "MessageStatus": "teleported"}
    response = await post_signed(client, STATUS, params)
    assert response.status_code == 204
    assert inbox.reports == []


async def test_status_forged_and_missing_signature(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    forged = sign(STATUS, params, token="nope")
    assert (await post_signed(client, STATUS, params, signature=forged)).status_code == 403
    assert (await client.post(STATUS, data=params)).status_code == 403
    # A signature for the inbound URL does not validate the status URL.
    signature = sign(INBOUND, params)
    assert (await post_signed(client, STATUS, params, signature=signature)).status_code == 403
    assert inbox.reports == []


async def test_status_missing_sid(client: httpx.AsyncClient) -> None:
    response = await post_signed(client, STATUS, {"MessageStatus": "delivered"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


# --- loopback -----------------------------------------------------------------------------


async def test_loopback_inbound(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    inbox.reply = "شكراً"
    payload = {"id": "sim-1", "from": "+218910000001", "to": "1415", "body": "نعم 👍"}
    response = await client.post("/sms/loopback/inbound", json=payload)
    assert response.status_code == 200
    assert response.json() == {"reply": "شكراً"}
    assert inbox.received == [
        InboundSms(gateway="loopback", gateway_id="sim-1", sender="+218910000001", body="نعم 👍", to="1415")
    ]


async def test_loopback_inbound_no_reply_and_optional_to(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    response = await client.post(
        "/sms/loopback/inbound", json={"id": "sim-2", "from": "+218910000002", "body": ""}
    )
    assert response.json() == {"reply": None}
    assert inbox.received[0].to == ""


@pytest.mark.parametrize(
    "payload",
    [
        {"from": "+218910000001", "body": "x"},
        {"id": "1", "body": "x"},
        {"id": "1", "from": "+218910000001"},
        {"id": 1, "from": "+218910000001", "body": "x"},
    ],
)
async def test_loopback_inbound_invalid(
    client: httpx.AsyncClient, inbox: FakeInbox, payload: dict[str, object]
) -> None:
    response = await client.post("/sms/loopback/inbound", json=payload)
    assert response.status_code == 422
    assert inbox.received == []


async def test_loopback_inbound_bad_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/sms/loopback/inbound", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


async def test_loopback_status(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    response = await client.post("/sms/loopback/status", json={"ref": "d1", "state": "delivered"})
    assert response.status_code == 204
    response = await client.post(
        "/sms/loopback/status", json={"id": "lb-1", "state": "failed", "error": "absent"}
    )
    assert response.status_code == 204
    assert inbox.reports == [
        StatusReport(gateway="loopback", state="delivered", ref="d1"),
        StatusReport(gateway="loopback", state="failed", gateway_id="lb-1", error="absent"),
    ]


@pytest.mark.parametrize("payload", [{"ref": "d1", "state": "lost"}, {"state": "sent"}, {"ref": "d1"}])
async def test_loopback_status_invalid(
    client: httpx.AsyncClient, inbox: FakeInbox, payload: dict[str, object]
) -> None:
    response = await client.post("/sms/loopback/status", json=payload)
    assert response.status_code == 422
    assert inbox.reports == []


async def test_loopback_routes_absent_in_production_with_twilio() -> None:
    settings = make_settings(
        env="production",
        sms_gateway="twilio",
        secret_key="s" * 32,
        pseudonym_key="p" * 32,
        kannel_secret="k" * 32,
    )
    app, _ = make_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://internal") as c:
        payload = {"id": "1", "from": "+218910000001", "body": "x"}
        assert (await c.post("/sms/loopback/inbound", json=payload)).status_code == 404
        status = {"ref": "d1", "state": "sent"}
        assert (await c.post("/sms/loopback/status", json=status)).status_code == 404
        # Twilio routes are still there.
        assert (await c.post(INBOUND, data={})).status_code == 403


async def test_loopback_routes_present_in_production_with_loopback() -> None:
    settings = make_settings(
        env="production",
        sms_gateway="loopback",
        secret_key="s" * 32,
        pseudonym_key="p" * 32,
        kannel_secret="k" * 32,
    )
    app, inbox = make_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://internal") as c:
        payload = {"id": "1", "from": "+218910000001", "body": "x"}
        assert (await c.post("/sms/loopback/inbound", json=payload)).status_code == 200
    assert len(inbox.received) == 1


@given(st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=80)))
def test_inline_twiml_is_byte_for_byte_what_the_twilio_library_writes(reply: str | None) -> None:
    from twilio.twiml.messaging_response import MessagingResponse

    from callcenter.sms.webhooks import _twiml

    expected = MessagingResponse()
    if reply is not None:
        expected.message(reply)
    assert _twiml(reply).body == expected.to_xml().encode()
