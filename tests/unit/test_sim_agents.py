"""The simulator's agent phones and waiting callers, against a small FastAGI server of the
test's own: a ``Dial`` with ``U(agent-answered^...)`` reaches a phone that answers after a
delay (running the gosub's AGI on the agent's channel before the bridge, as Asterisk does),
talks and hangs up; phones that are busy, ring out or are not registered; callers who hold,
give up after their patience (while holding or while the phone rings) or press 1 for a
callback; the AMI events of it all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from callcenter.sim import (
    AgentSpec,
    HangUp,
    PromptCaller,
    QueueCaller,
    SimConfig,
    Simulator,
    engine_dialplan,
)
from callcenter.sim.agents import DialRequest
from callcenter.telephony import names
from callcenter.telephony.agi import AgiChannel, AgiHangup, AgiServer
from callcenter.telephony.ami import AmiClient, AmiMessage

pytestmark = pytest.mark.timeout(30)

HOLD = "/prompts/ar/hold-music"
DIAL = "PJSIP/101,10,U(agent-answered^e1^7)"


@dataclass
class Line:
    """A FastAGI server: ``main`` listens for the menu key, then ``pieces`` hold pieces (``1``
    ends the wait when ``escape``), then dials; ``agent_answered`` notes its arguments."""

    pieces: int = 0
    escape: str = ""
    offer: bool = False  # after the pieces, "press 1 to be called back" (then no Dial)
    dial: str = DIAL
    heard: dict[str, object] = field(default_factory=dict)
    answered: list[tuple[str, list[str], str]] = field(default_factory=list)

    async def main(self, call: AgiChannel) -> None:
        try:
            await call.answer()
            self.heard["menu"] = await call.stream_file("/prompts/ar/greeting", "0123456789")
            for n in range(self.pieces):
                key = await call.stream_file(HOLD, self.escape)
                if key:
                    self.heard["key"] = key
                    self.heard["pieces"] = n + 1
                    return
            if self.offer:
                self.heard["offer"] = await call.stream_file("/prompts/ar/callback-keep-place", "1")
                return
            self.heard["dial"] = await call.exec("Dial", self.dial)
            self.heard["status"] = await call.get_variable("DIALSTATUS")
            self.heard["rating"] = await call.get_data("/prompts/ar/rate-call", 2000, 1)
        except AgiHangup:
            self.heard["hung_up"] = True
            self.heard["status"] = await call.get_variable("DIALSTATUS")

    async def agent_answered(self, call: AgiChannel) -> None:
        self.answered.append((call.env.channel, call.env.arguments, call.env.context))


Rig = Callable[..., Awaitable[tuple[Simulator, Line]]]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    opened: list[tuple[Simulator, AgiServer]] = []

    async def build(line: Line | None = None, **config: object) -> tuple[Simulator, Line]:
        line = line or Line()
        agi = AgiServer("127.0.0.1", 0)
        agi.register(names.AGI_MAIN, line.main)
        agi.register(names.AGI_AGENT_ANSWERED, line.agent_answered)
        await agi.start()
        sim = Simulator(SimConfig(agi_port=agi.port, dialplan=engine_dialplan(), **config))  # type: ignore[arg-type]
        await sim.start()
        opened.append((sim, agi))
        return sim, line

    yield build
    for sim, agi in opened:
        await sim.close()
        await agi.close()


def test_dial_arguments_are_read_as_app_dial_reads_them() -> None:
    assert DialRequest.parse(DIAL) == DialRequest("PJSIP/101", 10.0, "agent-answered", ("e1", "7"))
    assert DialRequest.parse("Local/101@agents,10") == DialRequest("Local/101@agents", 10.0)
    assert DialRequest.parse("PJSIP/1&PJSIP/2") == DialRequest("PJSIP/1")


async def test_an_agent_answers_the_gosub_runs_on_their_channel_then_they_talk_and_hang_up(rig: Rig) -> None:
    sim, line = await rig(
        agents={"PJSIP/101": AgentSpec("answer", answer_after_ms=200, talk_ms=500)}, time_scale=0
    )
    events: list[AmiMessage] = []
    async with AmiClient("127.0.0.1", sim.ami_port, "engine", "s3cret", ping_interval=None) as ami:
        for name in ("DialBegin", "DialEnd", "Newexten", "BridgeEnter"):
            ami.on(name, events.append)
        await sim.call(QueueCaller("0", rating="4"))
        await asyncio.sleep(0.05)
    assert line.heard == {"menu": "0", "dial": -1, "status": "ANSWER", "rating": "4"}
    [(channel, arguments, context)] = line.answered
    assert channel.startswith("PJSIP/101-") and arguments == ["e1", "7"] and context == "agent-answered"
    mine = [e for e in events if channel in (e["Channel"], e.get("DestChannel"))]
    kinds = [(e["Event"], e.get("DialStatus") or e.get("Application")) for e in mine]
    assert (
        kinds.index(("DialEnd", "ANSWER"))
        < kinds.index(("Newexten", "AGI"))
        < kinds.index(("Newexten", "Return"))
    )
    assert ("BridgeEnter", None) in kinds[kinds.index(("Newexten", "Return")) :]


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        (AgentSpec("busy", answer_after_ms=10), "BUSY"),
        (AgentSpec("noanswer"), "NOANSWER"),
        (AgentSpec("unavailable"), "CHANUNAVAIL"),
        (AgentSpec("answer", answer_after_ms=20_000), "NOANSWER"),  # answers after the timeout: too late
    ],
)
async def test_a_phone_that_is_busy_rings_out_or_is_not_registered(
    rig: Rig, spec: AgentSpec, status: str
) -> None:
    sim, line = await rig(agents={"PJSIP/101": spec}, time_scale=0)
    await sim.call(QueueCaller("0", rating=None))
    assert (line.heard["dial"], line.heard["status"]) == (0, status)
    assert line.answered == []


async def test_a_phone_may_behave_differently_from_one_call_to_the_next(rig: Rig) -> None:
    plan = [AgentSpec("noanswer"), AgentSpec("answer", answer_after_ms=0, talk_ms=0)]
    sim, line = await rig(
        agent_rule=lambda target: plan.pop(0) if target == "PJSIP/101" else None, time_scale=0
    )
    await sim.call(QueueCaller("0", rating=None))
    first = line.heard["status"]
    await sim.call(QueueCaller("0", rating=None))
    assert (first, line.heard["status"]) == ("NOANSWER", "ANSWER")


async def test_a_caller_gives_up_holding_after_their_patience(rig: Rig) -> None:
    """2 s pieces, a patience of 5 s from the key: the third piece is cut at about 1 s (the
    second, if the machine is slow: virtual time runs 100 times faster than real time here)."""
    sim, line = await rig(Line(pieces=10), time_scale=0.01)
    caller = QueueCaller("0", patience_ms=5000)
    session = await sim.call(caller)
    holds = [c for c in session.commands if "hold-music" in c]
    assert line.heard == {"menu": "0", "hung_up": True, "status": None}
    assert len(holds) in (2, 3) and caller.gave_up and session.dead


async def test_a_caller_who_runs_out_of_patience_while_the_phone_rings_cancels_the_dial(rig: Rig) -> None:
    sim, line = await rig(agents={"PJSIP/101": AgentSpec("answer", answer_after_ms=10_000)}, time_scale=0.01)
    await sim.call(QueueCaller("0", patience_ms=3000))
    assert line.heard == {"menu": "0", "dial": -1, "status": "CANCEL", "hung_up": True}
    assert line.answered == []


@pytest.mark.parametrize("books", [True, False])
async def test_a_caller_presses_1_when_a_callback_is_offered_and_not_before(rig: Rig, books: bool) -> None:
    """Two hold pieces that would take ``1``, then the offer: a caller of a mind to presses 1
    at the offer, never during the music; the others hold on."""
    sim, line = await rig(Line(pieces=2, escape="1", offer=True), time_scale=0)
    caller = QueueCaller("0", books_callback=books, rating=None)
    await sim.call(caller)
    assert line.heard["offer"] == ("1" if books else None) and caller.booked is books
    assert "key" not in line.heard


def test_a_prompt_caller_keys_by_what_plays_using_each_item_once() -> None:
    caller = PromptCaller({"greeting": "0", "hold-music": ["7", None, HangUp(50)]})
    prompts = ["/p/greeting", "/p/hold-music", "/p/hold-music", "/p/hold-music", "/p/greeting"]
    steps = [
        caller.react(n, command=f"STREAM FILE {p} 0123", duration_ms=1000, now_ms=0)
        for n, p in enumerate(prompts)
    ]
    assert [type(s).__name__ for s in steps] == ["Press", "Press", "Silence", "HangUp", "Silence"]
    assert (steps[0].keys, steps[1].keys) == ("0", "7")  # type: ignore[union-attr]
