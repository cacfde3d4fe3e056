"""The drainer stores each sender's spooled replies in order, several senders at once."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callcenter.sms.drain import Drainer
from callcenter.sms.gateways.base import InboundSms
from callcenter.sms.spool import Spool, SpoolRecord


class SlowInbox:
    """Stores with a random delay; ``fail_at`` raises an outage from that message on."""

    def __init__(self, fail_at: str | None = None) -> None:
        self.order: list[tuple[str, str]] = []
        self.running = 0
        self.most = 0
        self.fail_at = fail_at
        self.rng = random.Random(7)

    async def handle(self, sms: InboundSms) -> Any:
        if self.fail_at is not None and sms.gateway_id >= self.fail_at:
            raise ConnectionRefusedError(111, "Connect call failed")
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(self.rng.uniform(0, 0.01))
        self.running -= 1
        self.order.append((sms.sender, sms.body))

        class Stored:
            event = "stored"

        return Stored()


class NoReplies:
    async def queue(self, inbound: list[tuple[str, str]]) -> list[int]:
        return []

    async def send(self, queued: list[int]) -> Any:
        from callcenter.sms.replies import Sent

        return Sent()


def spool_of(tmp_path: Path, senders: int, each: int) -> Spool:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 22)
    spool.open()
    lines = []
    for k in range(each):
        for s in range(senders):
            sms = InboundSms(
                gateway="twilio",
                gateway_id=f"SM{k:03d}{s:03d}",
                sender=f"+2189100{s:05d}",
                to="1415",
                body=str(k),
            )
            lines.append(SpoolRecord.inbound(sms, datetime.now(UTC)))
    from callcenter.sms.spool import encode

    spool.write_lines([encode(r) for r in lines])
    return spool


async def test_each_senders_replies_are_stored_in_arrival_order_while_senders_run_in_parallel(
    tmp_path: Path,
) -> None:
    spool = spool_of(tmp_path, senders=12, each=5)
    inbox = SlowInbox()
    drainer = Drainer(spool, inbox, NoReplies(), timeout_s=5, batch_size=1000, parallel=8)  # type: ignore[arg-type]
    try:
        assert await drainer.drain_once() == 60
        by_sender: dict[str, list[str]] = {}
        for sender, body in inbox.order:
            by_sender.setdefault(sender, []).append(body)
        assert len(by_sender) == 12
        assert all(bodies == ["0", "1", "2", "3", "4"] for bodies in by_sender.values())
        assert 1 < inbox.most <= 8
        assert spool.committed() == spool.size() or not spool.has_backlog()
    finally:
        spool.close()


async def test_an_outage_mid_batch_keeps_the_offset_before_the_first_record_not_stored(
    tmp_path: Path,
) -> None:
    spool = spool_of(tmp_path, senders=4, each=3)
    inbox = SlowInbox(fail_at="SM001")  # every sender's second reply meets the outage
    drainer = Drainer(spool, inbox, NoReplies(), timeout_s=5, batch_size=1000, parallel=4)  # type: ignore[arg-type]
    try:
        try:
            await drainer.drain_once()
        except ConnectionRefusedError:
            pass
        else:
            raise AssertionError("the outage must be raised")
        offset = spool.committed()
        left = spool.read(offset, max_records=100).records
        # the first replies (k=0) of all four senders were stored; from the first k=1 on, all is read again
        assert sorted(r.gateway_id or "" for r in left)[0] == "SM001000"
        assert len(left) == 8 and sorted(b for _, b in inbox.order) == ["0"] * 4
    finally:
        spool.close()


class GatewayAtItsPace:
    """Queues a reply per message; sending waits until the gateway is let go (``opened``)."""

    def __init__(self) -> None:
        self.next_id = 0
        self.opened = asyncio.Event()
        self.sent: list[int] = []

    async def queue(self, inbound: list[tuple[str, str]]) -> list[int]:
        ids = list(range(self.next_id, self.next_id + len(inbound)))
        self.next_id += len(inbound)
        return ids

    async def send(self, queued: list[int]) -> Any:
        from callcenter.sms.replies import Sent

        await self.opened.wait()
        self.sent += queued
        return Sent(sent=len(queued))

    async def sweep(self) -> Any:
        from callcenter.sms.replies import Sent

        return Sent()


async def test_storing_a_backlog_never_waits_for_the_gateway_to_send_its_replies(tmp_path: Path) -> None:
    spool = spool_of(tmp_path, senders=10, each=3)
    replies = GatewayAtItsPace()
    drainer = Drainer(spool, SlowInbox(), replies, timeout_s=5, batch_size=10, parallel=4)  # type: ignore[arg-type]
    back: list[int] = []
    drainer.on_database_back = lambda: back.append(drainer.stored)
    stop = asyncio.Event()
    try:
        running = asyncio.create_task(drainer.run(stop))

        async def stored_all() -> None:
            while drainer.stored < 30:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(stored_all(), 10)  # every batch stored, not one reply sent yet
        assert replies.sent == [] and spool.committed() == spool.size()
        assert back[:3] == [10, 20, 30]  # the webhooks are told after each stored batch
        replies.opened.set()

        async def sent_all() -> None:
            while len(replies.sent) < 30:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(sent_all(), 10)
        assert sorted(replies.sent) == list(range(30))  # each queued reply sent once
        stop.set()
        await asyncio.wait_for(running, 10)
    finally:
        spool.close()
