"""Keys 2 and 0 of the 1415 menu: the caller waits in a queue, hears their place and wait, may
book a callback that keeps their place, and is put through to an agent's phone; afterwards the
caller may rate the call.

Usage::

    to_agent = ToAgent(settings, engine, acd, prompts)
    handoff = await to_agent.run(call, progress, queue="general", kind="callback", path=("0",))
    if handoff is Handoff.NOT_QUEUED:
        ...  # no such queue, or nobody staffed where the queue falls back: store a ticket

**Holding.** AGI cannot be interrupted from outside, so hold music is played in short pieces
(``hold-music``, 2 s, with ``STREAM FILE``; once a callback is offered ``1`` ends a piece, and
every other key is ignored) and between two pieces the session runs a routing round (any
process may: the store locks) and reads its entry's outcome and announcement. An offer is thus
acted on within one piece; the telephony process also runs a round every second.

**Ringing.** An offer is rung with ``EXEC Dial PJSIP/<endpoint>,<ring timeout>,
U(agent-answered^<entry>^<agent>)``. Why a gosub marks the agent on call, rather than
``DIALSTATUS=ANSWER`` when Dial returns: Dial returns when the conversation is over, so the
desk and the wallboard would show the agent "ringing" for the whole call. ``U()`` runs
``[agent-answered]`` on the agent's channel the moment the agent answers, and its FastAGI
script ``agent_answered`` moves the agent on call. When Dial returns ANSWER and the gosub did
not (a dialplan without the context, the engine out of reach for that AGI, the simulator), the
agent is marked on call then, so no call is lost from the event log. No answer, busy or an
unreachable phone: the agent goes to ``missed`` and the caller back to the same place, and the
next round offers the next agent. A caller who hangs up at any point leaves the queue in a
``finally`` (a reserved or ringing agent is freed at once); one who hangs up while talking
ends the call (the agent goes to wrap-up).

**Transferred.** An agent who transfers a caller from the desk has the caller's channel
redirected into ``[agent-transfer]`` (see ``desk.call_control``): this session hears
``HANGUP`` (the conversation is over for it: the agent is in wrap-up), and the ``transfer``
script's new session (:meth:`ToAgent.transferred`) holds the caller in the other queue.

**Recording.** With ``CALLCENTER_RECORD_CALLS`` the caller's channel gets ``MixMonitor
<dir>/<entry>.wav,b`` once, just before the first agent is rung (``b``: only while bridged,
so a second agent after a missed ring is in the same file and the hold music never is); the
file's name goes on a ``call.recording`` event. A transferred caller's recording goes on (the
monitor stays on the channel): the new entry's event names the same file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Final

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.desk.acd import Acd
from callcenter.desk.call_control import PendingTransfer
from callcenter.desk.recordings import RECORDING_EVENT, asterisk_file, recording_name, recording_of
from callcenter.errors import NotFound
from callcenter.inquiry.definition import Language
from callcenter.routing.config import QueueSettings
from callcenter.routing.estimate import expected_wait, minutes_to_announce
from callcenter.routing.model import (
    STAFFED,
    AgentState,
    AgentTransitionError,
    Entry,
    RoutingConfigError,
    skill_level,
)
from callcenter.routing.store import AgentRecord, Caller, LockLost, Outcome, RoutingBusy, entry_of
from callcenter.settings import Settings
from callcenter.sms.notices import notice_text, send_notice
from callcenter.telephony import names
from callcenter.telephony.agi import (
    AgiChannel,
    AgiCommandFailed,
    AgiConnectionLost,
    AgiDeadChannel,
    AgiError,
    AgiHangup,
)
from callcenter.voice.callbacks import Booked, Place, book_callback, set_callback_status
from callcenter.voice.ivr_inquiry import Progress
from callcenter.voice.ivr_prompts import Prompts, listen, reference_ids
from callcenter.voice.ivr_store import phone_of
from callcenter.voice.queue_prompts import announcement_ids

log = logging.getLogger(__name__)

HOLD_PROMPT: Final = "hold-music"
CALLBACK_KEY: Final = "1"
KEY_TIMEOUT_MS: Final = 6000
OFFER_ATTEMPTS: Final = 2  # "press 1 to be called back" after an overflow, then a message
RATING_ATTEMPTS: Final = 2
#: a hold loop runs a routing round only if this process ran none for so long (the process's
#: own rounds run every second; many callers between pieces need not run one each)
ROUND_EVERY_S: Final = 0.2
#: rounds in a row that may find the entry gone (put back each time) before a ticket is stored
LOST_LIMIT: Final = 3
#: routing failures that send the caller to a callback ticket rather than to silence
_ROUTING_DOWN: Final = (RedisError, RoutingBusy, LockLost)
_RINGING: Final = frozenset({AgentState.RESERVED, AgentState.RINGING})


class Handoff(StrEnum):
    NOT_QUEUED = "not_queued"  # no queue (or unstaffed and configured so, or routing down): a ticket
    CONNECTED = "connected"  # talked to an agent
    CALLBACK = "callback"  # booked a callback keeping the place
    ENDED = "ended"  # heard a message (queue full or wait too long without a callback)


def queue_for_key(settings: Settings, key: str) -> str | None:
    """The queue a menu key puts callers in (``CALLCENTER_QUEUE_FOR_KEY_0`` / ``_2``)."""
    return {"0": settings.queue_for_key_0, "2": settings.queue_for_key_2}.get(key) or None


def dial_args(endpoint: str, ring_timeout_s: float, entry: str, agent: str) -> str:
    """``Dial`` arguments: the agent's phone, the ring timeout, the gosub run when answered."""
    target = endpoint if "/" in endpoint else f"PJSIP/{endpoint}"
    seconds = max(1, math.ceil(ring_timeout_s))
    return f"{target},{seconds},U({names.CTX_AGENT_ANSWERED}^{entry}^{agent})"


def staffed_for(records: Iterable[AgentRecord], queue: QueueSettings) -> int:
    """Agents logged in and serving ``queue`` (what a wait estimate counts on)."""
    return sum(
        1
        for r in records
        if r.agent.state in STAFFED and skill_level(r.agent.skills, queue.queue) is not None
    )


@dataclass(slots=True)
class _Wait:
    """One caller's wait, as this session knows it."""

    place: Place
    queue: QueueSettings
    kind: str  # the ticket kind a booked callback carries (service | callback)
    callable: bool  # a number to call back
    offered: bool = False  # heard "press 1 to be called back": '1' books it from now on
    unstaffed: bool = False  # nobody serves the queue (at the last announcement)
    next_announce: float = 0.0
    agent: str | None = None  # being rung or talked to
    done: bool = False  # nothing of this entry is left in the routing state for us to end
    refused: tuple[str, str] | None = None  # full on arrival: (overflow outcome, reason)
    lost: int = 0  # rounds in a row that found the entry neither waiting nor offered
    recording: str | None = None  # the file the caller's channel is recorded to

    @property
    def id(self) -> str:
        return self.place.entry.id


class ToAgent:
    """The waiting caller and the ringing agent, over one :class:`Acd`."""

    def __init__(self, settings: Settings, engine: AsyncEngine, acd: Acd, prompts: Prompts) -> None:
        self.settings = settings
        self.engine = engine
        self.acd = acd
        self.prompts = prompts
        self._last_round = -ROUND_EVERY_S

    # -- the scripts ----------------------------------------------------------------------------

    async def run(
        self, call: AgiChannel, progress: Progress, *, queue: str, kind: str, path: tuple[str, ...]
    ) -> Handoff:
        """Queue the caller and hold them until an agent answers, a callback is booked or the
        queue sends them away. ``NOT_QUEUED`` (nothing played) when they cannot be queued."""
        wait = await self._enqueue(call, progress, queue=queue, kind=kind, path=path)
        if isinstance(wait, Handoff):
            return wait
        return await self._serve(call, progress, wait)

    async def transferred(self, call: AgiChannel, progress: Progress, pending: PendingTransfer) -> Handoff:
        """FastAGI ``transfer,<id>``: the caller an agent transferred, in the other queue at the
        place the desk kept (``pending.enqueued_at``), under a new entry (the old one ended
        with the first agent). ``NOT_QUEUED`` when that queue cannot take them (a ticket)."""
        kind = "service" if pending.queue == self.settings.queue_for_key_2 else "callback"
        recording = await recording_of(self.engine, pending.entry) if self.settings.record_calls else None
        wait = await self._enqueue(
            call, progress, queue=pending.queue, kind=kind, path=pending.caller.path,
            entry_id=pending.id, enqueued_at=pending.enqueued_at,
        )  # fmt: skip
        if isinstance(wait, Handoff):
            return wait

        async def first() -> None:
            if recording is not None:  # the monitor on the channel goes on recording
                wait.recording = recording
                await self._recording_event(progress, wait)
            await self._play(call, progress.language, "transfer-intro")

        return await self._serve(call, progress, wait, first=first)

    async def _serve(
        self,
        call: AgiChannel,
        progress: Progress,
        wait: _Wait,
        *,
        first: Callable[[], Awaitable[None]] | None = None,
    ) -> Handoff:
        """Hold the queued caller (after ``first``) until they are put through, book a
        callback or are sent away; nothing of the entry is left behind however it ends."""
        reason = "failed"
        try:
            if first is not None:
                await first()
            handoff = await self._hold(call, progress, wait)
            reason = "ended"
            return handoff
        except AgiConnectionLost:  # Asterisk or the link failed: not an abandonment
            raise
        except (AgiHangup, AgiDeadChannel):
            reason = "abandoned"
            raise
        except _ROUTING_DOWN:  # Redis gone mid-wait: the request is kept as a ticket instead
            log.exception("routing failed while %s waited", wait.id)
            return Handoff.CONNECTED if progress.connected else Handoff.NOT_QUEUED
        finally:
            await self._end(call, progress, wait, reason)

    async def agent_answered(self, call: AgiChannel) -> None:
        """FastAGI ``agent_answered,<entry>,<agent>``: on the agent's channel, as they answer."""
        args = call.env.arguments
        if len(args) < 2:
            log.warning("agent_answered without entry and agent on %s", call.name)
            return
        entry, agent = args[0], args[1]
        try:
            await self.acd.connected(entry, agent)
        except AgentTransitionError as exc:  # the offer was withdrawn just before the answer
            log.info("agent %s answered entry %s too late: %s", agent, entry, exc)

    # -- arriving -------------------------------------------------------------------------------

    async def _enqueue(
        self,
        call: AgiChannel,
        progress: Progress,
        *,
        queue: str,
        kind: str,
        path: tuple[str, ...],
        entry_id: str | None = None,
        enqueued_at: float | None = None,
    ) -> _Wait | Handoff:
        try:
            snap = await self.acd.store.snapshot()
            settings = snap.queue(queue)
        except NotFound:
            log.info("no queue %r: the caller gets a callback ticket", queue)
            return Handoff.NOT_QUEUED
        except _ROUTING_DOWN as exc:
            log.warning("routing unavailable (%s): the caller gets a callback ticket", exc)
            return Handoff.NOT_QUEUED
        staffed = staffed_for(snap.agents.values(), settings)
        if not staffed and queue in self.settings.queue_ticket_when_unstaffed:
            return Handoff.NOT_QUEUED
        phone = phone_of(call.env.callerid, self.settings.default_region) or ""
        at = snap.now if enqueued_at is None else min(enqueued_at, snap.now)
        entry = Entry(entry_id or uuid.uuid4().hex, queue, at, priority=settings.priority)
        caller = Caller(phone, progress.citizen_id, progress.language, path, progress.call_id, call.name)
        try:
            enqueued = await self.acd.enqueue(entry, caller)
        except _ROUTING_DOWN as exc:
            log.warning("routing unavailable (%s): the caller gets a callback ticket", exc)
            return Handoff.NOT_QUEUED
        place = Place(entry, caller, queued=enqueued.refused is None)
        wait = _Wait(place, settings, kind, callable=phone.startswith("+"), unstaffed=not staffed)
        if enqueued.refused is not None:
            wait.refused = (str(enqueued.refused.outcome), str(enqueued.refused.reason))
        return wait

    # -- holding --------------------------------------------------------------------------------

    async def _hold(self, call: AgiChannel, progress: Progress, wait: _Wait) -> Handoff:
        language = progress.language
        if wait.refused is not None:
            return await self._overflow(call, progress, wait, *wait.refused)
        await self._play(call, language, "please-hold")
        while True:
            routed, outcome = await self._outcome(wait)
            if outcome is not None and outcome.kind == "offer":
                handoff = await self._ring(call, progress, wait, outcome)
                if handoff is not None:
                    return handoff
                continue
            if outcome is not None:
                return await self._overflow(call, progress, wait, outcome.outcome or "", outcome.reason or "")
            found = await self.acd.store.announcement(wait.id)
            if found is None:
                if await self.acd.store.outcome(wait.id) is not None:
                    continue  # offered or overflowed since the round: act on it now
                if routed:  # a round ran, yet the entry is neither waiting nor offered
                    wait.lost += 1
                    if wait.lost > LOST_LIMIT:  # cannot be put back (its queue is gone)
                        log.error("entry %s cannot be queued again: a callback ticket instead", wait.id)
                        return Handoff.NOT_QUEUED
                    await self._back_in_line(wait, "lost from the routing state")
                    continue
                key = await self._piece(call, language, wait)
            else:
                wait.lost = 0
                key = await self._between_pieces(call, language, wait, *found) or await self._piece(
                    call, language, wait
                )
            if key == CALLBACK_KEY and wait.offered:
                handoff = await self._book(call, progress, wait)
                if handoff is not None:
                    return handoff

    async def _outcome(self, wait: _Wait) -> tuple[bool, Outcome | None]:
        """A round unless this process ran one a moment ago (a lock held by another process is
        no matter: it is running one), then our outcome; True if our own round ran."""
        routed = False
        now = time.monotonic()
        first = not wait.next_announce  # on arrival: a round of its own, for the first announcement
        if first or now - self._last_round >= ROUND_EVERY_S:
            self._last_round = now
            try:
                await self.acd.round()
                routed = True
            except (RoutingBusy, LockLost) as exc:
                log.debug("routing round skipped: %s", exc)
        return routed, await self.acd.store.outcome(wait.id)

    async def _between_pieces(
        self,
        call: AgiChannel,
        language: Language,
        wait: _Wait,
        position: int,
        wait_s: float | None,
        offer: bool,
    ) -> str | None:
        """The announcement when it is due, and the callback offer when it is first due; the
        key pressed during the offer, if any."""
        now = time.monotonic()
        if now >= wait.next_announce:
            wait.next_announce = now + self.settings.queue_announce_every_s
            if wait_s is None:
                wait_s = await self._estimate(wait, position)
            else:
                wait.unstaffed = False
            # logged, so each estimate can be held against the wait that followed it
            await self.acd.record(
                "entry.announced", entry=wait.id, queue=wait.queue.queue.id, live=False,
                data={"position": position, "expected_wait": wait_s,
                      "minutes": None if wait_s is None else minutes_to_announce(wait_s)},
            )  # fmt: skip
            await self._play(call, language, *announcement_ids(language, position=position, wait_s=wait_s))
        if wait.offered or not wait.callable or not (offer or wait.unstaffed):
            return None
        wait.offered = True
        await self.acd.store.callback_offered(wait.id)
        return await self._stream(call, language, "callback-keep-place", CALLBACK_KEY)

    async def _estimate(self, wait: _Wait, position: int) -> float | None:
        """No figure from the round: nobody serves the queue (say so), or the queue has no
        handling times yet (estimate with the default)."""
        snap = await self.acd.store.snapshot()
        staffed = staffed_for(snap.agents.values(), wait.queue)
        wait.unstaffed = not staffed
        if not staffed:
            return None
        return expected_wait(position=position, agents=staffed, aht=self.settings.queue_default_aht_s)

    async def _piece(self, call: AgiChannel, language: Language, wait: _Wait) -> str | None:
        return await self._stream(call, language, HOLD_PROMPT, CALLBACK_KEY if wait.offered else "")

    # -- ringing --------------------------------------------------------------------------------

    async def _ring(
        self, call: AgiChannel, progress: Progress, wait: _Wait, outcome: Outcome
    ) -> Handoff | None:
        """Ring the offered agent; ``None`` when the caller is back in line (no answer)."""
        agent = outcome.agent or ""
        wait.agent = agent
        try:
            after = (await self.acd.ringing(wait.id, agent)).after
        except NotFound:  # the agent was removed from the configuration meanwhile
            after = None
        if after is None or after.entry != wait.id or after.agent.state is not AgentState.RINGING:
            wait.agent = None
            await self._back_in_line(wait, f"offered to agent {agent}, withdrawn before ringing")
            return None
        if not outcome.endpoint:
            status = "NOENDPOINT"
        else:
            await self._record(call, progress, wait)
            args = dial_args(outcome.endpoint, wait.queue.ring_timeout_s, wait.id, agent)
            await call.exec("Dial", args)
            status = (await call.get_variable("DIALSTATUS") or "").upper()
        if status == "ANSWER":
            await self._talked(progress, wait, agent)
            await self._rate(call, progress, wait, agent)
            return Handoff.CONNECTED
        log.info("agent %s did not take %s (%s): the caller waits for the next", agent, wait.id, status)
        await self.acd.missed(wait.id, agent, reason=status or "UNKNOWN")
        wait.agent = None
        return None

    async def _record(self, call: AgiChannel, progress: Progress, wait: _Wait) -> None:
        """MixMonitor on the caller's channel, once per caller, when recording is on."""
        if not self.settings.record_calls or wait.recording is not None:
            return
        name = recording_name(wait.id)
        if await call.exec("MixMonitor", f"{asterisk_file(self.settings, name)},b") < 0:
            log.warning("MixMonitor failed on %s (is app_mixmonitor loaded?): not recorded", call.name)
            return
        wait.recording = name
        await self._recording_event(progress, wait)

    async def _recording_event(self, progress: Progress, wait: _Wait) -> None:
        await self.acd.record(
            RECORDING_EVENT, entry=wait.id, queue=wait.queue.queue.id,
            data={"file": wait.recording, "call": progress.call_id},
        )  # fmt: skip

    async def _back_in_line(self, wait: _Wait, why: str) -> None:
        """The entry is neither waiting nor offered (an offer withdrawn before the phone rang,
        the routing state restarted): in line again at the caller's original place."""
        log.warning("entry %s %s: back in line at its place", wait.id, why)
        await self.acd.store.forget(wait.id)
        with contextlib.suppress(RoutingConfigError):  # already back (another path put it there)
            await self.acd.enqueue(
                replace(wait.place.entry, callback_offered=wait.offered), wait.place.caller
            )

    async def _talked(self, progress: Progress, wait: _Wait, agent: str) -> None:
        """The agent answered (marked on call now if the gosub did not) and the call is over."""
        record = await self.acd.store.agent(agent)
        if record is not None and record.entry == wait.id and record.agent.state in _RINGING:
            with contextlib.suppress(AgentTransitionError):
                await self.acd.connected(wait.id, agent)
        progress.connected = True
        await self.acd.ended(wait.id, agent)
        wait.agent, wait.done = None, True

    async def _rate(self, call: AgiChannel, progress: Progress, wait: _Wait, agent: str) -> None:
        if not self.settings.call_rating:
            return
        language = progress.language
        for _ in range(RATING_ATTEMPTS):
            key = await listen(call, self.prompts.paths(language, "rate-call"), KEY_TIMEOUT_MS, 1)
            if key and key in "12345":
                await self.acd.record(
                    "call.rated", entry=wait.id, agent=agent, queue=wait.queue.queue.id,
                    data={"rating": int(key), "call": progress.call_id},
                )  # fmt: skip
                await self._play(call, language, "thanks-rating")
                return
            if not key:
                return

    # -- a callback's turn ----------------------------------------------------------------------

    async def called_back(
        self, call: AgiChannel, progress: Progress, *, entry_id: str, agent: str, callback_id: int
    ) -> Handoff:
        """FastAGI ``callback``: the citizen answered the call the callback dialer placed; the
        agent reserved for it (who has seen the card since) is rung now. An agent who does not
        answer puts the callback back at its place, to be dialled again shortly."""
        language = progress.language
        record = await self.acd.store.agent(agent)
        outcome = await self.acd.store.outcome(entry_id)
        held = record is not None and record.entry == entry_id and record.agent.state in _RINGING
        if not held or outcome is None or outcome.kind != "offer" or record is None:
            log.warning("callback %s answered but agent %s no longer holds it", callback_id, agent)
            await set_callback_status(self.engine, callback_id, "pending")
            await self._play(call, language, "callback-sorry")
            return Handoff.ENDED
        try:
            queue = (await self.acd.store.snapshot()).queue(outcome.queue)
        except NotFound:
            await self.acd.leave(entry_id, reason="queue_removed")
            await set_callback_status(self.engine, callback_id, "cancelled")
            await self._play(call, language, "callback-sorry")
            return Handoff.ENDED
        entry = entry_of(entry_id, outcome)
        wait = _Wait(
            Place(entry, record.caller or Caller(), queued=False), queue, "callback", True, offered=True
        )
        await self._play(call, language, "callback-intro")
        if self.settings.record_calls:
            await self._play(call, language, "recording-notice")
        reason = "abandoned"
        try:
            handoff = await self._ring(call, progress, wait, outcome)
            reason = "ended"
        finally:
            if not wait.done and wait.agent is not None:
                await self._end(call, progress, wait, reason)
            status = "done" if progress.connected else "abandoned" if reason == "abandoned" else "pending"
            await set_callback_status(self.engine, callback_id, status)
        if handoff is None:  # the agent missed it: back at its place, dialled again soon
            until = (await self.acd.store.snapshot()).now + self.settings.callback_retry_after_s / 10
            await self.acd.defer(entry_id, until=until, reason="agent_missed")
            await self._play(call, language, "callback-sorry")
            return Handoff.ENDED
        return handoff

    # -- callbacks and overflows ----------------------------------------------------------------

    async def _book(self, call: AgiChannel, progress: Progress, wait: _Wait) -> Handoff | None:
        """'1': the place kept as a callback; ``None`` if an agent was offered the call meanwhile."""
        booked = await book_callback(
            self.engine, self.acd, wait=wait.place, kind=wait.kind,
            expire_after=timedelta(hours=self.settings.callback_expire_hours),
        )  # fmt: skip
        if booked is None:
            return None
        wait.done = True
        progress.ticket = True
        log.info(
            "callback %s booked (ticket %s, entry %s)",
            booked.callback_id,
            booked.ticket.reference,
            booked.entry,
        )
        await self._play(call, progress.language, "callback-booked", *reference_ids(booked.ticket.digits))
        await self._confirm_by_sms(wait, booked)
        return Handoff.CALLBACK

    async def _confirm_by_sms(self, wait: _Wait, booked: Booked) -> None:
        """The reference by SMS too (the caller may not have noted it down); a gateway that
        fails leaves the message queued for the outbox's retries, never the caller waiting."""
        caller = wait.place.caller
        settings = self.settings
        text = notice_text(
            "callback_booked", caller.language, reference=booked.ticket.reference,
            start=settings.callback_hours_start.strftime("%H:%M"),
            end=settings.callback_hours_end.strftime("%H:%M"),
        )  # fmt: skip
        try:
            await send_notice(
                settings, self.engine, self.acd.redis, phone=caller.phone,
                key=f"callback:{booked.callback_id}", text=text, citizen_id=caller.citizen_id,
            )  # fmt: skip
        except Exception:
            log.exception("callback %s: the SMS confirmation could not be queued", booked.callback_id)

    async def _overflow(
        self, call: AgiChannel, progress: Progress, wait: _Wait, outcome: str, reason: str
    ) -> Handoff:
        """Full on arrival or waited too long: a callback keeping the place, or a message."""
        language = progress.language
        wait.place = replace(wait.place, queued=False)
        intro = "queue-full" if reason == "full" else "wait-too-long"
        if outcome == "callback" and wait.callable:
            wait.offered = True
            for attempt in range(OFFER_ATTEMPTS):
                ids = (intro, "callback-press-1") if attempt == 0 else ("callback-press-1",)
                key = await listen(call, self.prompts.paths(language, *ids), KEY_TIMEOUT_MS, 1)
                if key == CALLBACK_KEY:
                    handoff = await self._book(call, progress, wait)
                    if handoff is not None:
                        return handoff
            await self._play(call, language, "call-later")
            return Handoff.ENDED
        await self._play(call, language, intro, "call-later")
        return Handoff.ENDED

    # -- leaving --------------------------------------------------------------------------------

    async def _end(self, call: AgiChannel, progress: Progress, wait: _Wait, reason: str) -> None:
        """However the session ends, nothing of its entry is left behind: a ringing agent is
        freed, a call that was answered ends (the caller hung up while talking)."""
        if wait.done:
            return
        try:
            if wait.agent is not None and await self._was_answered(call, wait, wait.agent):
                await self._talked(progress, wait, wait.agent)
                return
            await self.acd.leave(wait.id, reason=reason)
        except Exception:  # the original error (or hangup) goes on; this one is logged
            log.exception("entry %s could not leave the routing state", wait.id)

    async def _was_answered(self, call: AgiChannel, wait: _Wait, agent: str) -> bool:
        """After a hangup during Dial: DIALSTATUS (readable on a dead channel), or the gosub's
        mark (the agent on call with this entry)."""
        status = ""
        with contextlib.suppress(AgiError, TimeoutError, OSError):
            async with asyncio.timeout(2):
                status = (await call.get_variable("DIALSTATUS") or "").upper()
        if status == "ANSWER":
            return True
        record = await self.acd.store.agent(agent)
        return record is not None and record.entry == wait.id and record.agent.state is AgentState.ON_CALL

    # -- playing --------------------------------------------------------------------------------

    async def _play(self, call: AgiChannel, language: Language, *ids: str) -> None:
        if ids:
            await call.exec("Playback", self.prompts(language, *ids))

    async def _stream(self, call: AgiChannel, language: Language, prompt: str, escape: str) -> str | None:
        [path] = self.prompts.paths(language, prompt)
        try:
            return await call.stream_file(path, escape)
        except AgiCommandFailed as exc:
            log.warning("cannot play %s: %s", path, exc)
            await call.exec("Wait", "2")  # never a busy loop on a missing file
            return None
