"""The Kannel gateway against a fake sendsms on 127.0.0.1, and the Kannel webhook routes.

The fake answers the way smsbox does (``gw/smsbox.c``): 202 ``0: Accepted for delivery``,
403 ``Authorization failed for sendsms``, 400 for a bad field, 503/500 for its trouble;
which one depends on the password and the ``to`` number. Kannel's substitution of
``%``-escapes in ``dlr-url`` and ``get-url`` is emulated by :func:`kannel_fill`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from callcenter.settings import Settings
from callcenter.sms.gateways.base import InboundSms, OutboundSms, StatusReport
from callcenter.sms.gateways.kannel import (
    DLR_MASK,
    KannelGateway,
    dlr_url,
    is_temporary_status,
    kannel_literal,
)
from callcenter.sms.kannel_webhooks import (
    decode_text,
    fallback_id,
    make_router,
    sms_service_get_url,
)

USER = "callcenter"
PASSWORD = "kannel-test-password"
SECRET = "s3cr%t wörd&=/?"  # every character Kannel or a URL could mangle
PUBLIC = "https://sms.example.ly"

OK_TO = "+218910000001"
QUEUED_TO = "+218910000003"
BAD_TO = "+218910000400"
UNROUTABLE_TO = "+218910000403"
BROKEN_TO = "+218910000500"
BUSY_TO = "+218910000503"
SLOW_TO = "+218910000999"

ARABIC = "هل أنت راضٍ عن خدمات الكهرباء؟ أرسل ١ لنعم أو ٢ لا"
GSM = "Reply 1 for yes, 2 for no {ok} é"
REPLY_AR = "شكراً لمشاركتك! <نعم> & لا"

# Every escape letter of Kannel 1.4.5's urltrans_fill_escape_codes.
KANNEL_ESCAPES = frozenset("aAbBcCdDefFiIkmMnoOpPqQrRsStTuvV#")


def kannel_fill(pattern: str, values: dict[str, str]) -> str:
    """What Kannel does to a get-url/dlr-url: ``%x`` escapes replaced, ``%%`` is ``%``.

    An escape the test gives no value for becomes ``<x>``, so a literal ``%C3`` that
    Kannel would have eaten shows up as a broken value.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "%" and i + 1 < len(pattern):
            code = pattern[i + 1]
            if code == "%":
                out.append("%")
            elif code in KANNEL_ESCAPES:
                out.append(values.get(code, f"<{code}>"))
            else:
                out.append("%" + code)
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


# -- the fake sendsms ---------------------------------------------------------------------


@dataclass
class FakeSendsms:
    port: int = 0
    queries: list[bytes] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    slow_s: float = 2.0
    delay_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/sendsms"

    def params(self, index: int = -1) -> dict[str, str]:
        return dict(parse_qsl(self.queries[index].decode("ascii"), keep_blank_values=True))


def _kannel_answer(text: str, status: int) -> Response:
    return PlainTextResponse(text, status_code=status, media_type="text/html")


def make_fake_app(fake: FakeSendsms) -> Starlette:
    async def sendsms(request: Request) -> Response:
        fake.queries.append(request.scope["query_string"])
        q = request.query_params
        # A slow request outlives its test (the client gave up): not counted in flight.
        counted = q.get("to") != SLOW_TO
        fake.in_flight += counted
        fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            if fake.delay_s:
                await asyncio.sleep(fake.delay_s)
            if q.get("username") != USER or q.get("password") != PASSWORD:
                return _kannel_answer("Authorization failed for sendsms", 403)
            to = q.get("to", "")
            if not to or to == BAD_TO:
                return _kannel_answer("Missing receiver number, rejected", 400)
            if to == UNROUTABLE_TO:
                return _kannel_answer("Not routable. Do not try again.", 403)
            if to == BROKEN_TO:
                return _kannel_answer("Sending failed.", 500)
            if to == BUSY_TO:
                return _kannel_answer("Temporal failure, try again later.", 503)
            if to == SLOW_TO:
                await asyncio.sleep(fake.slow_s)
            if to == QUEUED_TO:
                return _kannel_answer("3: Queued for later delivery", 202)
            return _kannel_answer("0: Accepted for delivery", 202)
        finally:
            fake.in_flight -= counted

    return Starlette(routes=[Route("/cgi-bin/sendsms", sendsms)])


@pytest.fixture(scope="module")
async def fake_sendsms() -> AsyncIterator[FakeSendsms]:
    fake = FakeSendsms()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    fake.port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_fake_app(fake),
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


def make_settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "sms_gateway": "kannel",
        "kannel_sendsms_url": url,
        "kannel_username": USER,
        "kannel_password": PASSWORD,
        "kannel_from": "1415",
        "kannel_secret": SECRET,
        "public_base_url": PUBLIC,
        "http_timeout_s": 0.5,
        "env": "test",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
async def gateway(fake_sendsms: FakeSendsms) -> AsyncIterator[KannelGateway]:
    fake_sendsms.queries.clear()
    fake_sendsms.max_in_flight = 0
    fake_sendsms.delay_s = 0.0
    gw = KannelGateway(make_settings(fake_sendsms.url))
    yield gw
    await gw.aclose()


def sms(to: str, ref: str, body: str = ARABIC) -> OutboundSms:
    return OutboundSms(to=to, body=body, ref=ref)


# -- sending ------------------------------------------------------------------------------


async def test_arabic_goes_as_utf8_with_ucs2_coding_and_dlr_url(
    gateway: KannelGateway, fake_sendsms: FakeSendsms
) -> None:
    assert gateway.name == "kannel"
    [result] = await gateway.send_many([sms(OK_TO, "d1")])
    assert result.ok, result.error
    assert result.ref == "d1" and result.gateway_id is None  # DLRs come back with our ref

    assert fake_sendsms.params() == {
        "username": USER,
        "password": PASSWORD,
        "from": "1415",
        "to": OK_TO,  # the '+' kept, sent as %2B
        "text": ARABIC,
        "charset": "UTF-8",
        "coding": "2",
        "dlr-mask": str(DLR_MASK),
        "dlr-url": dlr_url(make_settings(fake_sendsms.url), "d1"),
    }
    assert b"to=%2B218910000001" in fake_sendsms.queries[-1]


async def test_gsm_text_goes_without_coding(gateway: KannelGateway, fake_sendsms: FakeSendsms) -> None:
    [result] = await gateway.send_many([sms(OK_TO, "m7", body=GSM)])
    assert result.ok, result.error
    params = fake_sendsms.params()
    assert params["text"] == GSM
    assert params["charset"] == "UTF-8"
    assert "coding" not in params
    assert "smsc" not in params


async def test_smsc_is_passed_when_configured(fake_sendsms: FakeSendsms) -> None:
    gw = KannelGateway(make_settings(fake_sendsms.url, kannel_smsc="libyana"))
    try:
        [result] = await gw.send_many([sms(OK_TO, "d2")])
    finally:
        await gw.aclose()
    assert result.ok
    assert fake_sendsms.params()["smsc"] == "libyana"


async def test_results_in_order_with_error_mapping(gateway: KannelGateway) -> None:
    messages = [
        sms(OK_TO, "ok1"),
        sms(QUEUED_TO, "queued"),
        sms(BAD_TO, "bad"),
        sms(UNROUTABLE_TO, "unroutable"),
        sms(BROKEN_TO, "broken"),
        sms(BUSY_TO, "busy"),
        sms(SLOW_TO, "slow"),
        sms(OK_TO, "ok2", body="Reply 1 for yes"),
    ]
    results = await gateway.send_many(messages)
    assert [r.ref for r in results] == [m.ref for m in messages]
    by_ref = {r.ref: r for r in results}

    for ref in ("ok1", "queued", "ok2"):
        assert by_ref[ref].ok and by_ref[ref].gateway_id is None, by_ref[ref]

    bad = by_ref["bad"]
    assert not bad.ok and not bad.temporary
    assert bad.error is not None and "400" in bad.error and "Missing receiver" in bad.error

    unroutable = by_ref["unroutable"]
    assert not unroutable.ok and not unroutable.temporary
    assert unroutable.error is not None and "Not routable" in unroutable.error

    for ref, code in (("broken", "500"), ("busy", "503")):
        failed = by_ref[ref]
        assert not failed.ok and failed.temporary
        assert failed.error is not None and code in failed.error

    slow = by_ref["slow"]
    assert not slow.ok and slow.temporary
    assert slow.error is not None and "timeout" in slow.error


async def test_wrong_password_is_permanent(fake_sendsms: FakeSendsms) -> None:
    gw = KannelGateway(make_settings(fake_sendsms.url, kannel_password="wrong"))
    try:
        [result] = await gw.send_many([sms(OK_TO, "d3")])
    finally:
        await gw.aclose()
    assert not result.ok and not result.temporary
    assert result.error is not None and "403" in result.error and "Authorization" in result.error


async def test_connection_refused_is_temporary() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    gw = KannelGateway(make_settings(f"http://127.0.0.1:{port}/cgi-bin/sendsms"))
    try:
        results = await gw.send_many([sms(OK_TO, "r1"), sms(OK_TO, "r2", body=GSM)])
    finally:
        await gw.aclose()
    assert [r.ref for r in results] == ["r1", "r2"]
    for result in results:
        assert not result.ok and result.temporary
        assert result.error is not None and "connection error" in result.error


async def test_unencodable_text_is_permanent_and_does_not_raise(gateway: KannelGateway) -> None:
    results = await gateway.send_many([sms(OK_TO, "bad", body="\ud800"), sms(OK_TO, "ok")])
    assert not results[0].ok and not results[0].temporary
    assert results[1].ok


async def test_send_many_is_concurrent_and_bounded(fake_sendsms: FakeSendsms) -> None:
    fake_sendsms.queries.clear()
    fake_sendsms.max_in_flight = 0
    fake_sendsms.delay_s = 0.05
    gw = KannelGateway(make_settings(fake_sendsms.url, http_timeout_s=5), concurrency=8, pools=3)
    try:
        messages = [sms(f"+2189100{i:05d}", f"d{i}", body=f"msg {i}") for i in range(80)]
        results = await gw.send_many(messages)
    finally:
        fake_sendsms.delay_s = 0.0
        await gw.aclose()
    assert all(r.ok for r in results)
    assert [r.ref for r in results] == [m.ref for m in messages]
    assert len(fake_sendsms.queries) == 80
    assert 4 <= fake_sendsms.max_in_flight <= 8


async def test_empty_batch(gateway: KannelGateway) -> None:
    assert await gateway.send_many([]) == []


def test_bad_concurrency_is_refused() -> None:
    with pytest.raises(ValueError):
        KannelGateway(make_settings("http://127.0.0.1:1/cgi-bin/sendsms"), concurrency=0)


@pytest.mark.parametrize(
    ("status", "temporary"), [(400, False), (403, False), (404, False), (408, True), (429, True)]
)
def test_temporary_statuses(status: int, temporary: bool) -> None:
    assert is_temporary_status(status) is temporary
    assert is_temporary_status(status + 100) is True  # 5xx


def test_dlr_url_survives_kannel_substitution() -> None:
    settings = make_settings("http://127.0.0.1:1/cgi-bin/sendsms")
    url = dlr_url(settings, "d42/é")
    assert url.startswith(f"{PUBLIC}/sms/kannel/dlr?")
    assert url.endswith("&status=%d&answer=%A")
    filled = kannel_fill(url, {"d": "16", "A": quote("NACK/0x0000000b/Invalid Dest Addr")})
    params = dict(parse_qsl(urlsplit(filled).query))
    assert params == {
        "secret": SECRET,
        "ref": "d42/é",
        "status": "16",
        "answer": "NACK/0x0000000b/Invalid Dest Addr",
    }


def test_kannel_literal_doubles_percent() -> None:
    assert kannel_literal("a%C3%A9%25") == "a%%C3%%A9%%25"
    assert kannel_fill(kannel_literal("x%C3%A9"), {}) == "x%C3%A9"


# -- the webhooks -------------------------------------------------------------------------


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


@pytest.fixture
def inbox() -> FakeInbox:
    return FakeInbox(reply=REPLY_AR)


@pytest.fixture
async def client(inbox: FakeInbox) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(make_router(make_settings("http://127.0.0.1:1/cgi-bin/sendsms")))
    app.state.inbox = inbox
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engine") as c:
        yield c


INBOUND = "/sms/kannel/inbound"
DLR = "/sms/kannel/dlr"
KANNEL_ID = "74522b45-8c62-46b4-bf93-185114c07f9b"
CITIZEN = "+218912345678"


def inbound_query(text: bytes, **overrides: str | bytes | None) -> str:
    """A get-url query as Kannel builds it (values URL-encoded, spaces as '+')."""
    params: dict[str, str | bytes | None] = {
        "secret": SECRET,
        "from": CITIZEN,
        "to": "1415",
        "text": text,
        "charset": "UTF-8",
        "coding": "0",
        "id": KANNEL_ID,
        "time": "1795609444",
    }
    params.update(overrides)
    return urlencode({k: v for k, v in params.items() if v is not None})


async def test_inbound_arabic_reaches_the_inbox_and_the_reply_is_the_body(
    client: httpx.AsyncClient, inbox: FakeInbox
) -> None:
    text = "نعم  أوافق\nسطر ثان"  # two spaces and a line break survive (%b, not %a)
    response = await client.get(f"{INBOUND}?{inbound_query(text.encode())}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == REPLY_AR
    assert response.headers["x-kannel-coding"] == "2"  # else Kannel sends '?' for Arabic
    assert inbox.received == [
        InboundSms(gateway="kannel", gateway_id=KANNEL_ID, sender=CITIZEN, body=text, to="1415")
    ]


async def test_inbound_ucs2_without_mo_recode_is_decoded(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    text = "لا، شكراً 👍"
    query = inbound_query(text.encode("utf-16-be"), charset="UTF-16BE", coding="2")
    response = await client.get(f"{INBOUND}?{query}")
    assert response.status_code == 200
    assert inbox.received[0].body == text


async def test_inbound_2000_characters_intact(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    text = ("أوافق على الاقتراح رقم ١٢ " * 80)[:2000]
    assert len(text) == 2000
    response = await client.get(f"{INBOUND}?{inbound_query(text.encode())}")
    assert response.status_code == 200
    assert inbox.received[0].body == text


async def test_inbound_no_reply_is_an_empty_body(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    inbox.reply = None
    response = await client.get(f"{INBOUND}?{inbound_query(b'1')}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "x-kannel-coding" not in response.headers
    assert len(inbox.received) == 1


async def test_inbound_gsm_reply_has_no_coding_header(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    inbox.reply = "Thank you! Reply STOP to opt out."
    response = await client.get(f"{INBOUND}?{inbound_query(b'yes')}")
    assert response.text == inbox.reply
    assert "x-kannel-coding" not in response.headers


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x"])
async def test_inbound_bad_secret_is_403(
    client: httpx.AsyncClient, inbox: FakeInbox, secret: str | None
) -> None:
    response = await client.get(f"{INBOUND}?{inbound_query(b'1', secret=secret)}")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    post = await client.post(INBOUND, data={"secret": secret or "", "from": CITIZEN, "text": "1"})
    assert post.status_code == 403
    assert inbox.received == []


@pytest.mark.parametrize("sender", [None, "", "  "])
async def test_inbound_missing_from_is_400(
    client: httpx.AsyncClient, inbox: FakeInbox, sender: str | None
) -> None:
    response = await client.get(f"{INBOUND}?{inbound_query(b'1', **{'from': sender})}")
    assert response.status_code == 400
    assert inbox.received == []


async def test_inbound_without_id_gets_a_stable_fallback(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    for time in ("100", "100", "101"):
        query = inbound_query("نعم".encode(), id=None, time=time)
        assert (await client.get(f"{INBOUND}?{query}")).status_code == 200
    ids = [sms.gateway_id for sms in inbox.received]
    assert ids[0] == ids[1] == fallback_id(CITIZEN, "100", "نعم")
    assert ids[2] != ids[0]


async def test_inbound_post_form_and_post_url_body(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    form = {"secret": SECRET, "from": CITIZEN, "text": "نعم", "id": "k1"}
    response = await client.post(INBOUND, data=form)
    assert response.status_code == 200 and response.text == REPLY_AR

    # Kannel's post-url: the text is the body, the numbers are headers.
    response = await client.post(
        f"{INBOUND}?{urlencode({'secret': SECRET, 'id': 'k2'})}",
        content="لا".encode("utf-16-be"),
        headers={
            "content-type": "text/plain; charset=UTF-16BE",
            "x-kannel-from": CITIZEN,
            "x-kannel-to": "1415",
        },
    )
    assert response.status_code == 200
    assert [(s.gateway_id, s.sender, s.body, s.to) for s in inbox.received] == [
        ("k1", CITIZEN, "نعم", ""),
        ("k2", CITIZEN, "لا", "1415"),
    ]


async def test_get_url_pattern_reaches_the_route_after_kannel_fills_it(
    client: httpx.AsyncClient, inbox: FakeInbox
) -> None:
    pattern = sms_service_get_url("http://engine/", SECRET)
    text = "نعم + لا & ربما"
    values = {
        "p": quote(CITIZEN),
        "P": "1415",
        "b": quote(text.encode(), safe=""),
        "C": "UTF-8",
        "c": "0",
        "I": KANNEL_ID,
        "T": "1795609444",
    }
    url = kannel_fill(pattern, values)
    response = await client.get(url)
    assert response.status_code == 200
    assert inbox.received == [
        InboundSms(gateway="kannel", gateway_id=KANNEL_ID, sender=CITIZEN, body=text, to="1415")
    ]


@pytest.mark.parametrize(
    ("status", "state"),
    [("1", "delivered"), ("2", "failed"), ("4", "sent"), ("8", "sent"), ("16", "failed")],
)
async def test_dlr_status_mapping(
    client: httpx.AsyncClient, inbox: FakeInbox, status: str, state: str
) -> None:
    answer = "NACK/0x0000000b/Invalid Dest Addr"
    query = urlencode({"secret": SECRET, "ref": "d42", "status": status, "answer": answer})
    response = await client.get(f"{DLR}?{query}")
    assert response.status_code == 200  # smsbox retries anything but 200/202 (http-request-retry)
    assert response.content == b""
    [report] = inbox.reports
    assert report.gateway == "kannel" and report.ref == "d42" and report.state == state
    if state == "failed":
        assert report.error is not None and answer in report.error
        assert ("SMSC reject" in report.error) is (status == "16")
    else:
        assert report.error is None


async def test_dlr_from_the_gateway_dlr_url(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    pattern = dlr_url(make_settings("http://127.0.0.1:1/cgi-bin/sendsms"), "m456")
    url = kannel_fill(pattern, {"d": "1", "A": quote("ACK/")}).removeprefix(PUBLIC)
    assert (await client.get(url)).status_code == 200
    assert inbox.reports == [StatusReport(gateway="kannel", state="delivered", ref="m456")]


@pytest.mark.parametrize("status", ["", "abc", "3", "32", "-1", "²", "1.0"])
async def test_dlr_bad_status_is_400(client: httpx.AsyncClient, inbox: FakeInbox, status: str) -> None:
    query = urlencode({"secret": SECRET, "ref": "d1", "status": status})
    assert (await client.get(f"{DLR}?{query}")).status_code == 400
    assert inbox.reports == []


async def test_dlr_bad_secret_or_missing_ref(client: httpx.AsyncClient, inbox: FakeInbox) -> None:
    wrong = urlencode({"secret": "nope", "ref": "d1", "status": "1"})
    response = await client.get(f"{DLR}?{wrong}")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert (await client.get(f"{DLR}?ref=d1&status=1")).status_code == 403
    no_ref = urlencode({"secret": SECRET, "status": "1"})
    assert (await client.get(f"{DLR}?{no_ref}")).status_code == 400
    assert inbox.reports == []


@pytest.mark.parametrize(
    ("data", "charset", "coding", "text"),
    [
        ("نعم".encode(), "UTF-8", "0", "نعم"),
        ("نعم".encode("utf-16-be"), "UTF-16BE", "2", "نعم"),
        ("نعم".encode("utf-16-be"), "", "2", "نعم"),
        ("café".encode("latin-1"), "ISO-8859-1", "0", "café"),
        (b"yes", "", "", "yes"),
        (b"yes", "no-such-charset", "0", "yes"),
    ],
)
def test_decode_text(data: bytes, charset: str, coding: str, text: str) -> None:
    assert decode_text(data, charset=charset, coding=coding) == text


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(min_size=0, max_size=200),
    ref=st.text(alphabet="dm0123456789 %&", min_size=1, max_size=12),
    smsc=st.sampled_from([None, "smsc one"]),
)
def test_the_cached_query_is_exactly_the_urlencoded_params(body: str, ref: str, smsc: str | None) -> None:
    """The per-campaign fast path builds the same request as the plain parameters."""
    from urllib.parse import parse_qs

    from callcenter.sms.gateways.base import OutboundSms as Out
    from callcenter.sms.gateways.kannel import KannelGateway as Gw

    gateway = Gw(Settings(_env_file=None, kannel_secret="s3cr%t wörd&=/?", kannel_smsc=smsc))
    body = body.encode("utf-8", "ignore").decode()  # lone surrogates cannot be sent at all
    message = Out(to="+218912345678", body=body, ref=ref)
    for _ in range(2):  # the second time from the cache
        built = parse_qs(gateway.query(message), keep_blank_values=True)
        assert built == {k: [v] for k, v in gateway.params(message).items()}
