"""The Twilio gateway, through the real ``twilio`` library, against a fake Twilio on 127.0.0.1.

The fake speaks the Messages API the way Twilio does: HTTP basic auth with the account
SID and token, a form body, 201 with the message JSON, legacy error JSON with ``code``.
Which answer it gives depends on the ``To`` number.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from callcenter.settings import Settings
from callcenter.sms.gateways.base import OutboundSms
from callcenter.sms.gateways.twilio import TwilioGateway, is_temporary_status, validate_request

SID = "AC" + "1" * 32
TOKEN = "test-auth-token-0123456789abcdef"
FROM = "1415"
PUBLIC = "https://sms.example.ly"

OK_TO = "+218910000001"
INVALID_TO = "+2180"
UNSUBSCRIBED_TO = "+218910000021"
RATE_LIMITED_TO = "+218910000429"
BROKEN_TO = "+218910000500"
SLOW_TO = "+218910000999"
ARABIC = "هل أنت راضٍ عن خدمات الكهرباء؟ أرسل ١ لنعم أو ٢ لا 👍"


@dataclass
class FakeTwilio:
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    slow_s: float = 2.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _error(status: int, code: int, message: str) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status)


def make_app(fake: FakeTwilio) -> Starlette:
    expected_auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()

    async def create_message(request: Request) -> Response:
        if request.headers.get("authorization") != expected_auth:
            return _error(401, 20003, "Authenticate")
        if request.path_params["sid"] != SID:
            return _error(404, 20404, "The requested resource was not found")
        form = {k: str(v) for k, v in (await request.form()).items()}
        fake.requests.append({"form": form, "content_type": request.headers["content-type"]})
        to = form.get("To", "")
        if to == INVALID_TO:
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to == UNSUBSCRIBED_TO:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        if to == RATE_LIMITED_TO:
            return _error(429, 20429, "Too Many Requests")
        if to == BROKEN_TO:
            return Response("<html>Internal Server Error</html>", status_code=500)
        if to == SLOW_TO:
            await asyncio.sleep(fake.slow_s)
        message = {
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": SID,
            "to": to,
            "from": form.get("From"),
            "body": form.get("Body"),
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": "Thu, 01 May 2025 10:00:00 +0000",
            "date_updated": "Thu, 01 May 2025 10:00:00 +0000",
            "date_sent": None,
            "price": None,
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{SID}/Messages/SMxx.json",
        }
        return JSONResponse(message, status_code=201)

    routes = [Route("/2010-04-01/Accounts/{sid}/Messages.json", create_message, methods=["POST"])]
    return Starlette(routes=routes)


@pytest.fixture(scope="module")
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    fake.port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_app(fake),
        log_level="warning",
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    yield fake
    server.should_exit = True
    await task
    sock.close()


def make_settings(base: str | None, *, timeout: float = 5.0, token: str = TOKEN) -> Settings:
    return Settings(
        _env_file=None,
        twilio_account_sid=SID,
        twilio_auth_token=token,
        twilio_from=FROM,
        twilio_api_base=base,
        public_base_url=PUBLIC,
        http_timeout_s=timeout,
    )


@pytest.fixture
async def gateway(fake_twilio: FakeTwilio) -> AsyncIterator[TwilioGateway]:
    fake_twilio.requests.clear()
    gw = TwilioGateway(make_settings(fake_twilio.base, timeout=0.5))
    yield gw
    await gw.aclose()


def sms(to: str, ref: str, body: str = ARABIC) -> OutboundSms:
    return OutboundSms(to=to, body=body, ref=ref)


async def test_send_reaches_twilio_with_auth_and_arabic_intact(
    gateway: TwilioGateway, fake_twilio: FakeTwilio
) -> None:
    assert gateway.name == "twilio"
    [result] = await gateway.send_many([sms(OK_TO, "d1")])
    assert result.ok, result.error
    assert result.ref == "d1"
    assert result.gateway_id is not None and re.fullmatch(r"SM[0-9a-f]{32}", result.gateway_id)

    [request] = fake_twilio.requests
    assert request["content_type"].startswith("application/x-www-form-urlencoded")
    assert request["form"] == {
        "To": OK_TO,
        "From": FROM,
        "Body": ARABIC,
        "StatusCallback": f"{PUBLIC}/sms/twilio/status",
    }


async def test_results_in_order_with_error_mapping(gateway: TwilioGateway, fake_twilio: FakeTwilio) -> None:
    messages = [
        sms(OK_TO, "ok1"),
        sms(INVALID_TO, "invalid"),
        sms(UNSUBSCRIBED_TO, "stopped"),
        sms(RATE_LIMITED_TO, "limited"),
        sms(BROKEN_TO, "broken"),
        sms(SLOW_TO, "slow"),
        sms(OK_TO, "ok2", body="Reply 1 for yes"),
    ]
    results = await gateway.send_many(messages)
    by_ref = {r.ref: r for r in results}
    assert [r.ref for r in results] == [m.ref for m in messages]

    assert by_ref["ok1"].ok and by_ref["ok2"].ok
    assert by_ref["ok1"].gateway_id != by_ref["ok2"].gateway_id

    invalid = by_ref["invalid"]
    assert not invalid.ok and not invalid.temporary
    assert invalid.error is not None and "21211" in invalid.error and "400" in invalid.error
    assert "not a valid phone number" in invalid.error

    stopped = by_ref["stopped"]
    assert not stopped.temporary and stopped.error is not None and "21610" in stopped.error

    limited = by_ref["limited"]
    assert limited.temporary and limited.error is not None and "429" in limited.error

    broken = by_ref["broken"]
    assert broken.temporary and broken.error is not None and "500" in broken.error

    slow = by_ref["slow"]
    assert slow.temporary and slow.error is not None and "timeout" in slow.error
    assert slow.gateway_id is None


async def test_unencodable_body_is_permanent(gateway: TwilioGateway) -> None:
    results = await gateway.send_many([sms(OK_TO, "bad", body="x \ud800"), sms(OK_TO, "ok")])
    assert [(r.ref, r.ok, r.temporary) for r in results] == [
        ("bad", False, False),
        ("ok", True, False),
    ]


async def test_batch_runs_concurrently(gateway: TwilioGateway, fake_twilio: FakeTwilio) -> None:
    fake_twilio.slow_s = 0.3
    try:
        slow_gateway = TwilioGateway(make_settings(fake_twilio.base, timeout=5.0))
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await slow_gateway.send_many([sms(SLOW_TO, f"s{i}") for i in range(10)])
        elapsed = loop.time() - started
        await slow_gateway.aclose()
    finally:
        fake_twilio.slow_s = 2.0
    assert all(r.ok for r in results)
    assert elapsed < 2.0  # ten 0.3 s answers in parallel, not 3 s in sequence


async def test_many_messages(gateway: TwilioGateway, fake_twilio: FakeTwilio) -> None:
    results = await gateway.send_many([sms(OK_TO, f"m{i}") for i in range(200)])
    assert all(r.ok for r in results)
    assert len({r.gateway_id for r in results}) == 200
    assert len(fake_twilio.requests) == 200


async def test_wrong_credentials_are_permanent(fake_twilio: FakeTwilio) -> None:
    gw = TwilioGateway(make_settings(fake_twilio.base, token="wrong-token"))
    try:
        [result] = await gw.send_many([sms(OK_TO, "d1")])
    finally:
        await gw.aclose()
    assert not result.ok and not result.temporary
    assert result.error is not None and "401" in result.error and "20003" in result.error


async def test_connection_refused_is_temporary() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = TwilioGateway(make_settings(f"http://127.0.0.1:{port}", timeout=2.0))
    try:
        results = await gw.send_many([sms(OK_TO, "a"), sms(OK_TO, "b")])
    finally:
        await gw.aclose()
    assert all(not r.ok and r.temporary for r in results)
    assert all(r.error is not None and "connection" in r.error for r in results)


async def test_empty_batch_and_close_without_use() -> None:
    gw = TwilioGateway(make_settings(None))
    assert await gw.send_many([]) == []
    await gw.aclose()
    await gw.aclose()


async def test_api_base_defaults_to_twilio() -> None:
    gw = TwilioGateway(make_settings(None))
    try:
        client = gw._get_client()  # built only; nothing is sent
        assert client.api.base_url == "https://api.twilio.com"
    finally:
        await gw.aclose()


@pytest.mark.parametrize(
    ("status", "temporary"),
    [(400, False), (401, False), (404, False), (429, True), (500, True), (503, True)],
)
def test_temporary_statuses(status: int, temporary: bool) -> None:
    assert is_temporary_status(status) is temporary


def test_validate_request_with_the_real_validator() -> None:
    settings = make_settings(None)
    url = f"{PUBLIC}/sms/twilio/inbound?x=1"
    params = {"MessageSid": "SM1", "From": "+218910000001", "Body": "نعم"}
    signature = RequestValidator(TOKEN).compute_signature(url, params)

    assert validate_request(settings, url, params, signature)
    assert not validate_request(settings, url, params, None)
    assert not validate_request(settings, url, params, "")
    assert not validate_request(settings, url, {**params, "Body": "لا"}, signature)
    assert not validate_request(settings, f"{PUBLIC}/sms/twilio/inbound", params, signature)
    assert not validate_request(make_settings(None, token="other"), url, params, signature)
    # Twilio may sign with or without the default port.
    with_port = "https://sms.example.ly:443/sms/twilio/inbound?x=1"
    assert validate_request(settings, with_port, params, signature)
