"""The simulated channel on its own (no AMI, no call model): given the recorded environment and
the recorded robot's key presses, it answers the recorded commands with exactly the recorded
bytes — nothing normalised."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.sim import Caller, HangUp, Press, Silence
from callcenter.sim.agi_client import SimAgiChannel
from callcenter.sim.core import SimChannel
from callcenter.sim.replay import AgiCommandServer
from callcenter.sim.transcript import Transcript

FIXTURES = Path(__file__).parents[1] / "fixtures" / "asterisk"

ROBOTS = {
    "agi-session-1.txt": Caller((Press("3#7"), Silence(), HangUp())),
    "agi-session-2.txt": Caller((Press("3"), Press("12#"), Press("9"), Silence(), HangUp())),
}


@pytest.mark.parametrize("name", sorted(ROBOTS))
async def test_recorded_replies(name: str) -> None:
    transcript = Transcript.load(FIXTURES / name)
    env = dict(line.split(": ", 1) for line in transcript.turns[0].lines if line)
    channel = SimChannel(env["agi_channel"], env["agi_uniqueid"], "", "inbound-1415", "1415")
    channel.set_caller(env["agi_callerid"], env["agi_calleridname"])
    engine = AgiCommandServer(transcript)
    port = await engine.start()
    try:
        call = SimAgiChannel(channel, list(env.items()), caller=ROBOTS[name])
        await call.run("127.0.0.1", port)
    finally:
        await engine.close()
    assert engine.received == transcript.server_bytes("\n")
    assert call.dead
    assert call.commands == [turn.lines[0] for turn in transcript.client()]
