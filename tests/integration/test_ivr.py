"""The voice IVR end to end: the engine's FastAGI server, simulated Asterisk callers (keys,
silence, hang-ups), and the real database (PostgreSQL and SQLite)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.settings import Settings
from callcenter.sim import Caller, HangUp, Press, Silence, SimConfig, Simulator, engine_dialplan
from callcenter.sim.agi_client import SimAgiChannel
from callcenter.sim.calls import OriginateRequest
from callcenter.sim.citizen import CitizenModel, Outcome
from callcenter.sim.config import ContextSpec
from callcenter.sms.gateways.base import InboundSms
from callcenter.sms.inbox import Inbox
from callcenter.telephony import names
from callcenter.voice.ivr import make_agi_server
from callcenter.voice.ivr_store import VoiceSession, VoiceStore
from tests.factories import THREE_QUESTIONS, invite, make_citizens, make_inquiry

pytestmark = pytest.mark.timeout(60)

PHONE = "+218912345678"  # the simulated caller's 0912345678
ANSWERS = ("4", "1", "2")  # q1 rating 4, q2 yes, q3 rating 2
EXPECTED = {"q1": "4", "q2": "yes", "q3": "2"}
_gid = itertools.count()


@dataclass
class Lab:
    sim: Simulator
    engine: AsyncEngine

    async def call(self, caller: Caller, **kw: Any) -> SimAgiChannel:
        return await self.sim.call(caller, **kw)


@pytest.fixture
async def lab(engine: AsyncEngine, settings: Settings) -> AsyncIterator[Lab]:
    server = make_agi_server(settings, engine, host="127.0.0.1", port=0)
    async with server:
        dialplan = {**engine_dialplan(), "other": ContextSpec(script="nosuch", args=())}
        citizens = CitizenModel(default=Outcome("answer", caller=Caller.keys(*ANSWERS)))
        config = SimConfig(agi_port=server.port, time_scale=0, dialplan=dialplan, citizens=citizens)
        async with Simulator(config) as sim:
            yield Lab(sim, engine)
    async with engine.begin() as conn:  # conftest's TABLES does not know these yet
        await conn.execute(delete(models.table(models.Ticket)))
        await conn.execute(delete(models.table(models.Call)))


async def answers(engine: AsyncEngine) -> dict[str, tuple[str, str]]:
    A, Q = models.table(models.Answer), models.table(models.Question)
    async with engine.connect() as conn:
        rows = await conn.execute(select(Q.c.key, A.c.value, A.c.channel).join(Q, Q.c.id == A.c.question_id))
        return {r.key: (r.value, r.channel) for r in rows}


async def call_rows(engine: AsyncEngine) -> list[Any]:
    CALL = models.table(models.Call)
    async with engine.connect() as conn:
        return list(await conn.execute(select(CALL).order_by(CALL.c.id)))


async def tickets(engine: AsyncEngine) -> list[Any]:
    T = models.table(models.Ticket)
    async with engine.connect() as conn:
        return list(await conn.execute(select(T).order_by(T.c.id)))


def heard(session: SimAgiChannel) -> list[str]:
    """The prompt (file name) of each command that listened to the caller, in order."""
    return [
        line.split(" ", 3)[2].rsplit("/", 1)[-1]
        for line in session.commands
        if line.startswith(("STREAM FILE", "GET DATA"))
    ]


def played(session: SimAgiChannel) -> list[str]:
    """The prompts of each ``EXEC Playback`` (``a&b`` → ``"a b"``)."""
    return [
        " ".join(f.rsplit("/", 1)[-1] for f in line.split(" ", 2)[2].strip('"').split("&"))
        for line in session.commands
        if line.startswith("EXEC Playback")
    ]


def voice(values: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {key: (value, "voice") for key, value in values.items()}


# -- the inquiry by keypad ----------------------------------------------------------------------


async def test_full_inquiry_via_option_1(lab: Lab) -> None:
    await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    session = await lab.call(Caller.keys("1", *ANSWERS))
    assert await answers(lab.engine) == voice(EXPECTED)
    assert heard(session) == ["greeting", "q-three-q1", "q-three-q2", "q-three-q3"]
    assert "/ar/" in session.commands[1]
    assert session.commands[-1] == "HANGUP"
    assert played(session) == ["press-star-to-repeat", "q-three-_thanks thank-you-answering", "goodbye"]
    [row] = await call_rows(lab.engine)
    assert (row.direction, row.outcome, row.caller, row.language) == ("in", "completed", PHONE, "ar")
    assert row.citizen_id is not None and row.session_id is not None and row.ended_at is not None
    S = models.table(models.InquirySession)
    async with lab.engine.connect() as conn:
        status, channel = (await conn.execute(select(S.c.status, S.c.channel))).one()
    assert (status, channel) == ("completed", "voice")


async def test_english_via_9(lab: Lab) -> None:
    await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    session = await lab.call(Caller.keys("9", "1", *ANSWERS))
    assert await answers(lab.engine) == voice(EXPECTED)
    listened = [line for line in session.commands if line.startswith(("STREAM FILE", "GET DATA"))]
    assert "/ar/" in listened[0] and all("/en/" in line for line in listened[1:])
    assert heard(session)[:3] == ["greeting", "greeting", "q-three-q1"]
    [row] = await call_rows(lab.engine)
    assert row.language == "en"


async def test_star_repeats_without_costing_an_attempt(lab: Lab) -> None:
    await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    session = await lab.call(Caller.keys("1", "*", "*", "*", *ANSWERS))
    assert await answers(lab.engine) == voice(EXPECTED)
    assert heard(session)[1:] == ["q-three-q1"] * 4 + ["q-three-q2", "q-three-q3"]


async def test_garbage_and_silence_reprompt_then_the_engine_gives_up(lab: Lab) -> None:
    await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    # q1: 9 (out of range), silence through the question and its hint, then 4;
    # q2: 7, 7, 7 (the engine gives up after 2 retries); q3: 2
    session = await lab.call(Caller.keys("1", "9", None, None, "4", "7", "7", "7", "2"))
    assert await answers(lab.engine) == voice({"q1": "4", "q3": "2"})
    assert heard(session)[1:5] == ["q-three-q1", "q-three-q1", "rating-hint", "q-three-q1"]
    assert heard(session)[-1] == "q-three-q3"
    assert played(session)[:6] == [
        "press-star-to-repeat", "invalid-input", "no-input", "invalid-input", "invalid-input",
        "too-many-attempts",
    ]  # fmt: skip
    [row] = await call_rows(lab.engine)
    assert row.outcome == "completed"


@pytest.mark.parametrize("hang_at", range(5))
async def test_hang_up_at_every_step_keeps_the_answers(lab: Lab, hang_at: int) -> None:
    await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    keys = ("1", *ANSWERS)
    if hang_at < len(keys):
        caller = Caller((*(Press(k) for k in keys[:hang_at]), HangUp(after_ms=100)))
    else:  # the last answer given: nothing listens any more, the engine ends the call
        caller = Caller.keys(*keys, hang_up=True)
    await lab.call(caller)
    given = max(0, hang_at - 1)
    assert await answers(lab.engine) == voice(dict(list(EXPECTED.items())[:given]))
    [row] = await call_rows(lab.engine)
    assert row.outcome == ("completed" if given == 3 else "abandoned")
    assert row.ended_at is not None


async def test_invalid_menu_keys_end_with_goodbye(lab: Lab) -> None:
    await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    session = await lab.call(Caller.keys("7", None, "#"))
    assert heard(session) == ["greeting", "main-menu", "main-menu"]
    assert played(session) == ["invalid-input", "no-input", "no-input too-many-attempts", "goodbye"]
    assert session.commands[-1] == "HANGUP"
    [row] = await call_rows(lab.engine)
    assert row.outcome == "answered"


async def test_no_open_inquiry(lab: Lab) -> None:
    session = await lab.call(Caller.keys("1"))
    assert played(session) == ["no-open-inquiry", "goodbye"]
    assert await answers(lab.engine) == {}


async def test_completed_by_sms_is_told_already_answered(lab: Lab, inbox: Inbox) -> None:
    inquiry_id = await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    [phone] = await make_citizens(lab.engine, 1)
    await invite(lab.engine, inquiry_id, [phone])
    for body in ANSWERS:
        await inbox.receive(InboundSms("loopback", f"g{next(_gid)}", phone, body))
    session = await lab.call(Caller.keys("1", "4", number="0" + phone[4:]))
    assert played(session) == ["thank-you-answering", "goodbye"]
    assert heard(session) == ["greeting"]  # only the menu: no question asked
    assert {channel for _, channel in (await answers(lab.engine)).values()} == {"sms"}
    [row] = await call_rows(lab.engine)
    assert row.outcome == "answered"


async def test_sms_reply_between_questions_is_not_asked_again(
    lab: Lab, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The citizen answers q2 by SMS while the call is on q1: the call reads the session
    again before q2, sees it answered, and asks q3."""
    await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    original = VoiceStore.reread
    sent = []

    async def reread(self: VoiceStore, session: VoiceSession) -> VoiceSession:
        now = await original(self, session)
        if now.question == "q2" and not sent:  # the SMS comes in just before this read
            sent.append(await inbox.receive(InboundSms("loopback", "late-1", PHONE, "2")))
            now = await original(self, session)
        return now

    monkeypatch.setattr(VoiceStore, "reread", reread)
    session = await lab.call(Caller.keys("1", "4", "3"))
    assert sent, "the SMS was not sent"
    assert await answers(lab.engine) == {"q1": ("4", "voice"), "q2": ("no", "sms"), "q3": ("3", "voice")}
    assert heard(session) == ["greeting", "q-three-q1", "q-three-q3"]
    [row] = await call_rows(lab.engine)
    assert row.outcome == "completed"


async def test_conflicting_sms_on_the_same_question_is_recorded_once(
    lab: Lab, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SMS answers q1 while the caller is keying q1: the call's write loses the version
    check, reads again, drops its keys for q1 and goes on with q2."""
    await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    original = VoiceStore.write_step
    sent = []

    async def write_step(self: VoiceStore, session: VoiceSession, step: Any, raw: str) -> tuple[bool, bool]:
        if not sent:
            sent.append(await inbox.receive(InboundSms("loopback", "late-2", PHONE, "5")))
        return await original(self, session, step, raw)

    monkeypatch.setattr(VoiceStore, "write_step", write_step)
    session = await lab.call(Caller.keys("1", "4", "1", "2"))
    assert await answers(lab.engine) == {"q1": ("5", "sms"), "q2": ("yes", "voice"), "q3": ("2", "voice")}
    assert heard(session) == ["greeting", "q-three-q1", "q-three-q2", "q-three-q3"]


# -- service requests, agents, status -----------------------------------------------------------


@pytest.mark.parametrize(("key", "kind"), [("2", "service"), ("0", "callback")])
async def test_service_and_agent_store_a_callback_ticket(lab: Lab, key: str, kind: str) -> None:
    session = await lab.call(Caller.keys(key))
    [ticket] = await tickets(lab.engine)
    assert (ticket.kind, ticket.callback, ticket.phone, ticket.status) == (kind, True, PHONE, "open")
    digits = f"1415{ticket.id:06d}"
    assert played(session)[0].split() == [
        "agents-busy",
        "callback-stored",
        "request-recorded",
        *(f"num-{d}" for d in digits),
    ]
    [row] = await call_rows(lab.engine)
    assert (row.outcome, ticket.call_id) == ("callback", row.id)


# The status by reference (option 3) reads service requests: tests/integration/test_ivr_requests.py


# -- outbound -----------------------------------------------------------------------------------


async def test_outbound_records_answers_for_the_campaign(lab: Lab) -> None:
    await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS.replace("slug: three", "slug: other"))
    inquiry_id = await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    [phone] = await make_citizens(lab.engine, 1, start=55)
    campaign_id = await invite(lab.engine, inquiry_id, [phone])
    D = models.table(models.Delivery)
    async with lab.engine.connect() as conn:
        delivery_id = (await conn.execute(select(D.c.id))).scalar_one()
    variables = (
        (names.VAR_CAMPAIGN, str(campaign_id)),
        (names.VAR_DELIVERY, str(delivery_id)),
        (names.VAR_CITIZEN, phone),
    )
    request = OriginateRequest(None, "PJSIP/0910000055@trunk", names.CTX_OUTBOUND, "s", variables=variables)
    assert await lab.sim.calls.originate(request) == 4
    assert await answers(lab.engine) == voice(EXPECTED)
    [row] = await call_rows(lab.engine)
    assert (row.direction, row.campaign_id, row.delivery_id, row.caller, row.outcome) == (
        "out", campaign_id, delivery_id, phone, "completed",
    )  # fmt: skip
    [session] = lab.sim.calls.agi_sessions
    assert played(session)[:2] == ["outbound-intro", "press-star-to-repeat"]


async def test_stale_campaign_variables_do_not_break_the_call(lab: Lab) -> None:
    """Channel variables naming a campaign and delivery that do not exist: the call goes on,
    its record simply carries no campaign."""
    await make_inquiry(lab.engine, yaml_text=THREE_QUESTIONS)
    variables = (
        (names.VAR_CAMPAIGN, "999999"),
        (names.VAR_DELIVERY, "888888"),
        (names.VAR_CITIZEN, "garbage"),
    )
    request = OriginateRequest(None, "PJSIP/0910000056@trunk", names.CTX_OUTBOUND, "s", variables=variables)
    assert await lab.sim.calls.originate(request) == 4
    [row] = await call_rows(lab.engine)
    assert (row.direction, row.campaign_id, row.delivery_id) == ("out", None, None)
    assert row.outcome is not None and row.ended_at is not None
    assert await answers(lab.engine) == {}


async def test_unknown_agi_script_is_refused(lab: Lab) -> None:
    session = await lab.call(Caller.keys("1"), context="other")
    assert session.commands[-1] == "HANGUP"
    assert any(line.startswith("VERBOSE") for line in session.commands)
    assert await call_rows(lab.engine) == []


def test_silence_step_type() -> None:
    assert Caller.keys(None).steps == (Silence(),)


async def test_a_prompt_never_rendered_costs_no_answer(engine: AsyncEngine, settings: Settings) -> None:
    """A question whose audio is missing still collects keys (WAIT FOR DIGIT) and records."""
    from callcenter.sim.citizen import PromptLibrary

    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    library = PromptLibrary(
        missing=set(), exists=lambda path: "q-three-q1" not in path and "rating-hint" not in path
    )
    server = make_agi_server(settings, engine, host="127.0.0.1", port=0)
    async with server:
        citizens = CitizenModel(default=Outcome("answer", caller=Caller.keys(*ANSWERS)))
        config = SimConfig(
            agi_port=server.port, time_scale=0, dialplan=engine_dialplan(), citizens=citizens, prompts=library
        )
        async with Simulator(config) as sim:
            session = await sim.call(Caller.keys("1", *ANSWERS))
    try:
        assert await answers(engine) == voice(EXPECTED)
        assert any(line.startswith("WAIT FOR DIGIT") for line in session.commands)
        [row] = await call_rows(engine)
        assert row.outcome == "completed"
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(models.table(models.Call)))
