"""The voice IVR: the FastAGI scripts ``main`` (a citizen dials 1415) and ``outbound`` (an
answered campaign call), each one small async handler registered by name.

Usage::

    server = make_agi_server(settings, engine, on_command=stats.record)
    async with server:
        ...

or, for benchmarks and a bare deployment: ``python -m callcenter.voice.ivr --port 4573``.

``main``: the greeting (Arabic; 9 switches to English), then the menu: 1 the open inquiry,
2 a service request made by the caller (category, municipality, a spoken description: see
:mod:`.ivr_requests`; 0 there, or no service catalogue, reaches an agent), 0 an agent (both
wait in a queue for an agent, see :mod:`.to_agent`, or store a callback ticket when there is
no queue), 3 the status of a request by its reference, told only to the reporter's number.
Every call gets a Call row, closed with its outcome however the call ends.
``agent_answered`` runs on an agent's channel as the agent answers a caller put through;
``transfer`` holds a caller an agent transferred to another queue (``[agent-transfer]``).
With ``CALLCENTER_RECORD_CALLS`` the greeting says that calls may be recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.desk.acd import Acd
from callcenter.desk.call_control import take_transfer
from callcenter.inquiry.definition import Language
from callcenter.outages import through_outage
from callcenter.prompts import inquiry_text_prompt_id
from callcenter.settings import Settings
from callcenter.telephony import names
from callcenter.telephony.agi import (
    AgiChannel,
    AgiConnectionLost,
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    AgiServer,
)
from callcenter.telephony.agi_channel import CommandHook
from callcenter.voice.calls import CallOutcome, CallStart, close_call, open_call
from callcenter.voice.ivr_inquiry import Keypad, KeypadResult, Progress
from callcenter.voice.ivr_prompts import Prompts, listen, reference_ids
from callcenter.voice.ivr_requests import IntakeResult, RequestLine
from callcenter.voice.ivr_store import OUTAGE, OUTAGE_BUDGET_S, VoiceStore, phone_of
from callcenter.voice.tickets import CALLBACK, SERVICE, create_ticket
from callcenter.voice.to_agent import Handoff, ToAgent, queue_for_key

log = logging.getLogger(__name__)

MENU_TIMEOUT_MS = 5000
MENU_ATTEMPTS = 3  # invalid or missing keys before goodbye
#: ``Call.hangup_cause`` of a call whose FastAGI connection was lost (Asterisk or the link)
LINK_LOST = "FastAGI connection lost"

Flow = Callable[[AgiChannel, Progress], Awaitable[None]]


class Ivr:
    """The handlers of the scripts, sharing one store (and its definition cache). Without an
    ``acd`` keys 2 and 0 store a callback ticket (no agents)."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, acd: Acd | None = None, redis: Redis | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store = VoiceStore(engine)
        self.prompts = Prompts(settings)
        self.keypad = Keypad(self.store, self.prompts, order_key=settings.pseudonym_key)
        self.to_agent = ToAgent(settings, engine, acd, self.prompts) if acd is not None else None
        # the SMS of service requests: the routing's Redis, else ``redis``, else one made at first use
        self.requests = RequestLine(settings, engine, self.prompts, acd.redis if acd is not None else redis)

    # -- the scripts ----------------------------------------------------------------------------

    async def main(self, call: AgiChannel) -> None:
        """Inbound 1415."""
        raw = call.env.callerid or ""
        phone = phone_of(raw, self.settings.default_region)
        progress = Progress(self.settings.default_language)
        progress.citizen_id = await self.store.citizen_id(phone) if phone else None
        start = CallStart(
            "in", call.env.uniqueid, call.name, phone or raw, progress.language, progress.citizen_id
        )
        await self._recorded(call, start, progress, self._main)

    async def outbound(self, call: AgiChannel) -> None:
        """An answered campaign call: the channel variables say which campaign, delivery and
        citizen; the inquiry is the campaign's."""
        campaign_id = _int(await call.get_variable(names.VAR_CAMPAIGN))
        delivery_id = _int(await call.get_variable(names.VAR_DELIVERY))
        raw = await call.get_variable(names.VAR_CITIZEN) or ""
        phone = phone_of(raw, self.settings.default_region)
        progress = Progress(self.settings.default_language)
        found = await self.store.citizen(phone) if phone else None
        if found is not None:
            progress.citizen_id, progress.language = found
        start = CallStart(
            "out", call.env.uniqueid, call.name, phone or raw, progress.language, progress.citizen_id,
            campaign_id, delivery_id,
        )  # fmt: skip

        async def flow(call: AgiChannel, progress: Progress) -> None:
            await self._outbound(call, progress, campaign_id, phone)

        await self._recorded(call, start, progress, flow)

    async def callback(self, call: AgiChannel) -> None:
        """A callback the citizen answered (``[callback-connect]``): through to the reserved agent."""
        entry = await call.get_variable(names.VAR_ENTRY) or ""
        agent = await call.get_variable(names.VAR_AGENT) or ""
        callback_id = _int(await call.get_variable(names.VAR_CALLBACK))
        raw = await call.get_variable(names.VAR_CITIZEN) or ""
        phone = phone_of(raw, self.settings.default_region)
        progress = Progress(self.settings.default_language)
        found = await self.store.citizen(phone) if phone else None
        if found is not None:
            progress.citizen_id, progress.language = found
        start = CallStart(
            "out", call.env.uniqueid, call.name, phone or raw, progress.language, progress.citizen_id
        )
        to_agent = self.to_agent

        async def flow(call: AgiChannel, progress: Progress) -> None:
            if to_agent is None or callback_id is None or not entry or not agent:
                log.warning("callback call %s without routing or its variables", call.name)
                await self._bye(call, progress.language, "technical-error")
                return
            await call.answer()
            await to_agent.called_back(call, progress, entry_id=entry, agent=agent, callback_id=callback_id)
            await self._bye(call, progress.language, "goodbye")

        await self._recorded(call, start, progress, flow)

    async def transfer(self, call: AgiChannel) -> None:
        """``[agent-transfer]``: the caller an agent transferred from the desk (the argument is
        the transfer's id), into the other queue at the place kept for them."""
        args = call.env.arguments
        to_agent = self.to_agent
        pending = None
        if to_agent is not None and args:
            pending = await take_transfer(to_agent.acd.redis, to_agent.acd.store.keys.prefix, args[0])
        raw = call.env.callerid or ""
        phone = phone_of(raw, self.settings.default_region)
        progress = Progress(self.settings.default_language)
        if pending is not None:
            progress.language = "en" if pending.caller.language == "en" else "ar"
            progress.citizen_id = pending.caller.citizen_id
            progress.path = list(pending.caller.path)
        elif phone:
            progress.citizen_id = await self.store.citizen_id(phone)
        start = CallStart(
            "in", call.env.uniqueid, call.name, phone or raw, progress.language, progress.citizen_id
        )

        async def flow(call: AgiChannel, progress: Progress) -> None:
            if to_agent is None or pending is None:  # expired, taken, or no routing here
                log.warning("transfer %r on %s: nothing pending", args[0] if args else "", call.name)
                await self._bye(call, progress.language, "technical-error", "call-later")
                return
            handoff = await to_agent.transferred(call, progress, pending)
            if handoff is Handoff.NOT_QUEUED:
                kind = SERVICE if pending.queue == self.settings.queue_for_key_2 else CALLBACK
                await self._callback_ticket(call, progress, kind)
            await self._bye(call, progress.language, "goodbye")

        await self._recorded(call, start, progress, flow)

    async def agent_answered(self, call: AgiChannel) -> None:
        """The ``[agent-answered]`` gosub: the agent picked up (the agent goes on call)."""
        if self.to_agent is not None:
            await self.to_agent.agent_answered(call)

    async def _recorded(self, call: AgiChannel, start: CallStart, progress: Progress, flow: Flow) -> None:
        """Run ``flow`` between opening and closing the call's row (each waits a while for a
        database that restarts, as every statement of the call does)."""
        call_id = await through_outage(
            lambda: open_call(self.engine, start), budget_s=OUTAGE_BUDGET_S, what=OUTAGE.what, outage=OUTAGE
        )
        progress.call_id = call_id
        outcome, cause = CallOutcome.ABANDONED, None
        try:
            await flow(call, progress)
            outcome = _outcome(progress, hung_up=False)
        except AgiConnectionLost:  # Asterisk died or the link failed: not the citizen's doing
            outcome, cause = _outcome(progress, hung_up=True, lost=True), LINK_LOST
            raise
        except (AgiHangup, AgiDeadChannel):
            outcome = _outcome(progress, hung_up=True)
            raise
        except Exception:
            outcome = CallOutcome.FAILED
            with contextlib.suppress(AgiError, TimeoutError):
                async with asyncio.timeout(5):
                    await self._play(call, progress.language, "technical-error")
                    await call.hangup()
            raise
        finally:
            await through_outage(
                lambda: close_call(
                    self.engine, call_id, outcome=outcome, language=progress.language,
                    citizen_id=progress.citizen_id, session_id=progress.session_id, hangup_cause=cause,
                ),
                budget_s=OUTAGE_BUDGET_S, what=OUTAGE.what, outage=OUTAGE,
            )  # fmt: skip

    # -- inbound --------------------------------------------------------------------------------

    async def _main(self, call: AgiChannel, progress: Progress) -> None:
        await call.answer()
        choice = await self._menu(call, progress)
        if choice == "1":
            await self._inbound_inquiry(call, progress)
        elif choice == "2":
            await self._service_request(call, progress)
        elif choice == "0":
            await self.hand_off(call, progress, kind=CALLBACK, key="0")
        elif choice == "3":
            await self.requests.status(
                call, progress, phone_of(call.env.callerid, self.settings.default_region)
            )
        await self._bye(call, progress.language, "goodbye")

    async def _menu(self, call: AgiChannel, progress: Progress) -> str | None:
        """The menu key, or None after :data:`MENU_ATTEMPTS` invalid or missing keys."""
        greeting: tuple[str, ...] = ("greeting",)
        if self.settings.record_calls:
            greeting = ("greeting", "recording-notice")
        head: tuple[str, ...] = (*greeting, "for-english") if progress.language == "ar" else greeting
        notice: tuple[str, ...] = ()
        attempts = 0
        while attempts < MENU_ATTEMPTS:
            await self._play(call, progress.language, *notice)
            paths = self.prompts.paths(progress.language, *head, "main-menu")
            key = await listen(call, paths, MENU_TIMEOUT_MS, 1)
            head = ()
            if key in ("1", "2", "3", "0"):
                progress.path.append(key)
                return key
            if key == "9" and progress.language == "ar":
                progress.language = "en"
                progress.path.append(key)
                head, notice = greeting, ()
                continue
            if key == "*":
                notice = ()
                continue
            attempts += 1
            notice = ("invalid-input",) if key else ("no-input",)
        await self._play(call, progress.language, *notice, "too-many-attempts")
        return None

    async def _inbound_inquiry(self, call: AgiChannel, progress: Progress) -> None:
        language = progress.language
        inquiry_id = await self.store.open_inquiry()
        phone = phone_of(call.env.callerid, self.settings.default_region)
        if inquiry_id is None:
            await self._play(call, language, "no-open-inquiry")
            return
        if phone is None:  # a withheld number: nobody to record the answers for
            log.info("inquiry by phone refused: no caller id on %s", call.name)
            await self._play(call, language, "technical-error")
            return
        citizen_id = await self.store.register(phone, language)
        await self._keypad(call, progress, inquiry_id, citizen_id)

    async def _keypad(self, call: AgiChannel, progress: Progress, inquiry_id: int, citizen_id: int) -> None:
        result = await self.keypad.run(call, progress, inquiry_id=inquiry_id, citizen_id=citizen_id)
        language = progress.language
        if result is KeypadResult.COMPLETED:
            slug = (await self.store.definition(inquiry_id)).slug
            await self._play(call, language, inquiry_text_prompt_id(slug, "thanks"), "thank-you-answering")
        elif result is KeypadResult.ALREADY_COMPLETED:
            await self._play(call, language, "thank-you-answering")  # you have already answered
        elif result is KeypadResult.CLOSED:
            await self._play(call, language, "no-open-inquiry")

    async def _service_request(self, call: AgiChannel, progress: Progress) -> None:
        """Option 2: the caller makes the request (``ivr_requests``); 0 in its menu, or no
        service catalogue loaded, reaches an agent as before."""
        phone = phone_of(call.env.callerid, self.settings.default_region)
        made = await self.requests.intake(call, progress, phone)
        if made in (IntakeResult.AGENT, IntakeResult.UNAVAILABLE):
            await self.hand_off(call, progress, kind=SERVICE, key="2")

    async def hand_off(self, call: AgiChannel, progress: Progress, *, kind: str, key: str = "") -> None:
        """Where a caller reaches a person (option 2 service request, option 0 agent): the
        queue the key maps to (settings ``queue_for_key_*``); without one (or without routing)
        the request is stored as a ticket to call back, and the caller hears its reference."""
        queue = queue_for_key(self.settings, key)
        if self.to_agent is not None and queue is not None:
            handoff = await self.to_agent.run(
                call, progress, queue=queue, kind=kind, path=tuple(progress.path)
            )
            if handoff is not Handoff.NOT_QUEUED:
                return
        await self._callback_ticket(call, progress, kind)

    async def _callback_ticket(self, call: AgiChannel, progress: Progress, kind: str) -> None:
        """The request kept as a ticket to call back; the caller hears its reference."""
        phone = phone_of(call.env.callerid, self.settings.default_region) or (call.env.callerid or "")
        ticket = await create_ticket(
            self.engine, kind=kind, phone=phone, citizen_id=progress.citizen_id,
            call_id=progress.call_id, callback=True,
        )  # fmt: skip
        progress.ticket = True
        log.info("voice ticket %s (%s) stored", ticket.reference, kind)
        await self._play(
            call, progress.language, "agents-busy", "callback-stored", "request-recorded",
            *reference_ids(ticket.digits),
        )  # fmt: skip

    # -- outbound -------------------------------------------------------------------------------

    async def _outbound(
        self, call: AgiChannel, progress: Progress, campaign_id: int | None, phone: str | None
    ) -> None:
        await call.answer()
        inquiry_id = await self.store.campaign_inquiry(campaign_id) if campaign_id is not None else None
        if inquiry_id is None or phone is None:
            log.warning("campaign call %s without a known campaign or citizen", call.name)
            await self._bye(call, progress.language, "no-open-inquiry")
            return
        citizen_id = await self.store.register(phone, progress.language)
        inquiry = await self.store.definition(inquiry_id)
        intro = (inquiry_text_prompt_id(inquiry.slug, "intro"),) if inquiry.intro.ar else ()
        await self._play(call, progress.language, "outbound-intro", *intro)
        await self._keypad(call, progress, inquiry_id, citizen_id)
        await self._bye(call, progress.language, "goodbye")

    # -- helpers --------------------------------------------------------------------------------

    async def _play(self, call: AgiChannel, language: Language, *ids: str) -> None:
        """Play prompts without listening (``Playback`` takes ``a&b&c``)."""
        if ids:
            await call.exec("Playback", self.prompts(language, *ids))

    async def _bye(self, call: AgiChannel, language: Language, *ids: str) -> None:
        await self._play(call, language, *ids)
        await call.hangup()


def _outcome(progress: Progress, *, hung_up: bool, lost: bool = False) -> CallOutcome:
    """What the call achieved; short of that, how it ended: ``lost`` (the FastAGI link went
    before Asterisk said HANGUP) fails on our side, which is no abandonment by the citizen."""
    if progress.completed:
        return CallOutcome.COMPLETED
    if progress.connected:
        return CallOutcome.CONNECTED
    if progress.ticket:
        return CallOutcome.CALLBACK
    if lost:
        return CallOutcome.FAILED
    return CallOutcome.ABANDONED if hung_up else CallOutcome.ANSWERED


def _int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def make_agi_server(
    settings: Settings,
    engine: AsyncEngine,
    *,
    host: str | None = None,
    port: int | None = None,
    on_command: CommandHook | None = None,
    acd: Acd | None = None,
    redis: Redis | None = None,
) -> AgiServer:
    """A FastAGI server with the ``main``, ``outbound`` and ``agent_answered`` scripts (not
    started yet); ``acd``: callers to agents through this routing state."""
    ivr = Ivr(settings, engine, acd, redis)
    server = AgiServer(
        host if host is not None else settings.agi_host,
        port if port is not None else settings.agi_port,
        on_command=on_command,
    )
    server.register(names.AGI_MAIN, ivr.main)
    server.register(names.AGI_OUTBOUND, ivr.outbound)
    server.register(names.AGI_AGENT_ANSWERED, ivr.agent_answered)
    server.register(names.AGI_CALLBACK, ivr.callback)
    server.register(names.AGI_TRANSFER, ivr.transfer)
    return server


if __name__ == "__main__":
    from callcenter.voice.ivr_serve import main

    main()
