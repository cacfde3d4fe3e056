"""The voice IVR: the FastAGI scripts ``main`` (a citizen dials 1415) and ``outbound`` (an
answered campaign call), each one small async handler registered by name.

Usage::

    server = make_agi_server(settings, engine, on_command=stats.record)
    async with server:
        ...

or, for benchmarks and a bare deployment: ``python -m callcenter.voice.ivr --port 4573``.

``main``: the greeting (Arabic; 9 switches to English), then the menu: 1 the open inquiry,
2 a service request, 0 an agent, 3 the status of a request by its reference. Every call
gets a Call row, closed with its outcome however the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.inquiry.definition import Language
from callcenter.prompts import inquiry_text_prompt_id
from callcenter.settings import Settings
from callcenter.telephony import names
from callcenter.telephony.agi import AgiChannel, AgiDeadChannel, AgiError, AgiHangup, AgiServer
from callcenter.telephony.agi_channel import CommandHook
from callcenter.voice.calls import CallOutcome, CallStart, close_call, open_call
from callcenter.voice.ivr_inquiry import Keypad, KeypadResult, Progress
from callcenter.voice.ivr_prompts import STATUS_PROMPTS, Prompts, listen, reference_ids
from callcenter.voice.ivr_store import VoiceStore, phone_of
from callcenter.voice.tickets import CALLBACK, SERVICE, create_ticket, find_ticket

log = logging.getLogger(__name__)

MENU_TIMEOUT_MS = 5000
MENU_ATTEMPTS = 3  # invalid or missing keys before goodbye
REFERENCE_TIMEOUT_MS = 8000
REFERENCE_ATTEMPTS = 3
REFERENCE_DIGITS = 10  # 1415 and six digits

Flow = Callable[[AgiChannel, Progress], Awaitable[None]]


class Ivr:
    """The handlers of both scripts, sharing one store (and its definition cache)."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.store = VoiceStore(engine)
        self.prompts = Prompts(settings)
        self.keypad = Keypad(self.store, self.prompts)

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

    async def _recorded(self, call: AgiChannel, start: CallStart, progress: Progress, flow: Flow) -> None:
        """Run ``flow`` between opening and closing the call's row."""
        call_id = await open_call(self.engine, start)
        progress.call_id = call_id
        outcome = CallOutcome.ABANDONED
        try:
            await flow(call, progress)
            outcome = _outcome(progress, hung_up=False)
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
            await close_call(
                self.engine, call_id, outcome=outcome, language=progress.language,
                citizen_id=progress.citizen_id, session_id=progress.session_id,
            )  # fmt: skip

    # -- inbound --------------------------------------------------------------------------------

    async def _main(self, call: AgiChannel, progress: Progress) -> None:
        await call.answer()
        choice = await self._menu(call, progress)
        if choice == "1":
            await self._inbound_inquiry(call, progress)
        elif choice == "2":
            await self.hand_off(call, progress, kind=SERVICE)
        elif choice == "0":
            await self.hand_off(call, progress, kind=CALLBACK)
        elif choice == "3":
            await self._status(call, progress)
        await self._bye(call, progress.language, "goodbye")

    async def _menu(self, call: AgiChannel, progress: Progress) -> str | None:
        """The menu key, or None after :data:`MENU_ATTEMPTS` invalid or missing keys."""
        head: tuple[str, ...] = ("greeting", "for-english") if progress.language == "ar" else ("greeting",)
        notice: tuple[str, ...] = ()
        attempts = 0
        while attempts < MENU_ATTEMPTS:
            await self._play(call, progress.language, *notice)
            paths = self.prompts.paths(progress.language, *head, "main-menu")
            key = await listen(call, paths, MENU_TIMEOUT_MS, 1)
            head = ()
            if key in ("1", "2", "3", "0"):
                return key
            if key == "9" and progress.language == "ar":
                progress.language = "en"
                head, notice = ("greeting",), ()
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

    async def hand_off(self, call: AgiChannel, progress: Progress, *, kind: str) -> None:
        """Where a caller reaches a person (option 2 service request, option 0 agent).

        There are no agents yet, so every agent is busy: the request is stored as a ticket to
        call back, and the caller hears its reference. The agents feature replaces the body
        (queue, and a ticket only when nobody answers)."""
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

    async def _status(self, call: AgiChannel, progress: Progress) -> None:
        language = progress.language
        notice: tuple[str, ...] = ()
        for _ in range(REFERENCE_ATTEMPTS):
            await self._play(call, language, *notice)
            digits = await call.get_data(
                self.prompts(language, "enter-reference"), REFERENCE_TIMEOUT_MS, REFERENCE_DIGITS
            )
            ticket = await find_ticket(self.engine, digits) if digits else None
            if ticket is not None:
                status = STATUS_PROMPTS.get(ticket.status, "status-received")
                await self._play(call, language, "request-status-is", status)
                return
            notice = ("reference-not-found", "please-try-again") if digits else ("no-input",)
        await self._play(call, language, notice[0], "too-many-attempts")

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


def _outcome(progress: Progress, *, hung_up: bool) -> CallOutcome:
    if progress.completed:
        return CallOutcome.COMPLETED
    if progress.ticket:
        return CallOutcome.CALLBACK
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
) -> AgiServer:
    """A FastAGI server with the ``main`` and ``outbound`` scripts (not started yet)."""
    ivr = Ivr(settings, engine)
    server = AgiServer(
        host if host is not None else settings.agi_host,
        port if port is not None else settings.agi_port,
        on_command=on_command,
    )
    server.register(names.AGI_MAIN, ivr.main)
    server.register(names.AGI_OUTBOUND, ivr.outbound)
    return server


if __name__ == "__main__":
    from callcenter.voice.ivr_serve import main

    main()
