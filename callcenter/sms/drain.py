"""The drainer: when the database answers again, spooled webhook calls are stored, in order.

It runs in the ``serve`` process, next to the spool it drains: the spool is on the local
disk of the machine that took the webhooks, which need not be where a worker runs. One
process per spool directory drains (``drain.lock``); any other ``serve`` on the same
directory takes over if that one dies.

A batch (at most ``batch_size`` records) goes through the engine exactly like live replies
(``Inbox.handle``: store deduplicated on the gateway's id, then the inquiry engine; delivery
reports go to ``Inbox.status``): each sender's records one after another in arrival order,
up to ``parallel`` senders at a time, so a backlog left by an overload drains at about the
pace live replies are taken. The replies the engine wrote are then queued as outbound
messages (:mod:`callcenter.sms.replies`), and only then is the spool's offset moved past the
batch. A sender beside the drain sends the queued replies through the gateway: the drain
never waits for the gateway's pace (a REST call per message, a rate limit), so storing a
backlog is not held back by sending its answers, and a gateway that is down delays the
answers, never the storing. Queued replies are rows in the database, so a process that dies
before sending them leaves them to the sweep (at start, then every few minutes).

Killed anywhere, nothing is lost or stored twice: before the offset moves, a replay meets
its messages as duplicates (stored once; one stored but not yet through the engine is run
through it then, and the inbox lets only one processing of a message count) whose replies
are queued unless they already are; after, they are done. A record the engine refuses for
another reason than an outage (a bug) is set aside in ``spool.failed`` and logged, so one
bad record never blocks the rest.

Usage (what ``web.app`` does)::

    async with spooled_webhooks(settings, inbox, engine=engine, redis=redis) as webhook_inbox:
        app.state.inbox = webhook_inbox
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from callcenter.aio import wait_any
from callcenter.settings import Settings
from callcenter.sms.gateways import make_gateway
from callcenter.sms.gateways.base import Gateway
from callcenter.sms.inbox import Inbox
from callcenter.sms.replies import ReplyOutbox, Sent
from callcenter.sms.spool import Entry, Spool, SpoolRecord
from callcenter.sms.spooling import SpoolingInbox, is_database_unavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

# Replies left queued (a gateway failure, a crash between queueing and sending) are looked
# for at start, then every SWEEP_EVERY_S, or RETRY_EVERY_S while some wait for a retry: the
# look scans the message table, which has no index for it.
SWEEP_EVERY_S = 300.0
RETRY_EVERY_S = 30.0
IDLE_POLL_S = 1.0
MAX_BACKOFF_S = 10.0
LOCK_RETRY_S = 5.0
STOP_GRACE_S = 5.0
SEND_BATCH = 500  # replies claimed and handed to the gateway at a time


class Drainer:
    def __init__(
        self,
        spool: Spool,
        inbox: Inbox,
        replies: ReplyOutbox,
        *,
        timeout_s: float,
        batch_size: int = 200,
        parallel: int = 16,
    ) -> None:
        self.spool = spool
        self.inbox = inbox
        self.replies = replies
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.parallel = parallel
        self.stored = 0  # since start, for the log and a metrics exporter
        self.replies_sent = 0
        self.retry_pending = False  # a reply failed for now and waits in the table
        self._to_send: list[int] = []  # queued replies (message ids) for the sender
        #: called when a drain stored records: the database answers again
        self.on_database_back: Callable[[], None] | None = None
        self._queued = asyncio.Event()

    async def drain_once(self) -> int:
        """Store the next batch; returns how many records it handled (0: nothing waiting).

        Raises what the database raised if it is still (or again) unavailable; the records
        stored before that are committed first.
        """
        offset = await asyncio.to_thread(self.spool.committed)
        batch = await asyncio.to_thread(self.spool.read, offset, max_records=self.batch_size)
        if batch.bad:
            await asyncio.to_thread(self.spool.set_aside, batch.bad)
        stored, refused, outages = await self._store_by_sender(batch.entries)
        # the offset moves only past what is settled: from the first record an outage stopped
        # at, everything is read again next time (what was stored after it meets itself as a
        # duplicate, stored once)
        done = min((entry.start for entry, _ in outages), default=batch.end)
        for entry, exc in sorted(refused, key=lambda pair: pair[0].start):
            log.error(
                "spooled %s at offset %s refused; kept in spool.failed",
                entry.record.kind,
                entry.start,
                exc_info=exc,
            )
            await asyncio.to_thread(self.spool.set_failed, entry, f"{type(exc).__name__}: {exc}")
        handled = sum(1 for e in stored if e.start < done) + sum(1 for e, _ in refused if e.start < done)
        inbound = [
            (e.record.gateway, e.record.gateway_id or "")
            for e in sorted(stored, key=lambda e: e.start)
            if e.record.kind == "sms"
        ]
        outage = outages[0][1] if outages else None
        if inbound:
            async with asyncio.timeout(self.timeout_s):
                queued = await self.replies.queue(inbound)
            if queued:
                self._to_send += queued
                self._queued.set()
        if done > offset or (offset and not batch.entries and not batch.bad):
            await asyncio.to_thread(self.spool.commit, done)  # the latter: empty a drained file
        self.stored += handled
        self.spool.stats.drained += handled
        if outage is not None:
            raise outage
        if stored and self.on_database_back is not None:
            self.on_database_back()
        return handled + len(batch.bad)

    async def _store_by_sender(
        self, entries: list[Entry]
    ) -> tuple[list[Entry], list[tuple[Entry, Exception]], list[tuple[Entry, Exception]]]:
        """Store ``entries``: each sender's (or delivery report's message's) records in order,
        ``parallel`` of them at once. Returns (stored, refused as bugs, stopped by an outage:
        the first record of each sender that met one); after an outage no sender starts a
        record, since the database is away for all of them."""
        groups: dict[str, list[Entry]] = defaultdict(list)
        for entry in entries:
            record = entry.record
            groups[
                record.sender if record.kind == "sms" else f"status:{record.ref or record.gateway_id}"
            ].append(entry)
        stored: list[Entry] = []
        refused: list[tuple[Entry, Exception]] = []
        outages: list[tuple[Entry, Exception]] = []
        gate = asyncio.Semaphore(self.parallel)

        async def one_sender(mine: list[Entry]) -> None:
            async with gate:
                for entry in mine:
                    if outages:
                        outages.append((entry, outages[0][1]))
                        return
                    try:
                        async with asyncio.timeout(self.timeout_s):
                            await self._store(entry.record)
                    except Exception as exc:
                        if is_database_unavailable(exc):
                            outages.append((entry, exc))
                            return
                        refused.append((entry, exc))
                    else:
                        stored.append(entry)

        await asyncio.gather(*(one_sender(mine) for mine in groups.values()))
        return stored, refused, outages

    async def _store(self, record: SpoolRecord) -> None:
        if record.kind == "status":
            await self.inbox.status(record.to_report())
            return
        sms = record.to_sms()
        if (await self.inbox.handle(sms)).event == "duplicate":
            # stored before, by an attempt that never finished (an outage between the store
            # and the step, a webhook's timeout): finish it now; only one processing counts
            await self.inbox.resume(sms)

    async def send_queued(self) -> Sent:
        """Send the replies the drains queued so far (those the gateway refuses for now stay
        queued for the sweep)."""
        ids, self._to_send = self._to_send, []
        self._queued.clear()
        sent = Sent()
        for start in range(0, len(ids), SEND_BATCH):
            async with asyncio.timeout(self.timeout_s):
                part = await self.replies.send(ids[start : start + SEND_BATCH])
            self._count(part)
            sent = Sent(sent.sent + part.sent, sent.retry + part.retry, sent.failed + part.failed)
        return sent

    async def _sending(self, stop: asyncio.Event) -> None:
        """The sender: whatever the drains queue, sent as soon as the last batch is out."""
        while not stop.is_set():
            await _wait(stop, IDLE_POLL_S, self._queued)
            if not self._to_send:
                continue
            ids = list(self._to_send)
            try:
                await self.send_queued()
            except Exception as exc:
                # the rows stay queued (or in ``sending``, put back after STUCK_AFTER): tried
                # again after a pause (a reply sent meanwhile is not claimed twice), and the
                # sweep sends them if this process dies first
                self.retry_pending = True
                self._to_send = ids + self._to_send
                if is_database_unavailable(exc):
                    log.warning("queued replies wait for the database (%s: %s)", type(exc).__name__, exc)
                else:
                    log.exception("sending queued replies failed; the sweep tries again")
                await _wait(stop, MAX_BACKOFF_S)

    async def sweep(self) -> Sent:
        async with asyncio.timeout(self.timeout_s):
            sent = await self.replies.sweep()
        self.retry_pending = False
        self._count(sent)
        return sent

    def _count(self, sent: Sent) -> None:
        self.replies_sent += sent.sent
        self.retry_pending = self.retry_pending or sent.retry > 0

    async def run(self, stop: asyncio.Event) -> None:
        """Drain whenever there is something to drain, and send the replies it queues, until
        ``stop`` is set."""
        sender = asyncio.create_task(self._sending(stop), name="spool-reply-sender")
        try:
            await self._draining(stop)
        finally:
            stop.set()
            await asyncio.gather(sender, return_exceptions=True)

    async def _draining(self, stop: asyncio.Event) -> None:
        delay, next_sweep, draining = 0.5, 0.0, False
        waiting_logged = -MAX_BACKOFF_S * 6
        while not stop.is_set():
            if not await asyncio.to_thread(self.spool.try_drain_lock):
                await _wait(stop, LOCK_RETRY_S)  # another process drains this spool
                continue
            try:
                handled = await self.drain_once()
                if time.monotonic() >= next_sweep:
                    await self.sweep()
                    next_sweep = time.monotonic() + (RETRY_EVERY_S if self.retry_pending else SWEEP_EVERY_S)
                elif self.retry_pending:
                    next_sweep = min(next_sweep, time.monotonic() + RETRY_EVERY_S)
            except Exception as exc:
                if not is_database_unavailable(exc):
                    log.exception("the spool drainer failed; trying again in %.1fs", delay)
                elif time.monotonic() - waiting_logged >= MAX_BACKOFF_S * 6:
                    log.warning("spool drain waits for the database (%s: %s)", type(exc).__name__, exc)
                    waiting_logged = time.monotonic()
                await _wait(stop, delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            delay = 0.5
            if handled:
                if not draining:
                    log.warning("the database answers: draining the spool %s", self.spool.path)
                    draining = True
                continue
            if draining:
                log.warning(
                    "spool drained: %s records stored, %s replies sent by REST since start",
                    self.stored,
                    self.replies_sent,
                )
                draining = False
            self.spool.appended.clear()
            await _wait(stop, IDLE_POLL_S, self.spool.appended)


async def _wait(stop: asyncio.Event, seconds: float, also: asyncio.Event | None = None) -> None:
    """Sleep ``seconds``, or less if ``stop`` (or ``also``) is set."""
    await wait_any(stop, also, seconds=seconds)


@asynccontextmanager
async def spooled_webhooks(
    settings: Settings,
    inbox: Inbox,
    *,
    engine: AsyncEngine,
    redis: Redis,
    gateway: Gateway | None = None,
) -> AsyncIterator[SpoolingInbox]:
    """The webhooks' inbox with its spool, and the drainer running beside it.

    The serve process starts even while the database is down: webhooks then spool from the
    first request.
    """
    try:
        await inbox.store.warm()
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.warning("database unavailable at start (%s); webhooks spool until it answers", exc)
    spool = Spool(settings.spool_dir, max_bytes=settings.sms_spool_max_bytes)
    await asyncio.to_thread(spool.open)
    gateway = gateway or make_gateway(settings, redis)
    drain_timeout = max(15.0, settings.sms_webhook_db_timeout_s * 3)
    webhooks = SpoolingInbox(
        inbox,
        spool,
        timeout_s=settings.sms_webhook_db_timeout_s,
        max_in_flight=settings.sms_webhook_max_in_flight,
    )
    drainer = Drainer(spool, inbox, ReplyOutbox(engine, gateway), timeout_s=drain_timeout)
    drainer.on_database_back = webhooks.database_back
    stop = asyncio.Event()
    task = asyncio.create_task(drainer.run(stop), name="spool-drainer")
    try:
        yield webhooks
    finally:
        stop.set()
        try:  # a drain step cut short is safe: its batch is replayed (deduplicated) next time
            await asyncio.wait_for(task, STOP_GRACE_S)
        except TimeoutError:
            log.warning("the spool drainer was stopped mid-batch; it is replayed at the next start")
        finally:
            with contextlib.suppress(Exception):
                await gateway.aclose()
            await asyncio.to_thread(spool.close)
