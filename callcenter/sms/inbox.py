"""Inbound SMS: store first, then run the inquiry engine, then answer.

Every inbound message is committed (deduplicated on the gateway's id) before anything else,
so a crash after the store loses nothing: the reconciler re-processes stored messages that
were never processed. The answer is unique per (inquiry, question, citizen), so a duplicate
webhook or a retry records nothing new. Two replies of one citizen racing each other are
serialised by a version check on the session: the loser reads again and retries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.db import asyncpg_connect_args
from callcenter.inquiries import DefinitionCache
from callcenter.inquiry.definition import Inquiry, Language
from callcenter.inquiry.engine import Event, advance
from callcenter.inquiry.order import for_citizen, order_text
from callcenter.inquiry.parser import Keyword, Keywords, keyword
from callcenter.inquiry.texts import phrase, reply_for
from callcenter.phones import InvalidPhone, mask_phone, normalize_phone
from callcenter.redis_conn import connect
from callcenter.requests.sms_intake import RequestSms, Sender
from callcenter.settings import Settings
from callcenter.sms.gateways.base import InboundSms, StatusReport
from callcenter.sms.inbox_store import AnswerRow, Context, SessionRow, StepWrite, make_store

log = logging.getLogger(__name__)

RETRIES = 8


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one inbound message did (for tests, logs and the demo)."""

    reply: str | None
    event: str  # an engine Event, or duplicate / unknown_sender / no_inquiry
    answer_recorded: bool = False


class Inbox:
    """The engine side of the SMS webhooks (``SmsInbox``)."""

    def __init__(self, engine: AsyncEngine, settings: Settings, *, redis: Redis | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.store = make_store(engine, asyncpg_connect_args(settings))
        self.keywords = Keywords.build(
            stop=settings.stop_words, start=settings.start_words, help=settings.help_words
        )
        self.definitions = DefinitionCache(engine)
        # service requests by SMS (requests.sms_intake); without a client, one is made at first use
        self._redis, self._own_redis = redis, redis is None
        self._requests: RequestSms | None = None

    @property
    def requests(self) -> RequestSms:
        if self._requests is None:
            if self._redis is None:
                self._redis = connect(self.settings)
            self._requests = RequestSms(self.engine, self.settings, self._redis)
        return self._requests

    async def aclose(self) -> None:
        await self.store.aclose()
        if self._own_redis and self._redis is not None:
            await self._redis.aclose()

    # -- SmsInbox -------------------------------------------------------------------------

    async def receive(self, sms: InboundSms) -> str | None:
        """A webhook's message: the reply to send inline. A gateway sends a message again when
        our answer never reached it (``serve`` killed mid-request, a timeout on its side); that
        copy gets the same reply (or, if the first try never got through the engine, its
        processing now), so the citizen is still asked the next question. Recorded once."""
        outcome = await self.handle(sms)
        if outcome.event != "duplicate":
            return outcome.reply
        resumed = await self.resume(sms)
        if resumed is not None:
            return resumed.reply
        found = await self.store.find(sms.gateway, sms.gateway_id)
        return await self.store.reply_of(found[0]) if found is not None else None

    async def status(self, report: StatusReport) -> None:
        """A delivery report: campaign deliveries by our ref ("d<id>") or the gateway's id."""
        await self.store.status(report)

    # -- the pipeline ---------------------------------------------------------------------

    async def handle(self, sms: InboundSms) -> Outcome:
        phone = self._phone(sms.sender)
        message_id, ctx = await self.store.save(sms, phone)
        if message_id is None:
            log.info("duplicate inbound %s/%s ignored", sms.gateway, sms.gateway_id)
            return Outcome(None, "duplicate")
        return await self.process(message_id, phone, sms.body, ctx)

    async def process(self, message_id: int, phone: str, body: str, ctx: Context | None = None) -> Outcome:
        """Run one stored message through the engine (also used to recover after a crash):
        a service request's message first (``requests.sms_intake``), else the inquiry."""
        ctx = ctx or await self.store.context(phone)
        served = await self._service_request(message_id, phone, body, ctx)
        if served is not None:
            return served
        for _ in range(RETRIES):
            ctx = ctx or await self.store.context(phone)
            if ctx.citizen_id is None:
                return await self._unknown(message_id, phone, keyword(body, self.keywords))
            session = ctx.session
            if session is None:
                if ctx.invited is None:
                    return await self._without_session(message_id, ctx, keyword(body, self.keywords))
                # invited, first reply: the step opens the session (id None) as it writes
                first = (await self._definition(ctx.invited, None)).first.key
                session = SessionRow(None, ctx.invited, first, 0, "active", {}, ctx.language, 0, "running")
            inquiry = await self._definition(session.inquiry_id, session.inquiry_status)
            # the options in this citizen's order (when randomised): the text lists them so,
            # and the digit replied maps through it
            inquiry = for_citizen(inquiry, ctx.citizen_id, key=self.settings.pseudonym_key)
            step = advance(inquiry, session.state(), body, keywords=self.keywords)
            language: Language = "en" if session.language == "en" else "ar"
            reply = reply_for(inquiry, step, language)
            answer = None
            if step.answer is not None:
                assert step.answer.question.id is not None
                answer = AnswerRow(
                    step.answer.question.id,
                    step.answer.value,
                    step.answer.number,
                    body,
                    order_text(step.answer.question.order),
                )
            opt = {Event.OPTED_OUT: "out", Event.OPTED_IN: "in"}.get(step.event)
            applied, recorded = await self.store.write_step(
                StepWrite(
                    message_id,
                    ctx.citizen_id,
                    session,
                    step.state,
                    step.event is Event.COMPLETED,
                    answer,
                    reply,
                    opt,
                )
            )
            if applied:
                return Outcome(reply, step.event.value, recorded)
            if not await self.store.pending(message_id):
                return Outcome(None, "duplicate")  # processed meanwhile, by someone else
            ctx = None
            # another reply of this citizen moved the session first: read it again
        raise RuntimeError(f"message {message_id}: session kept changing; left for the reconciler")

    async def resume(self, sms: InboundSms) -> Outcome | None:
        """Process a stored message the engine never finished (a timeout or an outage between
        the store and the step): None if it is not stored or was processed. Safe against a
        concurrent processing of the same message: only one of them records anything."""
        found = await self.store.find(sms.gateway, sms.gateway_id)
        if found is None or found[3] != "received":
            return None
        message_id, phone, body, _ = found
        return await self.process(message_id, phone, body)

    async def reprocess_stuck(self, older_than: datetime, limit: int = 500) -> list[tuple[int, str, Outcome]]:
        """Process stored messages a crash left unprocessed; returns (id, phone, outcome)."""
        return [
            (message_id, phone, await self.process(message_id, phone, body))
            for message_id, phone, body in await self.store.stuck(older_than, limit)
        ]

    async def _service_request(self, message_id: int, phone: str, body: str, ctx: Context) -> Outcome | None:
        """A request, a reference or "was it fixed?": answered even to citizens who opted out
        of polls (it is their own request). A STOP or START still goes to the inquiry side
        (and ends an intake in progress)."""
        if keyword(body, self.keywords) is not None:
            await self.requests.cancel(phone)
            return None
        active = ctx.session is not None and ctx.session.status == "active"
        in_inquiry = active or ctx.invited is not None
        sender = Sender(phone, ctx.citizen_id, ctx.language, in_inquiry=in_inquiry)
        handled = await self.requests.handle(message_id, sender, body)
        if handled is None:
            return None
        if not await self.store.finish(message_id, ctx.citizen_id, handled.reply, None):
            return Outcome(None, "duplicate")
        return Outcome(handled.reply, handled.event)

    # -- the paths without a session ------------------------------------------------------

    def _phone(self, sender: str) -> str:
        try:
            return normalize_phone(sender, self.settings.default_region)
        except InvalidPhone:
            return sender.strip()[:20] or "?"

    async def _unknown(self, message_id: int, phone: str, command: Keyword | None) -> Outcome:
        language = self.settings.default_language
        if command is Keyword.STOP:
            # Remember the wish even before the register knows the number.
            citizen_id = await self.store.new_citizen(phone, language)
            reply = phrase("opted_out", language)
            if not await self.store.finish(message_id, citizen_id, reply, "out"):
                return Outcome(None, "duplicate")
            return Outcome(reply, Event.OPTED_OUT.value)
        log.info("reply from unknown sender %s", mask_phone(phone))
        reply = phrase("unknown_sender", language)
        if not await self.store.finish(message_id, None, reply, None):
            return Outcome(None, "duplicate")
        return Outcome(reply, "unknown_sender")

    async def _without_session(self, message_id: int, ctx: Context, command: Keyword | None) -> Outcome:
        language: Language = "en" if ctx.language == "en" else "ar"
        opt: str | None = None
        if command is Keyword.STOP:
            opt, event, reply = "out", Event.OPTED_OUT.value, phrase("opted_out", language)
        elif command is Keyword.START:
            opt, event, reply = "in", Event.OPTED_IN.value, phrase("opted_in", language)
        elif command is Keyword.HELP:
            event, reply = Event.HELP.value, phrase("help", language)
        elif ctx.opted_out:
            event, reply = Event.IGNORED.value, None
        elif ctx.had_closed:
            event, reply = Event.CLOSED.value, phrase("closed", language)
        else:
            event, reply = "no_inquiry", phrase("no_inquiry", language)
        if not await self.store.finish(message_id, ctx.citizen_id, reply, opt):
            return Outcome(None, "duplicate")
        return Outcome(reply, event)

    async def _definition(self, inquiry_id: int, status: str | None) -> Inquiry:
        return await self.definitions.get(inquiry_id, status)
