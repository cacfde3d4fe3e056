"""The Kannel gateway and webhooks against a real Kannel (bearerbox, smsbox, fakesmsc).

The engine side is a FastAPI app with the Kannel router and a recording inbox, served by
uvicorn on 127.0.0.1; Kannel's sms-service calls it (get-url) and so do the DLRs.
Skipped without Kannel, except under CI (``CI=true``), where a missing Kannel fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from callcenter.settings import Settings
from callcenter.sms.gateways.base import InboundSms, OutboundSms, StatusReport
from callcenter.sms.gateways.kannel import KannelGateway
from callcenter.sms.kannel_webhooks import make_router, sms_service_get_url
from callcenter.testing.kannel import (
    BEARERBOX,
    FakeSmscMessage,
    KannelLab,
    KannelUnavailable,
    raw_sendsms_rate,
)

pytestmark = pytest.mark.kannel

SECRET = "s3cr%t wörd&=/?"  # Kannel must pass '%', spaces and non-ASCII through untouched
ARABIC = "هل أنت راضٍ عن خدمات الكهرباء؟ أرسل ١ لنعم أو ٢ لا"
REPLY_AR = "شكراً لمشاركتك! تم تسجيل إجابتك: نعم"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def require_kannel() -> None:
    if BEARERBOX.exists():
        return
    reason = f"Kannel is not installed ({BEARERBOX} missing: apt install kannel kannel-extras)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class RecordingInbox:
    replies: dict[str, str | None] = field(default_factory=dict)
    received: list[InboundSms] = field(default_factory=list)
    reports: list[StatusReport] = field(default_factory=list)

    async def receive(self, sms: InboundSms) -> str | None:
        self.received.append(sms)
        return self.replies.get(sms.sender)

    async def status(self, report: StatusReport) -> None:
        self.reports.append(report)


@dataclass
class Engine:
    settings: Settings
    inbox: RecordingInbox


async def eventually(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[Engine]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        _env_file=None,
        env="test",
        sms_gateway="kannel",
        kannel_secret=SECRET,
        public_base_url=base,
        http_timeout_s=10.0,
    )
    inbox = RecordingInbox()
    app = FastAPI()
    app.include_router(make_router(settings))
    app.state.inbox = inbox
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    yield Engine(settings, inbox)
    server.should_exit = True
    await task
    sock.close()


@pytest.fixture(scope="module")
async def lab(engine: Engine) -> AsyncIterator[KannelLab]:
    require_kannel()
    get_url = sms_service_get_url(engine.settings.public_base_url, SECRET)
    async with KannelLab(get_url=get_url) as lab:
        yield lab


@pytest.fixture(scope="module")
async def gateway(lab: KannelLab, engine: Engine) -> AsyncIterator[KannelGateway]:
    gw = KannelGateway(lab.settings(engine.settings))
    yield gw
    await gw.aclose()


def to(number: str) -> Callable[[FakeSmscMessage], bool]:
    return lambda m: m.to == number


async def test_arabic_goes_out_intact_and_the_dlr_comes_back_with_our_ref(
    lab: KannelLab, gateway: KannelGateway, engine: Engine
) -> None:
    number = "+218910001001"
    [result] = await gateway.send_many([OutboundSms(to=number, body=ARABIC, ref="d1001")])
    assert result.ok, result.error

    [mt] = await lab.wait_received(1, where=to(number))
    assert (mt.sender, mt.text, mt.coding, mt.smsc) == ("1415", ARABIC, "ucs-2", "mt")

    # fakesmsc took it: Kannel reports the SMSC submit (8), then delivery (1), with our ref.
    def states() -> list[str]:
        return [r.state for r in engine.inbox.reports if r.ref == "d1001"]

    await eventually(lambda: "delivered" in states(), "the delivered DLR")
    assert states() == ["sent", "delivered"]
    assert all(r.gateway == "kannel" and r.error is None for r in engine.inbox.reports)


async def test_gsm_text_goes_out_as_gsm(lab: KannelLab, gateway: KannelGateway) -> None:
    number = "+218910001002"
    # fakesmsc prints the line break as is: the lab glues the second line back on.
    text = "Reply 1 for yes,\n2 for no."
    [result] = await gateway.send_many([OutboundSms(to=number, body=text, ref="d1002")])
    assert result.ok, result.error
    [mt] = await lab.wait_received(1, where=to(number))
    assert (mt.text, mt.coding) == (text, "text")


async def test_long_arabic_is_concatenated_and_reassembled(lab: KannelLab, gateway: KannelGateway) -> None:
    number = "+218910001003"
    text = (ARABIC + " ") * 5  # 5 x 50 characters: 4 UCS-2 parts of 67
    [result] = await gateway.send_many([OutboundSms(to=number, body=text, ref="d1003")])
    assert result.ok, result.error
    [mt] = await lab.wait_received(1, where=to(number))
    assert mt.text == text
    assert mt.parts == 4


async def test_arabic_reply_in_reaches_the_engine_and_its_reply_goes_out(
    lab: KannelLab, engine: Engine
) -> None:
    citizen = "+218912000001"
    answer = "نعم  أوافق\nشكراً"  # two spaces and a line break
    engine.inbox.replies[citizen] = REPLY_AR
    await lab.inject(citizen, answer)

    await eventually(lambda: any(s.sender == citizen for s in engine.inbox.received), "the inbound SMS")
    [sms] = [s for s in engine.inbox.received if s.sender == citizen]
    assert (sms.gateway, sms.body, sms.to) == ("kannel", answer, "1415")
    assert UUID.fullmatch(sms.gateway_id), sms.gateway_id

    [reply] = await lab.wait_received(1, where=to(citizen))
    assert (reply.sender, reply.text, reply.coding, reply.smsc) == ("1415", REPLY_AR, "ucs-2", "mt")


async def test_no_reply_sends_nothing(lab: KannelLab, engine: Engine) -> None:
    silent, chatty = "+218912000002", "+218912000003"
    engine.inbox.replies[silent] = None
    engine.inbox.replies[chatty] = "OK"
    await lab.inject(silent, "1")
    await lab.inject(chatty, "2")
    [reply] = await lab.wait_received(1, where=to(chatty))
    assert (reply.text, reply.coding) == ("OK", "text")
    await asyncio.sleep(0.3)
    assert [m for m in lab.received() if m.to == silent] == []
    assert {s.sender for s in engine.inbox.received} >= {silent, chatty}


async def test_a_batch_all_arrives(lab: KannelLab, gateway: KannelGateway) -> None:
    messages = [OutboundSms(to=f"+2189130{i:05d}", body=f"{ARABIC} {i}", ref=f"b{i}") for i in range(300)]
    results = await gateway.send_many(messages)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    arrived = await lab.wait_received(300, where=lambda m: m.to.startswith("+2189130"))
    assert sorted((m.to, m.text) for m in arrived) == sorted((m.to, m.body) for m in messages)


async def test_raw_sendsms_rate(lab: KannelLab) -> None:
    texts = [f"rate {i}" for i in range(200)]
    rate = await raw_sendsms_rate(lab, texts, concurrency=16, first_number=218_914_000_000)
    assert rate > 0
    await lab.wait_received(200, where=lambda m: m.to.startswith("+218914"))


async def test_inject_refuses_a_line_fakesmsc_would_cut(lab: KannelLab) -> None:
    with pytest.raises(ValueError, match="at most 255 bytes"):
        await lab.inject("+218912000004", ARABIC * 3)


def test_missing_binaries_raise_kannel_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.testing import kannel as lab_module

    monkeypatch.setattr(lab_module, "BEARERBOX", Path("/nonexistent/bearerbox"))
    with pytest.raises(KannelUnavailable, match="kannel-extras"):
        KannelLab().start()
