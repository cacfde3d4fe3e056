"""The engine's FastAGI side against the recordings: a fake Asterisk plays each transcript's
``<`` lines (environment, replies, the ``HANGUP`` line where it was recorded) and the engine's
``>`` lines must equal the recorded ones byte for byte. Nothing is normalised: FastAGI carries
no ActionIDs or timestamps in the engine's direction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.sim.replay import replay_agi
from callcenter.sim.scripts import RecordedScript
from callcenter.sim.transcript import Transcript
from callcenter.telephony.agi import AgiServer
from callcenter.telephony.stats import RttStats

FIXTURES = Path(__file__).parents[1] / "fixtures" / "asterisk"


@pytest.fixture
def stats() -> RttStats:
    return RttStats()


@pytest.fixture
async def server(stats: RttStats) -> AsyncIterator[AgiServer]:
    srv = AgiServer("127.0.0.1", 0, on_command=stats.record, hangup_grace=0.05)
    await srv.start()
    yield srv
    await srv.close()


async def test_session_1_bytes_and_results(server: AgiServer) -> None:
    script = RecordedScript()
    server.register("ivr", script.session_1)

    replay = await replay_agi(Transcript.load(FIXTURES / "agi-session-1.txt"), "127.0.0.1", server.port)
    await asyncio.wait_for(script.finished.wait(), 5)

    assert replay.actual == replay.expected
    assert replay.extra == b""
    assert script.env["agi_channel"] == "Local/1415@inbound-1415-00000000;2"
    assert script.outcomes == [
        ("answer", None),
        ("verbose", None),
        ("callerid", "0912345678"),
        ("nosuchvar", None),
        ("set", None),
        ("stream", None),
        ("stream-missing", "!AgiCommandFailed"),  # result=-1 endpos=0, no HANGUP follows
        ("get-data-timeout", ""),
        # -1, and the recording shows the HANGUP line only after the next command was sent
        ("get-data-hangup", "!AgiCommandFailed"),
        ("wait-after-hangup", "!AgiDeadChannel"),  # HANGUP then 511 in reply to this command
        ("status", "!AgiDeadChannel"),
        ("bogus", "!AgiInvalidCommand"),
        ("get-data-no-args", "!AgiDeadChannel"),
        ("exec-dead", 0),
        ("wait-dead", "!AgiDeadChannel"),
        ("get-data-dead", "!AgiDeadChannel"),
        ("answer-dead", "!AgiDeadChannel"),
    ]


async def test_session_2_bytes_and_results(server: AgiServer) -> None:
    script = RecordedScript()
    server.register("ivr", script.session_2)

    replay = await replay_agi(Transcript.load(FIXTURES / "agi-session-2.txt"), "127.0.0.1", server.port)
    await asyncio.wait_for(script.finished.wait(), 5)

    assert replay.actual == replay.expected
    assert replay.extra == b""
    assert script.outcomes == [
        ("answer", None),
        ("menu", "3"),
        ("number", "12"),
        ("digit", "9"),  # 200 result=57
        ("say", None),
        ("dial", -1),
        ("dialstatus", "ANSWER"),
        ("wait-hangup", "!AgiCommandFailed"),
        ("answer-dead", "!AgiDeadChannel"),
    ]


async def test_round_trip_times_are_recorded(server: AgiServer, stats: RttStats) -> None:
    script = RecordedScript()
    server.register("ivr", script.session_2)
    await replay_agi(Transcript.load(FIXTURES / "agi-session-2.txt"), "127.0.0.1", server.port)
    await asyncio.wait_for(script.finished.wait(), 5)

    assert stats.count == 9
    assert set(stats.commands()) == {"ANSWER", "GET DATA", "WAIT FOR DIGIT", "SAY DIGITS", "EXEC",
                                     "GET VARIABLE"}  # fmt: skip
    assert stats.p50 is not None and stats.p99 is not None and 0 <= stats.p50 <= stats.p99 < 5
    assert stats.summary()["GET DATA"]["count"] == 2
