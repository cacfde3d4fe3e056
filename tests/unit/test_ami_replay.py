"""The engine's AMI client against the recordings: a fake Asterisk plays each transcript's ``<``
lines and every action the client sends must equal the recorded one byte for byte — header
order, CRLFs, the closing empty line — except ActionID values, which each client picks itself:
the fake maps every recorded ActionID to the one the client used (and plays the recorded
responses and events back with the client's ActionIDs)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from callcenter.sim.replay import AmiReplayServer
from callcenter.sim.transcript import Transcript
from callcenter.telephony.ami import AmiActionError, AmiClient, AmiMessage

FIXTURES = Path(__file__).parents[1] / "fixtures" / "asterisk"


class Events(list[AmiMessage]):
    """Collects events; ``until`` waits for ``count`` of them to match."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def __call__(self, event: AmiMessage) -> None:
        self.append(event)
        self.changed.set()

    async def until(self, predicate: Callable[[AmiMessage], bool], count: int = 1) -> None:
        async with asyncio.timeout(5):
            while sum(1 for event in self if predicate(event)) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_session_1() -> None:
    fake = AmiReplayServer(Transcript.load(FIXTURES / "ami-session-1.txt"))
    port = await fake.start()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", ping_interval=None)
    events = Events()
    hangups: list[str] = []

    async def on_hangup(event: AmiMessage) -> None:
        await asyncio.sleep(0)
        hangups.append(event["Channel"])

    client.on("*", events)
    client.on("Hangup", on_hangup)
    try:
        await client.connect()
        assert client.connected
        pong, o1 = await asyncio.gather(
            client.ping(),
            client.originate(
                channel="Local/1415@inbound-1415", context="citizen-robot", exten="s",
                caller_id="Citizen <0912345678>", variables={"DIGITS": "3#7"}, timeout_ms=30000,
            ),
        )  # fmt: skip
        assert pong["Ping"] == "Pong"
        await events.until(lambda e: e.event == "AGIExecEnd", 17)
        answered = next(e for e in events if e.event == "OriginateResponse")
        assert answered.action_id == o1 and answered["Reason"] == "4"

        o2 = await client.originate(
            channel="Local/999@nosuchcontext", context="citizen-robot", exten="s", timeout_ms=5000
        )
        await events.until(lambda e: e.event == "OriginateResponse", 2)
        failed = [e for e in events if e.event == "OriginateResponse"][1]
        assert failed.action_id == o2 and failed["Response"] == "Failure"
        assert failed["Reason"] == "0"

        queue = "services"
        member = {"Queue": queue, "Interface": "Local/101@agents"}
        results = await asyncio.gather(
            client.send_action({"Action": "QueueAdd", **member, "MemberName": "agent101",
                                "Penalty": "0", "Paused": "false"}),
            client.send_action({"Action": "QueuePause", **member, "Paused": "true",
                                "Reason": "lunch"}),
            client.send_list({"Action": "QueueStatus"}),
            client.send_list({"Action": "CoreShowChannels"}),
            client.send_action({"Action": "NoSuchAction"}),
            client.send_action({"Action": "Login", "Username": "engine", "Secret": "wrong"}),
            return_exceptions=True,
        )  # fmt: skip
        added, paused, status, channels, unknown, relogin = results
        assert isinstance(added, AmiMessage) and added["Message"] == "Added interface to queue"
        assert isinstance(paused, AmiMessage) and paused.success
        assert [m.event for m in status] == [None, "QueueParams", "QueueMember",  # type: ignore[union-attr]
                                             "QueueStatusComplete"]  # fmt: skip
        assert channels[1]["Application"] == "Wait"  # type: ignore[index]
        assert isinstance(unknown, AmiActionError)
        assert "Invalid/unknown command: NoSuchAction" in str(unknown)
        assert unknown.response.response == "Error"
        assert isinstance(relogin, AmiMessage) and relogin["Message"] == "Already authenticated"
        await events.until(lambda e: e.event == "RequestBadFormat")
    finally:
        await client.close()
        await asyncio.wait_for(fake.done.wait(), 5)
        await fake.close()

    replay = fake.replays[0]
    assert len(replay.actual) == 11
    assert replay.actual == replay.expected
    assert replay.extra == b""
    assert hangups == ["Local/1415@inbound-1415-00000000;1", "Local/999@nosuchcontext-00000001;2",
                       "Local/999@nosuchcontext-00000001;1"]  # fmt: skip
    assert {e.event for e in events} >= {"FullyBooted", "SuccessfulAuth", "Newchannel", "DTMFEnd"}


async def test_session_2_with_event_filter() -> None:
    fake = AmiReplayServer(Transcript.load(FIXTURES / "ami-session-2.txt"))
    port = await fake.start()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", events="call,agent,dtmf",
                       ping_interval=None)  # fmt: skip
    digits = Events()
    client.on("DTMFEnd", digits)
    try:
        await client.connect()
        await client.originate(
            channel="Local/1415@inbound-1415", context="citizen-robot", exten="s",
            caller_id="Citizen <+218912345678>", variables={"HOLD": "8"}, timeout_ms=30000,
        )  # fmt: skip
        await asyncio.wait_for(fake.played.wait(), 5)
        await digits.until(lambda event: True, 5)
    finally:
        await client.close(logoff=False)  # the recording stops before any Logoff
        await asyncio.wait_for(fake.done.wait(), 5)
        await fake.close()
    replay = fake.replays[0]
    assert replay.actual == replay.expected and len(replay.actual) == 2
    assert [event["Digit"] for event in digits] == ["3", "1", "2", "#", "9"]


async def test_recorded_action_bytes_are_exact() -> None:
    """The byte form of one action, spelled out (ActionID included, when given)."""
    fake = AmiReplayServer(Transcript.load(FIXTURES / "ami-session-2.txt"))
    port = await fake.start()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", events="call,agent,dtmf",
                       ping_interval=None)  # fmt: skip
    try:
        await client.connect()
        await client.originate(
            channel="Local/1415@inbound-1415", context="citizen-robot", exten="s",
            caller_id="Citizen <+218912345678>", variables={"HOLD": "8"}, timeout_ms=30000,
            action_id="o1",
        )  # fmt: skip
        await asyncio.wait_for(fake.played.wait(), 5)
    finally:
        await client.close(logoff=False)
        await asyncio.wait_for(fake.done.wait(), 5)
        await fake.close()
    assert fake.replays[0].actual[1] == (
        b"Action: Originate\r\nActionID: o1\r\nChannel: Local/1415@inbound-1415\r\n"
        b"Context: citizen-robot\r\nExten: s\r\nPriority: 1\r\n"
        b"CallerID: Citizen <+218912345678>\r\nVariable: HOLD=8\r\nTimeout: 30000\r\n"
        b"Async: true\r\n\r\n"
    )


@pytest.mark.parametrize("name", ["ami-session-1.txt", "ami-session-2.txt"])
def test_transcripts_parse(name: str) -> None:
    transcript = Transcript.load(FIXTURES / name)
    assert transcript.turns[0].lines[0] == "Action: Login"
    assert transcript.server_lines()[0] == "Asterisk Call Manager/11.0.0"
