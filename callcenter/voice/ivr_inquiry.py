"""An inquiry by keypad, shared by the inbound menu (option 1) and answered campaign calls.

The engine decides, the call only plays and listens: before each question the session is
read again (a reply by SMS meanwhile means that question is not asked), the keys go to
``engine.advance`` as text, and every step is written at once, so a caller who hangs up
keeps the answers given so far. ``*`` repeats the question without costing an attempt;
silence is an invalid attempt, and the engine's bounded retries move on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from enum import StrEnum

from callcenter.inquiry.definition import Inquiry, Language, QuestionKind
from callcenter.inquiry.engine import ACCEPTING, Event, SessionStatus, State, Step, advance, start
from callcenter.inquiry.order import for_citizen
from callcenter.telephony.agi import AgiChannel
from callcenter.voice.ivr_prompts import Prompts, listen, max_digits, question_ids
from callcenter.voice.ivr_store import VoiceSession, VoiceStore

log = logging.getLogger(__name__)

QUESTION_TIMEOUT_MS = 6000
WRITE_RETRIES = 8  # version conflicts in a row before giving up (another channel racing us)


class KeypadResult(StrEnum):
    COMPLETED = "completed"  # the last question got its answer (here or elsewhere) during the call
    ALREADY_COMPLETED = "already_completed"  # nothing left to ask when the call came to it
    CLOSED = "closed"  # the inquiry stopped taking answers
    BY_SMS = "by_sms"  # a free-text question: it cannot be answered by keypad


@dataclass(slots=True)
class Progress:
    """What the call achieved so far: it decides the Call row's outcome, even on hang-up."""

    language: Language
    citizen_id: int | None = None
    session_id: int | None = None
    completed: bool = False
    ticket: bool = False
    call_id: int | None = None
    connected: bool = False  # talked to an agent
    path: list[str] = field(default_factory=list)  # the menu keys taken (9 for English, then 0 ...)


@dataclass(frozen=True, slots=True)
class Keypad:
    store: VoiceStore
    prompts: Prompts
    timeout_ms: int = QUESTION_TIMEOUT_MS
    #: the key of the citizens' option orders (settings.pseudonym_key), as on SMS
    order_key: str = ""

    async def run(
        self, call: AgiChannel, progress: Progress, *, inquiry_id: int, citizen_id: int
    ) -> KeypadResult:
        language = progress.language
        session = await self.store.session(inquiry_id, citizen_id, language)
        progress.citizen_id, progress.session_id = citizen_id, session.id
        if session.status == SessionStatus.COMPLETED:
            return KeypadResult.ALREADY_COMPLETED
        asked_any = False
        notice: tuple[str, ...] = ()  # said before the next question (if it is ``notice_for``)
        notice_for: str | None = None
        fresh = True
        while True:
            if not fresh:
                session = await self.store.reread(session)
            fresh = False
            inquiry = await self._definition(session)
            asked = ask(inquiry, session)
            if asked.event is Event.ALREADY_COMPLETED:
                return KeypadResult.COMPLETED if asked_any else KeypadResult.ALREADY_COMPLETED
            if inquiry.status not in ACCEPTING:
                return KeypadResult.CLOSED
            if asked.event is Event.COMPLETED:  # the rest was answered on another channel
                applied, _ = await self.store.write_step(session, _keep_opt_out(session, asked), "")
                if applied:
                    progress.completed = True
                    return KeypadResult.COMPLETED
                continue
            question = asked.question
            assert question is not None
            if question.key != notice_for:  # answered elsewhere meanwhile: the notice is stale
                notice = ()
            if question.kind is QuestionKind.TEXT:
                await call.exec("Playback", self.prompts(language, "text-by-sms"))
                return KeypadResult.BY_SMS
            if not asked_any:
                notice = (*notice, "press-star-to-repeat")
            if notice:
                await call.exec("Playback", self.prompts(language, *notice))
            paths = self.prompts.paths(language, *question_ids(inquiry, question, language))
            digits = await listen(call, paths, self.timeout_ms, max_digits(question))
            asked_any = True
            if "*" in digits:  # repeat: not an attempt
                notice = ()
                continue
            step = await self._apply(session, inquiry, asked, digits)
            if step is None:  # the question was answered elsewhere meanwhile: ask the next
                notice = ()
                continue
            notice_for = step.question.key if step.question is not None else None
            if step.event is Event.REPROMPT:
                notice = ("invalid-input",) if digits else ("no-input",)
            elif step.event is Event.ASK:
                notice = ("too-many-attempts",) if step.gave_up else ()
            elif step.event is Event.COMPLETED:
                progress.completed = True
                return KeypadResult.COMPLETED
            else:
                return KeypadResult.CLOSED

    async def _apply(self, session: VoiceSession, inquiry: Inquiry, asked: Step, digits: str) -> Step | None:
        """Run the keys through the engine and write the step; on a version conflict read
        again and re-run, unless the question heard is no longer the one waiting."""
        assert asked.question is not None
        key = asked.question.key
        for _ in range(WRITE_RETRIES):
            step = _keep_opt_out(session, advance(inquiry, asked.state, digits))
            applied, _ = await self.store.write_step(session, step, digits)
            if applied:
                return step
            session = await self.store.reread(session)
            inquiry = await self._definition(session)
            asked = ask(inquiry, session)
            if asked.question is None or asked.question.key != key:
                return None
        raise RuntimeError(f"inquiry session {session.id} kept changing under the call")

    async def _definition(self, session: VoiceSession) -> Inquiry:
        """The inquiry as this caller hears it: the options in their order when randomised,
        the same order as by SMS, so the key pressed maps to the option heard at that place."""
        inquiry = await self.store.definition(session.inquiry_id, session.inquiry_status)
        return for_citizen(inquiry, session.citizen_id, key=self.order_key)


def ask(inquiry: Inquiry, session: VoiceSession) -> Step:
    """``engine.start`` on the session as read, keeping the invalid attempts already spent on
    the question still waiting (start() would reset them, and retries would never end).

    A citizen who opted out of SMS and still answers by phone is answering: the engine sees
    the session as active (see :func:`_keep_opt_out` for what is written back)."""
    state = session.state
    if state.status is SessionStatus.OPTED_OUT:
        state = replace(state, status=SessionStatus.ACTIVE)
    step = start(inquiry, state)
    if step.question is not None and step.question.key == session.question:
        step = replace(step, state=replace(step.state, attempts=session.attempts))
    return step


def _keep_opt_out(session: VoiceSession, step: Step) -> Step:
    """Answering by phone does not opt a citizen back in to SMS."""
    if session.status == SessionStatus.OPTED_OUT and step.state.status is SessionStatus.ACTIVE:
        state: State = replace(step.state, status=SessionStatus.OPTED_OUT)
        return replace(step, state=state)
    return step
