"""The inquiry engine: a pure state machine shared by every channel.

``advance(inquiry, state, text)`` -> ``Step`` (what happened, the answer to record, the
question to ask next, the new state). No I/O and no clock: SMS, inbound IVR and outbound
IVR are adapters that turn their input into text (DTMF digits are text too) and the
``Step`` into an SMS or prompts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from callcenter.inquiry.definition import Inquiry, InquiryStatus, Question, QuestionKind
from callcenter.inquiry.parser import Invalid, Keyword, Keywords, keyword, normalize, parse_answer


class SessionStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"  # final
    OPTED_OUT = "opted_out"  # until START


class Event(StrEnum):
    ASK = "ask"  # ask ``question`` (the first, or the next after an answer)
    REPROMPT = "reprompt"  # the reply was not a valid answer: ask again with a hint
    COMPLETED = "completed"  # the last answer was recorded (or the rest was skipped)
    ALREADY_COMPLETED = "already_completed"  # input after completion: nothing recorded
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    HELP = "help"
    IGNORED = "ignored"  # an opted-out citizen wrote something other than START
    CLOSED = "closed"  # the inquiry is not taking answers


@dataclass(frozen=True, slots=True)
class State:
    question: str | None = None  # the question awaiting an answer
    attempts: int = 0  # invalid replies to it so far
    status: SessionStatus = SessionStatus.ACTIVE
    answered: frozenset[str] = frozenset()
    #: (key, value) of answers given, so skip logic over answered questions follows them
    values: tuple[tuple[str, str], ...] = ()

    @classmethod
    def stored(cls, question: str | None, attempts: int, status: str, answered: Mapping[str, str]) -> State:
        """The state as a session row keeps it (``answered``: question key -> value)."""
        return cls(question, attempts, SessionStatus(status), frozenset(answered), tuple(answered.items()))

    def value(self, key: str) -> str | None:
        return next((v for k, v in self.values if k == key), None)


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    question: Question
    value: str
    number: float | None
    raw: str


@dataclass(frozen=True, slots=True)
class Step:
    event: Event
    state: State
    question: Question | None = None  # asked now (ASK, REPROMPT, HELP, OPTED_IN)
    answer: RecordedAnswer | None = None
    error: str | None = None  # why the reply was invalid (REPROMPT, or a give-up)
    gave_up: bool = False  # the previous question was skipped after too many invalid replies


ACCEPTING = frozenset({InquiryStatus.RUNNING, InquiryStatus.PAUSED})


def start(inquiry: Inquiry, state: State | None = None) -> Step:
    """Ask the first question not yet answered (a session may resume on another channel)."""
    state = state or State()
    if state.status is SessionStatus.COMPLETED:
        return Step(Event.ALREADY_COMPLETED, state)
    current = _current(inquiry, state)
    if current is None:
        return Step(Event.COMPLETED, replace(state, question=None, status=SessionStatus.COMPLETED))
    return Step(Event.ASK, replace(state, question=current.key, attempts=0), question=current)


def advance(inquiry: Inquiry, state: State, text: str, *, keywords: Keywords | None = None) -> Step:
    """Take one input from the citizen and say what follows."""
    keywords = keywords or Keywords.default()
    command = keyword(text, keywords)
    if command is not None and _is_free_text_answer(inquiry, state, text, keywords):
        command = None
    if command is Keyword.STOP:
        return Step(Event.OPTED_OUT, replace(state, status=SessionStatus.OPTED_OUT))
    if state.status is SessionStatus.OPTED_OUT:
        if command is not Keyword.START:
            return Step(Event.IGNORED, state)
        state = replace(state, status=SessionStatus.ACTIVE)
        if inquiry.status not in ACCEPTING:
            return Step(Event.OPTED_IN, state)
        resumed = start(inquiry, state)
        return replace(resumed, event=Event.OPTED_IN if resumed.question else resumed.event)
    if state.status is SessionStatus.COMPLETED:
        return Step(Event.ALREADY_COMPLETED, state)
    if inquiry.status not in ACCEPTING:
        return Step(Event.CLOSED, state)
    current = _current(inquiry, state)
    if current is None:
        return Step(Event.COMPLETED, replace(state, status=SessionStatus.COMPLETED))
    if command is Keyword.HELP:
        return Step(Event.HELP, replace(state, question=current.key), question=current)

    parsed = parse_answer(current, text)
    if isinstance(parsed, Invalid):
        attempts = state.attempts + 1 if state.question == current.key else 1
        if attempts <= current.retries:
            return Step(
                Event.REPROMPT,
                replace(state, question=current.key, attempts=attempts),
                question=current,
                error=parsed.reason,
            )
        # Bounded retries: give up on this question and go on, so one bad reply
        # never traps a citizen.
        step = _move_on(inquiry, state, current, value=None)
        return replace(step, gave_up=True, error=parsed.reason)

    answer = RecordedAnswer(current, parsed.value, parsed.number, text)
    answered = replace(
        state,
        answered=state.answered | {current.key},
        values=(*state.values, (current.key, parsed.value)),
    )
    return replace(_move_on(inquiry, answered, current, value=parsed.value), answer=answer)


def _is_free_text_answer(inquiry: Inquiry, state: State, text: str, keywords: Keywords) -> bool:
    """On a free-text question only a bare keyword counts ("توقف" opts out, "توقف الكهرباء
    يوميا" is an answer); on an active session START is not a command either, so the answer
    "أبداً" (never, which normalises like "ابدأ") is parsed as an answer."""
    if state.status is not SessionStatus.ACTIVE or inquiry.status not in ACCEPTING:
        return False
    current = _current(inquiry, state)
    if current is None:
        return False
    words = normalize(text)
    if keyword(text, keywords) is Keyword.START:
        return True
    return current.kind is QuestionKind.TEXT and words not in keywords.stop | keywords.help


def next_question(inquiry: Inquiry, question: Question, value: str | None) -> Question | None:
    """Skip logic: the answer's target, else the ``*`` target, else the next in order."""
    target = question.next.get(value) if value is not None else None
    target = target or question.next.get("*")
    if target == "end":
        return None
    if target:
        return inquiry.question(target)
    index = inquiry.questions.index(question)
    return inquiry.questions[index + 1] if index + 1 < len(inquiry.questions) else None


def _current(inquiry: Inquiry, state: State) -> Question | None:
    """The question awaiting an answer, skipping what another channel already answered."""
    if state.question is None:
        question: Question | None = inquiry.first
    else:
        try:
            question = inquiry.question(state.question)
        except KeyError:  # the definition changed under a live session
            question = inquiry.first
    return _skip_answered(inquiry, question, state)


def _skip_answered(inquiry: Inquiry, question: Question | None, state: State) -> Question | None:
    seen: set[str] = set()
    while question is not None and question.key in state.answered and question.key not in seen:
        seen.add(question.key)
        question = next_question(inquiry, question, state.value(question.key))
    return None if question is not None and question.key in state.answered else question


def _move_on(inquiry: Inquiry, state: State, current: Question, *, value: str | None) -> Step:
    following = _skip_answered(inquiry, next_question(inquiry, current, value), state)
    if following is None:
        done = replace(state, question=None, attempts=0, status=SessionStatus.COMPLETED)
        return Step(Event.COMPLETED, done)
    return Step(Event.ASK, replace(state, question=following.key, attempts=0), question=following)
