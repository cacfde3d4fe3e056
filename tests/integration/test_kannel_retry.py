"""The gateway's layer of retries, on a real Kannel: smsbox calls the get-url again when the
engine answers 503 (``http-request-retry``, ``http-queue-delay``), never texts the citizen
its own error when every try failed, and does not call a DLR twice when it was answered."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from fastapi import FastAPI

from callcenter.settings import Settings
from callcenter.sms.gateways.base import InboundSms, OutboundSms, StatusReport
from callcenter.sms.gateways.kannel import KannelGateway
from callcenter.sms.kannel_webhooks import make_router, sms_service_get_url
from callcenter.sms.spool import SpoolFull
from callcenter.testing.kannel import KannelLab
from tests.integration.test_kannel import eventually, require_kannel

pytestmark = pytest.mark.kannel

SECRET = "retry-test-secret"
RETRIES, DELAY_S = 3, 1


@dataclass
class FlakyInbox:
    """Answers 503 (neither database nor spool) the first ``refuse[sender]`` times."""

    refuse: dict[str, int] = field(default_factory=dict)
    calls: list[InboundSms] = field(default_factory=list)
    reports: list[StatusReport] = field(default_factory=list)

    async def receive(self, sms: InboundSms) -> str | None:
        self.calls.append(sms)
        left = self.refuse.get(sms.sender, 0)
        if left:
            self.refuse[sms.sender] = left - 1
            raise SpoolFull("the spool reached its limit (test)")
        return "Reply 2 for no"

    async def status(self, report: StatusReport) -> None:
        self.reports.append(report)


@dataclass
class Lab:
    lab: KannelLab
    inbox: FlakyInbox
    settings: Settings


@pytest.fixture(scope="module")
async def lab() -> AsyncIterator[Lab]:
    require_kannel()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        _env_file=None, env="test", sms_gateway="kannel", kannel_secret=SECRET, public_base_url=base
    )
    inbox = FlakyInbox()
    app = FastAPI()
    app.include_router(make_router(settings))
    app.state.inbox = inbox
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    get_url = sms_service_get_url(base, SECRET)
    try:
        async with KannelLab(get_url=get_url, http_request_retry=RETRIES, http_queue_delay=DELAY_S) as kannel:
            yield Lab(kannel, inbox, kannel.settings(settings))
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_a_503_is_retried_until_the_engine_takes_the_reply(lab: Lab) -> None:
    citizen = "+218910002001"
    lab.inbox.refuse[citizen] = 2
    await lab.lab.inject(citizen, "2")
    [reply] = await lab.lab.wait_received(1, where=lambda m: m.to == citizen, timeout_s=30)
    assert reply.text == "Reply 2 for no"
    assert [s.body for s in lab.inbox.calls if s.sender == citizen] == ["2", "2", "2"]
    ids = {s.gateway_id for s in lab.inbox.calls if s.sender == citizen}
    assert len(ids) == 1  # the same Kannel id every time: the engine stores it once


async def test_when_every_try_fails_the_citizen_gets_no_kannel_error_text(lab: Lab) -> None:
    citizen = "+218910002002"
    lab.inbox.refuse[citizen] = RETRIES + 1
    await lab.lab.inject(citizen, "1")

    def all_tried() -> bool:
        return sum(s.sender == citizen for s in lab.inbox.calls) == RETRIES + 1

    await eventually(all_tried, "every retry", timeout_s=30)
    await asyncio.sleep(DELAY_S * 2)
    assert [m for m in lab.lab.received() if m.to == citizen] == []  # no "Could not fetch content"


async def test_an_answered_delivery_report_is_not_called_again(lab: Lab) -> None:
    gateway = KannelGateway(lab.settings)
    try:
        [result] = await gateway.send_many([OutboundSms(to="+218910002003", body="hello", ref="d2003")])
    finally:
        await gateway.aclose()
    assert result.ok

    def delivered() -> bool:
        return any(r.ref == "d2003" and r.state == "delivered" for r in lab.inbox.reports)

    await eventually(delivered, "the DLR", timeout_s=30)
    await asyncio.sleep(DELAY_S * 2.5)  # a retry would have come by now
    states = [r.state for r in lab.inbox.reports if r.ref == "d2003"]
    assert sorted(states) == ["delivered", "sent"]  # SMSC submit (8) and delivered (1), once each
