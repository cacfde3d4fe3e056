"""The outbound dialer: calls the citizens of running voice campaigns through AMI Originate,
at most ``voice_channels`` calls in progress and ``voice_cps`` new calls a second.

Usage (the telephony process)::

    ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret)
    dialer = Dialer(settings, engine, redis, ami)
    await dialer.run(stop)          # until ``stop`` is set; AmiLoginError if the login is refused

Each call is an ``Originate`` (Async) of ``voice_dial_template`` into ``[outbound-campaign]``
carrying ``CC_CAMPAIGN_ID`` / ``CC_DELIVERY_ID`` / ``CC_CITIZEN_PHONE``; the answered call runs
the FastAGI ``outbound`` script. The ``OriginateResponse`` (and the AMD UserEvent) become the
delivery's outcome (:mod:`.outcomes`); the call holds its channel until its Hangup.

* Pacing: the channel limit is counted here (one dialer per trunk); the start rate is a Redis
  token bucket, so several dialers on one trunk share it.
* Pause / resume / cancel: the campaign status (mirrored in Redis) is read before every
  Originate; claimed rows not yet dialled go back to the outbox. Quiet hours: a campaign in
  its quiet hours is not dialled, and a retry never falls inside them.
* The AMI connection may drop: calls whose events could be missed are re-synchronised after
  the re-login (:class:`~.dial_calls.CallBook`); a delivery whose Originate may have gone out
  is never dialled again until it is settled.
* Crash: rows of a dead dialer stay ``sending`` without heartbeat; the next dialer settles them.
* PostgreSQL or Redis away (a restart, a failover): the dialer waits with back-off, logging the
  outage once, and dials again when they answer; outcomes of calls already placed wait in
  order for the database instead of being dropped. It never exits for an outage.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.aio import wait_any
from callcenter.campaigns.quiet import parse_hhmm, quiet_until
from callcenter.campaigns.ratelimit import TokenBucket
from callcenter.campaigns.service import cached_status, move
from callcenter.outages import Backoff, OutageLog, unavailable
from callcenter.settings import Settings
from callcenter.telephony import names
from callcenter.telephony.ami import AmiActionError, AmiClient, AmiError, AmiLoginError, AmiMessage
from callcenter.voice import dial_store
from callcenter.voice.dial_calls import Call, CallBook, Effect, Record, Release
from callcenter.voice.dial_store import CampaignInfo, Claimed
from callcenter.voice.outcomes import Outcome, decide

log = logging.getLogger(__name__)

EVENTS = ("OriginateResponse", "Hangup", "VarSet", "UserEvent")
Write = Callable[[], Awaitable[None]]


@dataclass
class DialerStats:
    originated: int = 0  # Originates accepted (or whose response was lost)
    refused: int = 0  # Response: Error
    unconfirmed: int = 0  # the connection dropped before the response
    settled_lost: int = 0  # lost calls settled after a resync
    resyncs: int = 0
    max_in_progress: int = 0
    skipped_busy: int = 0  # claimed while the citizen was on another of our calls


class Dialer:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        redis: Redis,
        ami: AmiClient,
        *,
        trunk: str = "trunk",
        lost_grace_s: float = 2.0,
        heartbeat_s: float = 20.0,
        stale_after_s: float | None = None,
        switch_every_s: float | None = 60.0,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.redis = redis
        self.ami = ami
        self.channels = settings.voice_channels
        self.book = CallBook()
        self.stats = DialerStats()
        self.bucket = TokenBucket(
            redis, f"voice:{trunk}", rate=settings.voice_cps, burst=max(1, math.ceil(settings.voice_cps / 10))
        )
        self.lost_grace_s = lost_grace_s
        self.heartbeat_s = heartbeat_s
        # a dead dialer's rows: three missed heartbeats, and never while a call could still ring
        self.stale_after_s = stale_after_s or max(3 * heartbeat_s, settings.originate_timeout_s + 30)
        self.switch_every_s = switch_every_s
        self.batch = max(1, math.ceil(settings.voice_cps))  # about a second of calls
        self._queue: deque[Claimed] = deque()
        self._campaigns: dict[int, CampaignInfo] = {}
        self._turn = 0
        self._freed = asyncio.Event()
        self._resync_now = asyncio.Event()
        self._writes: asyncio.Queue[Write] = asyncio.Queue()
        self._active = False
        self._outage = OutageLog(log, "dialer")
        self._chores_outage = OutageLog(log, "dialer housekeeping")
        self._writes_outage = OutageLog(log, "dialer writing outcomes")
        ami.on_disconnect(self._on_disconnect)
        ami.on_reconnect(self._on_reconnect)

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Dial until ``stop`` is set, then let the calls still ringing end (at most the
        Originate timeout plus a margin) and write what they did."""
        for name in EVENTS:
            self.ami.on(name, self._on_event)
        self._active = True
        writer = asyncio.create_task(self._writer(), name="dialer-writer")
        try:
            if self.ami.state in ("disconnected", "failed"):
                await self.ami.connect()
            await self._prepare(stop)
            pump = asyncio.create_task(self._pump(stop), name="dialer-pump")
            chores = asyncio.create_task(self._housekeeping(), name="dialer-housekeeping")
            try:
                stopper = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({pump, chores, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                for task in done - {stopper}:
                    task.result()  # a failure (login refused on reconnect) ends the run
                await pump
                await self._drain()
            finally:
                for task in (pump, chores):
                    task.cancel()
                await asyncio.gather(pump, chores, return_exceptions=True)
                await self._release_queue()
        finally:
            self._active = False
            for name in EVENTS:
                self.ami.off(name, self._on_event)
            try:  # the database may be away: the rows of unwritten outcomes stay ``sending``
                await asyncio.wait_for(self._writes.join(), self.settings.originate_timeout_s + 30)
            except TimeoutError:
                log.warning(
                    "dialer stopping with %d outcomes unwritten; the next dialer settles their rows",
                    self._writes.qsize(),
                )
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _prepare(self, stop: asyncio.Event) -> None:
        """The running campaigns known and a dead dialer's rows settled before the first call;
        while the database is away, wait for it (with back-off) rather than end the process."""
        backoff = Backoff(first_s=0.5, max_s=10.0)
        while not stop.is_set():
            try:
                await self._refresh_campaigns()
                await self._recover_stale()
            except Exception as exc:
                if not unavailable(exc):
                    raise
                delay = backoff.next()
                self._outage.failed(exc, delay)
                await wait_any(stop, seconds=delay)
                continue
            self._outage.recovered()
            return

    async def _pump(self, stop: asyncio.Event) -> None:
        backoff = Backoff(first_s=0.5, max_s=5.0)
        while not stop.is_set():
            try:
                await self._pump_once(stop)
                if backoff.tries:
                    backoff.reset()
                    self._outage.recovered()
            except AmiLoginError:
                raise
            except Exception as exc:
                if unavailable(exc):  # back off while the outage lasts; one line in the log
                    delay = backoff.next()
                    self._outage.failed(exc, delay)
                    await wait_any(stop, seconds=delay)
                    continue
                log.exception("dialer: dialling step failed; going on in a second")
                await wait_any(stop, seconds=1.0)

    async def _pump_once(self, stop: asyncio.Event) -> None:
        if not self.ami.connected:
            if self.ami.state == "failed":
                raise self.ami.failure or AmiLoginError("AMI client failed")
            await wait_any(stop, seconds=0.1)
            return
        if self.book.in_progress >= self.channels:
            self._freed.clear()
            await wait_any(self._freed, stop, seconds=0.5)
            return
        item = await self._next()
        if item is None:
            await wait_any(stop, seconds=0.2)
            return
        try:
            while True:  # a token of the trunk's start rate, watching pause / cancel meanwhile
                if stop.is_set():
                    self._queue.appendleft(item)
                    return
                if not await self._may_dial(item.campaign_id):
                    await self._release_campaign(item.campaign_id, item)
                    return
                if await self.bucket.take(1, max_wait=0.1):
                    break
        except Exception:  # Redis or PostgreSQL away: the claimed row waits for the next try
            self._queue.appendleft(item)
            raise
        if not self.ami.connected or self.book.in_progress >= self.channels:
            self._queue.appendleft(item)
            return
        await self._dial(item)

    async def _next(self) -> Claimed | None:
        """The next claimed delivery; claims a batch (round robin over the campaigns)."""
        if self._queue:
            return self._queue.popleft()
        ids = list(self._campaigns)
        for i in range(len(ids)):
            campaign_id = ids[(self._turn + i) % len(ids)]
            info = self._campaigns.get(campaign_id)
            if info is None or not await self._may_dial(campaign_id):
                continue
            room = max(1, min(self.batch, self.channels - self.book.in_progress))
            rows = await dial_store.claim(self.engine, info, room)
            busy = [r for r in rows if self.book.busy(r.phone)]
            if busy:  # on another of our calls: try again once that one is surely over
                self.stats.skipped_busy += len(busy)
                later = datetime.now(UTC) + timedelta(seconds=self.settings.originate_timeout_s)
                await dial_store.release(self.engine, [r.delivery_id for r in busy], not_before=later)
            self._queue.extend(r for r in rows if not self.book.busy(r.phone))
            if self._queue:
                self._turn = (self._turn + i + 1) % len(ids)
                return self._queue.popleft()
        return None

    async def _may_dial(self, campaign_id: int) -> bool:
        info = self._campaigns.get(campaign_id)
        if info is None:
            return False
        if await cached_status(self.engine, self.redis, campaign_id) != "running":
            return False
        return quiet_until(datetime.now(UTC), *info.quiet, timezone=self.settings.timezone) is None

    async def _dial(self, item: Claimed) -> None:
        info = self._campaigns.get(item.campaign_id)
        if info is None:  # stopped running while we waited for the token
            await self._release_campaign(item.campaign_id, item)
            return
        attempt = item.attempts + 1
        call = Call(
            delivery_id=item.delivery_id,
            citizen_id=item.citizen_id,
            phone=item.phone,
            dial=self.settings.voice_dial_template.format(number=item.phone),
            action_id=f"cc-d{item.delivery_id}-a{attempt}-{secrets.token_hex(3)}",
            attempt=attempt,
            campaign=info,
            started=time.monotonic(),
            dialled_at=datetime.now(UTC),
        )
        self.book.add(call)  # before the Originate: its events may beat its response
        self.stats.max_in_progress = max(self.stats.max_in_progress, self.book.in_progress)
        variables = {
            names.VAR_CAMPAIGN: str(item.campaign_id),
            names.VAR_DELIVERY: str(item.delivery_id),
            names.VAR_CITIZEN: item.phone,
            "AMD_ENABLED": "1" if self.settings.amd_enabled else "0",
        }
        try:
            await self.ami.originate(
                channel=call.dial,
                context=names.CTX_OUTBOUND,
                exten="s",
                priority=1,
                variables=variables,
                caller_id=self.settings.voice_caller_id,
                timeout_ms=int(self.settings.originate_timeout_s * 1000),
                action_id=call.action_id,
            )
        except AmiActionError as exc:
            self.stats.refused += 1
            log.warning("Originate for delivery %s refused: %s", item.delivery_id, exc.message)
            self._apply(self.book.refused(call, str(exc.response.get("Message") or exc.message)))
        except AmiError as exc:  # connection lost or timed out: the call may be out there
            self.stats.originated += 1
            self.stats.unconfirmed += 1
            log.warning("Originate for delivery %s unconfirmed (%s); resync decides", item.delivery_id, exc)
            self.book.unconfirmed(call)
        else:
            self.stats.originated += 1
            if self.book.accepted(call):
                self._write(
                    partial(
                        dial_store.mark_dialled,
                        self.engine,
                        delivery_id=call.delivery_id,
                        attempt=attempt,
                        action_id=call.action_id,
                        at=call.dialled_at,
                    )
                )

    # -- events -------------------------------------------------------------------------------

    def _on_event(self, msg: AmiMessage) -> None:
        self._apply(self.book.on_event(msg))

    def _on_disconnect(self, _client: AmiClient) -> None:
        if self._active:
            self.book.disconnected()

    def _on_reconnect(self, _client: AmiClient) -> None:
        if self._active:
            self._resync_now.set()

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Record):
                self._write(partial(self._record, effect))
            elif isinstance(effect, Release):
                self._freed.set()

    async def _record(self, effect: Record) -> None:
        call = effect.call
        decision = decide(
            effect.outcome,
            attempt=call.attempt,
            max_attempts=call.campaign.max_attempts,
            now=datetime.now(UTC),
            retry_after_s=self.settings.voice_retry_after_s,
            quiet=call.campaign.quiet,
            timezone=self.settings.timezone,
        )
        await dial_store.write_result(
            self.engine,
            dial_store.Result(
                delivery_id=call.delivery_id,
                campaign_id=call.campaign.id,
                citizen_id=call.citizen_id,
                attempt=call.attempt,
                decision=decision,
                action_id=call.action_id,
                dialled_at=call.dialled_at,
                contact=effect.contact,
                error=effect.error,
                channel=call.dial,
                phone=call.phone,
                hangup_cause=call.cause,
                # the IVR writes the record of an answered call; the others only we saw
                cdr=effect.contact and effect.outcome is not Outcome.ANSWERED,
            ),
        )

    # -- writes (in order, retried a few times) -----------------------------------------------

    def _write(self, job: Write) -> None:
        self._writes.put_nowait(job)

    async def _writer(self) -> None:
        """Writes in order; one that meets a database outage waits for it (with back-off, for
        as long as it lasts: the outcome of a placed call must not be dropped, or its citizen
        would be dialled again), one that fails otherwise is tried six times."""
        while True:
            job = await self._writes.get()
            try:
                failures = 0
                backoff = Backoff(first_s=0.2, max_s=5.0)
                while True:
                    try:
                        await job()
                        self._writes_outage.recovered()
                        break
                    except Exception as exc:
                        if unavailable(exc):
                            delay = backoff.next()
                            self._writes_outage.failed(exc, delay)
                            await asyncio.sleep(delay)
                            continue
                        failures += 1
                        if failures == 6:
                            log.exception("dialer: a write failed for good")
                            break
                        await asyncio.sleep(0.2 * 2 ** (failures - 1))
            finally:
                self._writes.task_done()

    # -- housekeeping -------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Twice a second: campaigns, pause/cancel of claimed rows, finished campaigns;
        now and then: resync, heartbeat, rows of dead dialers, the mode switch."""
        last: dict[str, float] = {}

        def due(name: str, every: float) -> bool:
            now = time.monotonic()
            if now - last.get(name, 0.0) >= every:
                last[name] = now
                return True
            return False

        backoff = Backoff(first_s=1.0, max_s=10.0)
        while True:
            try:
                await wait_any(self._resync_now, seconds=0.5)
                if self._resync_now.is_set() or (self.book.needs_resync and due("resync", 2.0)):
                    self._resync_now.clear()
                    await self._resync()
                if due("overdue", 5.0):
                    self.book.mark_overdue(
                        time.monotonic(), ring_s=self.settings.originate_timeout_s + 15, talk_s=120.0
                    )
                await self._refresh_campaigns()
                for campaign_id in {item.campaign_id for item in self._queue}:
                    if not await self._may_dial(campaign_id):
                        await self._release_campaign(campaign_id)
                if due("finish", 1.0):
                    await self._finish_campaigns()
                if due("heartbeat", self.heartbeat_s):
                    ids = [*self.book.calls, *(item.delivery_id for item in self._queue)]
                    await dial_store.heartbeat(self.engine, ids)
                if due("stale", self.stale_after_s / 2):
                    await self._recover_stale()
                if self.switch_every_s is not None and due("switch", self.switch_every_s):
                    await self._plan_switches()
                if backoff.tries:
                    backoff.reset()
                    self._chores_outage.recovered()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if unavailable(exc):
                    delay = backoff.next()
                    self._chores_outage.failed(exc, delay)
                    await asyncio.sleep(delay)
                    continue
                log.exception("dialer housekeeping failed; going on")
                await asyncio.sleep(1.0)

    async def _refresh_campaigns(self) -> None:
        self._campaigns = await dial_store.running_campaigns(self.engine, self.settings)

    async def _resync(self) -> None:
        """Compare the calls in progress with Asterisk's channels (after a reconnect, or when
        a call went silent for too long)."""
        if not self.ami.connected:
            return
        listing = await self.ami.send_list({"Action": "CoreShowChannels"}, reply_timeout=15.0)
        self.stats.resyncs += 1
        channels = [m for m in listing if m.event == "CoreShowChannel"]
        effects, gone = self.book.resync(
            channels,
            time.monotonic(),
            grace_s=self.lost_grace_s,
            ring_s=self.settings.originate_timeout_s + 5,
        )
        self._apply(effects)
        if gone:
            evidence = await dial_store.answered_evidence(
                self.engine,
                [(c.delivery_id, c.citizen_id, c.campaign.inquiry_id, c.dialled_at) for c in gone],
            )
            for call in gone:
                self.stats.settled_lost += 1
                self._apply(self.book.settle(call, answered=call.delivery_id in evidence))
        if effects or gone:
            log.info("dialer resync: %d effects, %d lost calls settled", len(effects), len(gone))

    async def _release_campaign(self, campaign_id: int, *first: Claimed) -> None:
        """Paused, cancelled or quiet: its claimed rows go back (no attempt counted)."""
        mine = [*first, *(item for item in self._queue if item.campaign_id == campaign_id)]
        self._queue = deque(item for item in self._queue if item.campaign_id != campaign_id)
        await dial_store.release(self.engine, [item.delivery_id for item in mine])

    async def _release_queue(self) -> None:
        items, self._queue = list(self._queue), deque()
        await asyncio.shield(dial_store.release(self.engine, [item.delivery_id for item in items]))

    async def _finish_campaigns(self) -> None:
        busy = {call.campaign.id for call in self.book.calls.values()}
        busy |= {item.campaign_id for item in self._queue}
        for campaign_id in list(self._campaigns):
            if campaign_id in busy or await dial_store.open_count(self.engine, campaign_id):
                continue
            await self._writes.join()  # the last outcomes are in before it is called done
            try:
                await move(self.engine, self.redis, campaign_id, "done", actor="dialer")
            except Exception:  # paused or cancelled meanwhile, or another dialer was first
                log.debug("campaign %s not moved to done", campaign_id)
            self._campaigns.pop(campaign_id, None)

    async def _recover_stale(self) -> None:
        """Rows a dead dialer left ``sending``: never dialled (no ActionID written) go back;
        dialled ones are settled as a try whose outcome nobody saw (retried later)."""
        older = datetime.now(UTC) - timedelta(seconds=self.stale_after_s)
        for row in await dial_store.stale_rows(self.engine, older, self.book.calls):
            if row.gateway_id is None:
                await dial_store.release(self.engine, [int(row.id)])
                continue
            quiet = (
                parse_hhmm(row.quiet_start) or self.settings.quiet_start,
                parse_hhmm(row.quiet_end) or self.settings.quiet_end,
            )
            decision = decide(
                Outcome.NO_ANSWER,
                attempt=int(row.attempts),
                max_attempts=int(row.max_attempts),
                now=datetime.now(UTC),
                retry_after_s=self.settings.voice_retry_after_s,
                quiet=quiet,
                timezone=self.settings.timezone,
            )
            claimed = row.claimed_at if row.claimed_at.tzinfo else row.claimed_at.replace(tzinfo=UTC)
            await dial_store.write_result(
                self.engine,
                dial_store.Result(
                    delivery_id=int(row.id),
                    campaign_id=int(row.campaign_id),
                    citizen_id=int(row.citizen_id),
                    attempt=int(row.attempts),
                    decision=decision,
                    action_id=str(row.gateway_id),
                    dialled_at=claimed,
                    contact=True,
                    error="outcome missed: the dialer stopped",
                ),
            )

    async def _plan_switches(self) -> None:
        from callcenter.voice.switch import plan_switches

        await plan_switches(self.engine, datetime.now(UTC), redis=self.redis)

    async def _drain(self) -> None:
        """Stopping: no new calls; wait for those still ringing to end (or give up on them:
        their rows stay ``sending`` and the next dialer settles them). Answered calls are
        written already and need no wait."""
        deadline = time.monotonic() + self.settings.originate_timeout_s + 10

        def ringing() -> int:
            return sum(not call.answered for call in self.book.calls.values())

        while ringing() and time.monotonic() < deadline:
            self._freed.clear()
            await wait_any(self._freed, seconds=0.2)
        if ringing():
            log.warning("dialer stopping with %d calls still ringing", ringing())
