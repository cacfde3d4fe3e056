"""The simulator against the recordings: driven by each transcript's client side (the recorded
actions on AMI, the recorded commands on FastAGI), it must send the recorded ``<`` lines byte
for byte, after :func:`callcenter.sim.transcript.normalise_ami` / ``normalise_agi``, which
replace only values that depend on the clock, the socket or a random number: Uniqueid/Linkedid
epoch seconds (not the counter after the dot), Ping Timestamp, EventTV/SessionTV, SessionID,
socket ports, Uptime/LastReload, non-zero LastPause/LoginTime, Duration, CommandId,
BridgeUniqueid, agi_threadid and the FastAGI port of ``agi://`` URLs. ActionIDs need no
normalising: the recorded actions are sent as they are.

The simulated citizen is configured like the recorded robot (``capture-extensions.conf``):
session 1 presses 3#7 during the first prompt, stays silent, then hangs up; session 2 presses
3, 12#, 9, stays silent, and hangs up while the IVR waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.sim import (
    Caller,
    CitizenModel,
    HangUp,
    Outcome,
    Press,
    Silence,
    SimConfig,
    Simulator,
)
from callcenter.sim.replay import AgiCommandServer, drive_ami
from callcenter.sim.transcript import Transcript, ami_action_bytes, normalise_agi, normalise_ami

FIXTURES = Path(__file__).parents[1] / "fixtures" / "asterisk"

ROBOT_1 = Caller(
    (Press("3#7"), Silence("10"), HangUp()),
    number="0912345678",
    prelude=(("NoOp", "robot"), ("Wait", "1.5")),
)
ROBOT_2 = Caller(
    (Press("3"), Press("12#", wait_before_s="1.5"), Press("9", wait_before_s="1.5"),
     Silence("8"), HangUp()),
    number="+218912345678",
)  # fmt: skip


def load(name: str) -> Transcript:
    return Transcript.load(FIXTURES / name)


async def start(agi: AgiCommandServer, robot: Caller, **config: object) -> Simulator:
    port = await agi.start()
    citizens = CitizenModel({robot.number: Outcome(caller=robot)})
    sim = Simulator(SimConfig(agi_port=port, citizens=citizens, time_scale=0, **config))  # type: ignore[arg-type]
    await sim.start()
    return sim


def split_runs(runs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [normalise_ami(e) for e, _ in runs], [normalise_ami(a) for _, a in runs]


async def test_session_1_ami_and_agi() -> None:
    agi = AgiCommandServer(load("agi-session-1.txt"))
    agi.release.clear()  # the AGI channel is still up when CoreShowChannels runs
    sim = await start(agi, ROBOT_1)
    try:
        runs = await drive_ami(load("ami-session-1.txt"), "127.0.0.1", sim.ami_port)
        agi.release.set()
        await asyncio.wait_for(agi.finished.wait(), 10)
    finally:
        await agi.close()
        await sim.close()
    expected, actual = split_runs(runs)
    for want, got in zip(expected, actual, strict=True):
        assert got == want
    expected_agi = load("agi-session-1.txt").server_bytes("\n").decode()
    assert normalise_agi(agi.received.decode()) == normalise_agi(expected_agi)


def answer_phase(text: str) -> tuple[str, list[str], str]:
    """Split a session-2 run at the answer phase: after DialBegin, before the first DTMF."""
    messages = text.split("\n\n")
    begin = next(i for i, m in enumerate(messages) if m.startswith("Event: DialBegin")) + 1
    end = next(i for i, m in enumerate(messages) if m.startswith("Event: DTMFBegin"))
    return "\n\n".join(messages[:begin]), sorted(messages[begin:end]), "\n\n".join(messages[end:])


async def test_session_2_ami_and_agi() -> None:
    """Asterisk's order of the answer-phase events differs between the two recordings of the
    same dialplan (thread timing: session 1 gives Newstate, Newstate, DeviceStateChange x2,
    DialEnd, OriginateResponse; session 2 interleaves them). The simulator follows session 1,
    so here that phase is compared as a sorted list of messages; everything else in order."""
    agi = AgiCommandServer(load("agi-session-2.txt"))
    sim = await start(agi, ROBOT_2, first_uniqueid=4, first_channel=2)
    try:
        # session 1 left agent101 paused in queue "services": set that up on another session
        setup = Transcript.parse(
            "> Action: Login\nUsername: engine\nSecret: s3cret\nEvents: off\n"
            "> Action: QueueAdd\nQueue: services\nInterface: Local/101@agents\n"
            "MemberName: agent101\nPenalty: 0\nPaused: false\n"
            "> Action: QueuePause\nQueue: services\nInterface: Local/101@agents\nPaused: true\n"
            "Reason: lunch\n"
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
        for turn in setup.turns:
            writer.write(ami_action_bytes(turn.lines))
        await reader.readline()
        for _ in range(3):
            await reader.readuntil(b"\r\n\r\n")
        writer.close()
        runs = await drive_ami(load("ami-session-2.txt"), "127.0.0.1", sim.ami_port)
        await asyncio.wait_for(agi.finished.wait(), 10)
    finally:
        await agi.close()
        await sim.close()
    expected, actual = split_runs(runs)
    assert len(actual) == len(expected) == 2
    assert actual[0] == expected[0]
    assert answer_phase(actual[1]) == answer_phase(expected[1])
    expected_agi = load("agi-session-2.txt").server_bytes("\n").decode()
    assert normalise_agi(agi.received.decode()) == normalise_agi(expected_agi)


@pytest.fixture
async def plain_sim() -> AsyncIterator[Simulator]:
    sim = Simulator(SimConfig(time_scale=0, first_uniqueid=2, first_channel=1))
    await sim.start()
    yield sim
    await sim.close()


async def test_unknown_action_and_missing_context_alone(plain_sim: Simulator) -> None:
    """The deterministic exchanges of session 1 on their own, without the answered call: every
    message the simulator sends is, once normalised, one of the recorded messages."""
    recorded = load("ami-session-1.txt")
    wanted = {"Login", "Originate", "NoSuchAction", "Logoff"}
    turns = [t for t in recorded.turns if t.direction == ">" and t.lines[0][8:] in wanted]
    turns = [t for t in turns if "Local/1415" not in "".join(t.lines)]
    assert [t.lines[1] for t in turns] == ["ActionID: a1", "ActionID: o2", "ActionID: x1",
                                           "ActionID: a9", "ActionID: z1"]  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", plain_sim.ami_port)
    banner = await reader.readline()
    assert banner == b"Asterisk Call Manager/11.0.0\r\n"
    got: list[str] = []
    for turn in turns:
        writer.write(ami_action_bytes(turn.lines))
        count = {"a1": 3, "o2": 9, "x1": 2, "a9": 1, "z1": 1}[turn.lines[1][10:]]
        for _ in range(count):
            got.append((await reader.readuntil(b"\r\n\r\n")).decode().replace("\r\n", "\n"))
    assert await reader.read() == b""  # Logoff closes the connection
    text = normalise_ami("".join(got))
    server = normalise_ami("\n".join(recorded.server_lines()))
    for message in text.split("\n\n"):
        if message:
            assert message in server
