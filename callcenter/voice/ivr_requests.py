"""Service requests on the voice line: option 2 makes one, option 3 tells its status.

Option 2: the category by keypad (each category's name, then "press N"; 0 reaches an agent
instead), the municipality from the citizen register or keyed (its number in the register;
``#`` alone when the caller does not know it: the ministry routes it), then the description
spoken after the tone (``RECORD FILE``, ended by ``#`` or four seconds of silence; the tone is
our ``record-tone`` prompt, not the command's ``BEEP``, which needs Asterisk's own sound files
and without them fails before recording anything). A silent or too-short recording is asked
for once more; a second bad one is not kept and the request is made without it, with a note
saying so in its description. The caller hears the reference read out digit by digit in
groups (``reference.spoken_groups``) and gets it by SMS with the expected date
(``requests.notify.confirm_created``).

Option 3: the caller keys a reference; a wrong check digit or a wrong length is said at once
and the reference asked again (three tries). ``lookup_status`` with the caller's number: the
reporter hears the state, the responsible body and the expected date, and gets the same
with the last public note by SMS (a note is free text: it cannot be played from prompts);
anyone else hears only that the status was sent by SMS to the reporter's number, and it is.

Without a service catalogue (no category loaded) option 2 keeps its old path: an agent's
queue, or a callback ticket.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.inquiry.definition import Language
from callcenter.prompts import compose_number
from callcenter.redis_conn import connect
from callcenter.requests import recordings
from callcenter.requests.catalogue import Catalogue, Category
from callcenter.requests.notify import confirm_created, send_status_to_reporter, send_status_to_self
from callcenter.requests.read import RequestView, lookup_status
from callcenter.requests.reference import BadReference, Problem, parse, spoken_groups
from callcenter.requests.service import Intake, create_request
from callcenter.requests.store import load_calendar, read_catalogue
from callcenter.requests.text_overrides import current_texts
from callcenter.settings import Settings
from callcenter.telephony.agi import AgiChannel
from callcenter.voice.ivr_inquiry import Progress
from callcenter.voice.ivr_prompts import Prompts, listen
from callcenter.voice.request_prompts import body_prompt_id, category_menu, status_prompt_id

log = logging.getLogger(__name__)

KEY_TIMEOUT_MS: Final = 6000
ATTEMPTS: Final = 3
MUNICIPALITY_DIGITS: Final = 4
RECORD_LIMIT_MS: Final = 60_000
RECORD_SILENCE_S: Final = 4
RECORD_TRIES: Final = 2
REFERENCE_TIMEOUT_MS: Final = 8000
REFERENCE_DIGITS: Final = 12  # 1415 and the eight digits
ACTOR: Final = "citizen:ivr"


class IntakeResult(StrEnum):
    MADE = "made"
    AGENT = "agent"  # 0 in the category menu: the caller wants a person
    UNAVAILABLE = "unavailable"  # no catalogue: the old path
    GAVE_UP = "gave_up"  # no valid category after the attempts


class RequestLine:
    """The IVR's side of service requests (one per ``Ivr``). ``redis`` sends the SMS; without
    one a client is made at first use."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, prompts: Prompts, redis: Redis | None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.prompts = prompts
        self._redis = redis

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = connect(self.settings)
        return self._redis

    async def _play(self, call: AgiChannel, language: Language, *ids: str) -> None:
        if ids:
            await call.exec("Playback", self.prompts(language, *ids))

    # -- option 2 ---------------------------------------------------------------------------

    async def intake(self, call: AgiChannel, progress: Progress, phone: str | None) -> IntakeResult:
        async with self.engine.connect() as conn:
            catalogue = await read_catalogue(conn)
        if not catalogue.categories:
            return IntakeResult.UNAVAILABLE
        category = await self._category(call, progress, catalogue)
        if isinstance(category, IntakeResult):
            return category
        municipality = await self._municipality(call, progress)
        name, problem = await self._record(call, progress)
        language = progress.language
        texts = None if name else await current_texts(self.settings, self.engine)
        missing = "" if texts is None else texts.say("no_recording_note", language)
        intake = Intake(
            category=category.key, channel="ivr", municipality=municipality, phone=phone or "",
            citizen_id=progress.citizen_id, language=language,
            recording_path=recordings.stored(name) if name else None,
            description=missing,
            details={"recording": problem} if problem else {},
        )  # fmt: skip
        calendar = await load_calendar(self.engine, self.settings)
        async with AsyncSession(self.engine) as session, session.begin():
            made = await create_request(
                session, intake, actor=ACTOR, calendar=calendar, settings=self.settings
            )
        progress.ticket = True
        log.info("request %s made by phone", made.reference)
        await self._play(call, language, "request-recorded", *self._reference_ids(made))
        if made.phone and await self._confirm(made, recorded=name is not None):
            await self._play(call, language, "svc-sms-sent")
        return IntakeResult.MADE

    def _reference_ids(self, made: RequestView) -> list[str]:
        ids: list[str] = []
        for group in spoken_groups(parse(made.reference), prefix=True):
            ids += [*group, "ref-pause"]
        return ids

    async def _confirm(self, made: RequestView, *, recorded: bool) -> bool:
        try:
            await confirm_created(self.settings, self.engine, self.redis, made, recorded=recorded)
        except Exception:  # the request is made: a missing SMS must not end the call in an apology
            log.exception("confirmation SMS of %s not queued", made.reference)
            return False
        return True

    async def _category(
        self, call: AgiChannel, progress: Progress, catalogue: Catalogue
    ) -> Category | IntakeResult:
        """The category keyed; ``AGENT`` for 0, ``GAVE_UP`` after the attempts."""
        ordered = sorted(catalogue.categories.values(), key=lambda c: int(c.keypad))
        digits = 2 if any(len(c.keypad) > 1 for c in ordered) else 1
        notice: tuple[str, ...] = ()
        attempts = 0
        while attempts < ATTEMPTS:
            await self._play(call, progress.language, *notice)
            paths = self.prompts.paths(progress.language, *category_menu(ordered, progress.language))
            key = await listen(call, paths, KEY_TIMEOUT_MS, digits)
            if key == "*":
                notice = ()
                continue
            if key == "0":
                progress.path.append("0")
                return IntakeResult.AGENT
            found = catalogue.by_keypad(key.lstrip("0")) if key.isdigit() else None
            if found is not None:
                progress.path.append(key)
                return found
            attempts += 1
            notice = ("invalid-input",) if key else ("no-input",)
        await self._play(call, progress.language, *notice, "too-many-attempts")
        return IntakeResult.GAVE_UP

    async def _municipality(self, call: AgiChannel, progress: Progress) -> str | None:
        """The caller's municipality code: the register's, else keyed (asked again once)."""
        M, C = models.table(models.Municipality), models.table(models.Citizen)
        if progress.citizen_id is not None:
            async with self.engine.connect() as conn:
                home = await conn.execute(
                    select(M.c.code)
                    .join(C, C.c.municipality_id == M.c.id)
                    .where(C.c.id == progress.citizen_id)
                )
                code = home.scalar()
            if code is not None:
                return str(code)
        for _ in range(2):
            keyed = await call.get_data(
                self.prompts(progress.language, "svc-enter-municipality"), KEY_TIMEOUT_MS, MUNICIPALITY_DIGITS
            )
            if not keyed:
                return None  # not known: the ministry routes it
            if keyed.isdigit():
                async with self.engine.connect() as conn:
                    found = (await conn.execute(select(M.c.code).where(M.c.id == int(keyed)))).scalar()
                if found is not None:
                    return str(found)
            await self._play(call, progress.language, "svc-municipality-unknown")
        return None

    async def _record(self, call: AgiChannel, progress: Progress) -> tuple[str | None, str]:
        """The kept recording's name, or None and why (``silent``, ``too_short``, ``missing``)."""
        await asyncio.to_thread(recordings.prepare, self.settings)
        problem = ""
        for attempt in range(RECORD_TRIES):
            ids = (
                ("svc-recording-silent" if problem == "silent" else "svc-recording-too-short",)
                if attempt
                else ()
            )
            # the tone is a prompt of ours: RECORD FILE's BEEP plays Asterisk's "beep" sound,
            # and where Asterisk has no sound files the command fails without recording
            await self._play(call, progress.language, *ids, "record-request", "record-tone")
            name = recordings.new_name()
            await call.record_file(
                recordings.asterisk_file(self.settings, name), escape_digits="#", timeout_ms=RECORD_LIMIT_MS,
                beep=False, silence_s=RECORD_SILENCE_S,
            )  # fmt: skip
            path = recordings.local_file(self.settings, name)
            verdict = await asyncio.to_thread(recordings.judge, path)
            if verdict.ok:
                return name, ""
            await asyncio.to_thread(recordings.discard, path)
            problem = verdict.problem
        await self._play(call, progress.language, "svc-saved-without-recording")
        return None, problem

    # -- option 3 ---------------------------------------------------------------------------

    async def status(self, call: AgiChannel, progress: Progress, phone: str | None) -> None:
        language = progress.language
        notice: tuple[str, ...] = ()
        for _ in range(ATTEMPTS):
            await self._play(call, language, *notice)
            digits = await call.get_data(
                self.prompts(language, "enter-reference"), REFERENCE_TIMEOUT_MS, REFERENCE_DIGITS
            )
            if not digits:
                notice = ("no-input",)
                continue
            try:
                parse(digits)
            except BadReference as exc:
                wrong = (
                    "svc-reference-wrong-digit"
                    if exc.problem is Problem.BAD_CHECK_DIGIT
                    else "svc-reference-incomplete"
                )
                notice = (wrong, "please-try-again")
                continue
            async with self.engine.connect() as conn:
                lookup = await lookup_status(conn, digits, phone or "")
            if lookup is None:
                notice = ("reference-not-found", "please-try-again")
                continue
            day = datetime.now(ZoneInfo(self.settings.timezone)).date().isoformat()
            if lookup.request is None:
                await send_status_to_reporter(self.settings, self.engine, self.redis, digits, day=day)
                await self._play(call, language, "svc-status-sent-to-reporter")
                return
            await self._play(call, language, *await self._status_ids(lookup.request, language))
            await send_status_to_self(self.settings, self.engine, self.redis, lookup, day=day)
            await self._play(call, language, "svc-details-by-sms")
            return
        await self._play(call, language, notice[0], "too-many-attempts")

    async def _status_ids(self, view: RequestView, language: Language) -> list[str]:
        B = models.table(models.ResponsibleBody)
        async with self.engine.connect() as conn:
            body = (await conn.execute(select(B.c.key).where(B.c.id == view.body_id))).scalar_one()
        ids = ["request-status-is", status_prompt_id(view.status), "svc-responsible-is", body_prompt_id(body)]
        if view.resolution_due_at is not None and view.status not in ("resolved", "closed", "duplicate"):
            due = view.resolution_due_at.astimezone(ZoneInfo(self.settings.timezone))
            ids += ["svc-expected-by", *compose_number(due.day, language), f"month-{due.month}"]
        return ids
