"""Service requests by SMS: a request started with a keyword, the status by reference, and
the answer to "was it fixed?".

What the inbox hands here first (``Inbox.process``), before any inquiry:

* ``طلب <description>`` or ``REQUEST <description>`` (case, harakat, hamza forms and the
  digit script do not matter: compared on ``inquiry.parser.normalize``'d text) starts a
  request. The category is asked next (its keypad number, or its name), then the
  municipality (its name or an alias, as in the register), unless the citizen register
  already knows the sender's. The reply to the last answer is the confirmation: reference
  and expected date. A description over ``DESCRIPTION_LIMIT`` characters is refused (the
  reply says the limit) rather than cut: a truncated complaint would be misread.
* A message that is a reference (eight digits, or twelve with ``1415`` in front, in any
  digit script, with or without dashes) asks for the status. From the reporter's number the
  reply is the status; from any other number the status goes by SMS to the reporter and the
  sender is told so (never the status itself). A wrong check digit is told at once. While the
  sender is answering an inquiry only the twelve-digit form counts (eight digits may be an
  answer to a number question).
* "1"/"نعم"/"yes" or "2"/"٢"/"لا"/"no" from a reporter asked "was it fixed?" (``notify``)
  closes the question or reopens the request (``service.reopen``, within the window).

Why a small state machine in Redis rather than an internal inquiry: the two questions depend
on the catalogue and the register (a category list that changes, names matched through the
register's aliases), answers are not survey answers (they must not appear in results, nor
count against a citizen's contacts), and the state lives minutes. So the state of an intake
in progress is one JSON value per number, ``requests:sms-intake:<phone>``, expiring after
``INTAKE_TTL_S``; losing it (Redis restarted) costs the citizen one restart, never a wrong
request. The request itself is made in the database in one transaction; the message that
completed it is remembered (``requests:sms-made:<message id>``) so that the reconciler
re-processing that message after a crash answers with the same reference instead of
making a second request.

Replies to the sender ride on the inbound message (stored with it: a retried webhook is a
duplicate and gets nothing, the reconciler answers a recovered message once); messages to
anyone else go through ``sms.notices`` keyed for idempotency. Citizens who opted out of polls
get all of these: opting out stops inquiries, not the answers to their own requests.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.errors import CallCenterError
from callcenter.inquiry.definition import Question, QuestionKind, Text
from callcenter.inquiry.parser import Parsed, normalize, parse_answer
from callcenter.municipalities.index import load_index
from callcenter.requests.catalogue import Catalogue, Category
from callcenter.requests.lifecycle import CITIZEN, ReopenTooLate
from callcenter.requests.notify import (
    FIXED_KEY,
    created_text,
    fixed_question_of,
    forget_fixed_question,
    send_status_to_reporter,
    status_text,
)
from callcenter.requests.read import lookup_status
from callcenter.requests.reference import PREFIX, BadReference, parse
from callcenter.requests.service import Intake, create_request, reopen
from callcenter.requests.store import load_calendar, read_catalogue
from callcenter.requests.text_overrides import cached_texts, refresh
from callcenter.settings import Settings

log = logging.getLogger(__name__)

KEYWORDS: Final = {"طلب": "ar", "request": "en"}
DESCRIPTION_LIMIT: Final = 1000  # an SMS description; the stored inbound body keeps 2,000
INTAKE_TTL_S: Final = 3600
MADE_TTL_S: Final = 2 * 86400
ATTEMPTS: Final = 3  # answers to one question before the intake is dropped
INTAKE_KEY: Final = "requests:sms-intake:"
MADE_KEY: Final = "requests:sms-made:"
ACTOR: Final = "citizen:sms"
_REFERENCE = re.compile(r"^[0-9][0-9 \-]*[0-9]$")
_FIXED = Question("fixed", QuestionKind.YES_NO, Text("هل حُلّت المشكلة؟", "Was it fixed?"))


@dataclass(frozen=True, slots=True)
class Handled:
    """What a request SMS did: the reply to the sender (None: none) and what happened."""

    reply: str | None
    event: str


@dataclass(frozen=True, slots=True)
class Sender:
    phone: str  # E.164
    citizen_id: int | None
    language: str  # the register's, for messages that do not say
    in_inquiry: bool  # answering an inquiry now (short numbers are theirs)


def started(body: str) -> tuple[str, str] | None:
    """``(language, description)`` when the message starts with a request keyword (followed by
    a space or a punctuation mark: ``طلب: ...``, ``REQUEST - ...``)."""
    words = normalize(body).split()
    if not words or words[0] not in KEYWORDS:
        return None
    text = body.strip()
    cut = next(
        (i for i in range(1, len(text) + 1) if normalize(text[:i]).strip() == words[0]
         and (i == len(text) or not normalize(text[i]).strip())),
        len(text),
    )  # fmt: skip
    return KEYWORDS[words[0]], text[cut:].strip(" \t\r\n:-،,.")


def reference_text(body: str, *, in_inquiry: bool) -> str | None:
    """The message as a reference to parse, when it is shaped like one."""
    text = normalize(body).replace(" ", "").replace("-", "")
    if not text.isdigit() or not _REFERENCE.match(normalize(body).strip()):
        return None
    if len(text) == len(PREFIX) + 8 and text.startswith(PREFIX):
        return text
    return text if len(text) == 8 and not in_inquiry else None


def choices(catalogue: Catalogue, language: str) -> str:
    """``1 Street lighting, 2 Waste collection, ...`` in the citizen's language."""
    en = language == "en"
    return (", " if en else "، ").join(
        f"{c.keypad} {c.name_en if en else c.name_ar}" for c in _ordered(catalogue)
    )


def _ordered(catalogue: Catalogue) -> list[Category]:
    return sorted(catalogue.categories.values(), key=lambda c: int(c.keypad))


def category_of(catalogue: Catalogue, body: str) -> Category | None:
    """The category a reply names: its keypad number (any digit script) or its name."""
    said = normalize(body).strip()
    if said.isdigit():
        return catalogue.by_keypad(str(int(said)))
    return next(
        (c for c in catalogue.categories.values() if said in (normalize(c.name_ar), normalize(c.name_en))),
        None,
    )


def _state(raw: bytes | str | None) -> dict[str, Any] | None:
    """An intake in progress, as saved (None: none, or unreadable)."""
    if raw is None:
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    return state if isinstance(state, dict) and state.get("step") in ("category", "municipality") else None


class RequestSms:
    """The request side of the SMS inbox (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, settings: Settings, redis: Redis) -> None:
        self.engine = engine
        self.settings = settings
        self.redis = redis
        self.texts = cached_texts  # as last refreshed (``_fresh_texts``)

    async def handle(self, message_id: int, sender: Sender, body: str) -> Handled | None:
        """The reply when the message is for service requests; None when it is not. One Redis
        round trip for a message that is not (the inbox's hot path during a poll)."""
        try:
            made, pending, fixed = await self.redis.mget(
                MADE_KEY + str(message_id), INTAKE_KEY + sender.phone, FIXED_KEY + sender.phone
            )
        except (RedisError, OSError) as exc:  # poll answers must not wait for Redis
            log.warning(
                "service requests by SMS unavailable (Redis: %s); message left to the inquiry side", exc
            )
            return None
        if made is not None:  # processed before a crash: the same confirmation again
            return Handled(made if isinstance(made, str) else made.decode(), "request_created")
        start = started(body)
        if start is not None:
            await self._fresh_texts()
            return await self._start(sender, *start)
        state = _state(pending)
        if state is not None:
            await self._fresh_texts()
            return await self._answer(message_id, sender, state, body)
        keyed = reference_text(body, in_inquiry=sender.in_inquiry)
        if keyed is not None:
            await self._fresh_texts()
            return await self._status(sender, keyed)
        request_id = fixed_question_of(fixed)
        if request_id is not None and not sender.in_inquiry:
            await self._fresh_texts()
            return await self._fixed(sender, request_id, body)
        return None

    async def cancel(self, phone: str) -> None:
        """A STOP (or any service keyword) ends an intake in progress."""
        await self.redis.delete(INTAKE_KEY + phone)

    async def _fresh_texts(self) -> None:
        """The texts admins edited in the app, read again if they changed (only for a message
        that is the requests', never on the inbox's hot path)."""
        await refresh(self.settings, self.engine)

    def _say(self, kind: str, language: str, **values: str) -> str:
        return self.texts(self.settings).say(kind, language, **values)

    # -- the intake -------------------------------------------------------------------------

    async def _start(self, sender: Sender, language: str, description: str) -> Handled:
        if not description:
            return Handled(self._say("describe_first", language), "request_refused")
        if len(description) > DESCRIPTION_LIMIT:
            return Handled(self._say("too_long", language, limit=str(DESCRIPTION_LIMIT)), "request_refused")
        catalogue = await self._catalogue()
        if not catalogue.categories:
            return Handled(self._say("no_catalogue", language), "request_refused")
        await self._save(sender.phone, {"step": "category", "language": language, "description": description})
        return Handled(
            self._say("ask_category", language, choices=choices(catalogue, language)), "request_asked"
        )

    async def _answer(self, message_id: int, sender: Sender, state: dict[str, Any], body: str) -> Handled:
        language = str(state["language"])
        catalogue = await self._catalogue()
        if state["step"] == "category":
            category = category_of(catalogue, body)
            if category is None:
                return await self._missed(
                    sender, state, "unknown_category", choices=choices(catalogue, language)
                )
            state = {**state, "category": category.key, "misses": 0}
            municipality = await self._home(sender)
            if municipality is None:
                await self._save(sender.phone, {**state, "step": "municipality"})
                return Handled(self._say("ask_municipality", language), "request_asked")
            return await self._create(message_id, sender, state, municipality)
        async with self.engine.connect() as conn:
            found = (await load_index(conn)).resolve(body) if len(body) <= 200 else None
        if found is None:
            return await self._missed(sender, state, "unknown_municipality")
        return await self._create(message_id, sender, state, await self._code(found))

    async def _missed(self, sender: Sender, state: dict[str, Any], kind: str, **values: str) -> Handled:
        language = str(state["language"])
        misses = int(state.get("misses", 0)) + 1
        if misses >= ATTEMPTS:
            await self.cancel(sender.phone)
            return Handled(self._say("intake_dropped", language), "request_dropped")
        await self._save(sender.phone, {**state, "misses": misses})
        return Handled(self._say(kind, language, **values), "request_asked")

    async def _create(
        self, message_id: int, sender: Sender, state: dict[str, Any], municipality: str
    ) -> Handled:
        intake = Intake(
            category=str(state["category"]), channel="sms", description=str(state["description"]),
            municipality=municipality, phone=sender.phone, citizen_id=sender.citizen_id,
            language=str(state["language"]),
        )  # fmt: skip
        calendar = await load_calendar(self.engine, self.settings)
        async with AsyncSession(self.engine) as session, session.begin():
            made = await create_request(
                session, intake, actor=ACTOR, calendar=calendar, settings=self.settings
            )
        reply = await created_text(self.settings, self.engine, made)
        await self.redis.set(MADE_KEY + str(message_id), reply, ex=MADE_TTL_S)
        await self.cancel(sender.phone)
        log.info("request %s made by SMS", made.reference)
        return Handled(reply, "request_created")

    # -- status and "was it fixed?" ---------------------------------------------------------

    async def _status(self, sender: Sender, keyed: str) -> Handled:
        language = sender.language
        try:  # shaped like one already: only the check digit can be wrong
            shown = parse(keyed).display
        except BadReference:
            return Handled(self._say("bad_check_digit", language), "bad_reference")
        async with self.engine.connect() as conn:
            lookup = await lookup_status(conn, keyed, sender.phone)
            if lookup is None:
                return Handled(self._say("unknown_reference", language, reference=shown), "unknown_reference")
            if lookup.for_reporter:
                return Handled(await status_text(self.settings, conn, lookup), "request_status")
        day = datetime.now(ZoneInfo(self.settings.timezone)).date().isoformat()
        await send_status_to_reporter(self.settings, self.engine, self.redis, keyed, day=day)
        return Handled(
            self._say("status_sent_to_reporter", language, reference=shown), "request_status_elsewhere"
        )

    async def _fixed(self, sender: Sender, request_id: int, body: str) -> Handled | None:
        answer = parse_answer(_FIXED, body)
        if not isinstance(answer, Parsed):
            return None
        M = models.table(models.ServiceRequest)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(M.c.reference, M.c.language).where(M.c.id == request_id))
            ).one_or_none()
        if row is None:
            await forget_fixed_question(self.redis, sender.phone)
            return None
        reference, language = str(row.reference), str(row.language)
        await forget_fixed_question(self.redis, sender.phone)
        if answer.value == "yes":
            return Handled(self._say("fixed_thanks", language, reference=reference), "request_fixed")
        calendar = await load_calendar(self.engine, self.settings)
        try:
            async with AsyncSession(self.engine) as session, session.begin():
                await reopen(
                    session, request_id, note="Not fixed, says the citizen (SMS)", actor=ACTOR, role=CITIZEN,
                    calendar=calendar, settings=self.settings, phone=sender.phone,
                )  # fmt: skip
        except ReopenTooLate:
            return Handled(self._say("reopen_too_late", language, reference=reference), "reopen_too_late")
        except CallCenterError as exc:  # closed by the ministry meanwhile, or not theirs
            log.info("request %s not reopened by SMS: %s", reference, exc)
            return Handled(self._say("reopen_too_late", language, reference=reference), "reopen_refused")
        return Handled(self._say("reopened", language, reference=reference), "request_reopened")

    # -- the pieces -------------------------------------------------------------------------

    async def _save(self, phone: str, state: dict[str, Any]) -> None:
        await self.redis.set(INTAKE_KEY + phone, json.dumps(state, ensure_ascii=False), ex=INTAKE_TTL_S)

    async def _catalogue(self) -> Catalogue:
        async with self.engine.connect() as conn:
            return await read_catalogue(conn)

    async def _home(self, sender: Sender) -> str | None:
        """The sender's municipality code in the citizen register, if it knows one."""
        if sender.citizen_id is None:
            return None
        C, M = models.table(models.Citizen), models.table(models.Municipality)
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(M.c.code).join(C, C.c.municipality_id == M.c.id).where(C.c.id == sender.citizen_id)
            )
            return found.scalar()

    async def _code(self, municipality_id: int) -> str:
        M = models.table(models.Municipality)
        async with self.engine.connect() as conn:
            return str((await conn.execute(select(M.c.code).where(M.c.id == municipality_id))).scalar_one())
