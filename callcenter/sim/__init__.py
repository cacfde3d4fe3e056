"""An Asterisk simulator for scale tests and a no-server demo, on 127.0.0.1 only.

It speaks AMI (:mod:`.ami_server`) and FastAGI (:mod:`.agi_client`) byte for byte like the
recorded Asterisk 22 (``tests/fixtures/asterisk``); scripted citizens (:mod:`.citizen`) decide
who answers and which keys they press, callers who wait for an agent (:mod:`.waiting`) hold,
give up or book a callback, and agent phones behind ``Dial`` (:mod:`.agents`) answer, talk,
decline or ring out, running Dial's ``U()`` gosub as Asterisk does. Usage::

    config = SimConfig(agi_port=agi_server.port, time_scale=0)
    async with Simulator(config) as sim:
        ami = AmiClient("127.0.0.1", sim.ami_port, "engine", "s3cret")   # the dialer's view
        await sim.call(Caller.keys("3", "12#"))                          # an inbound caller
        await sim.run_callers([Caller.keys("1")] * 500, concurrency=100)  # load
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable

from callcenter.sim.agi_client import SimAgiChannel
from callcenter.sim.ami_server import AmiServer
from callcenter.sim.calls import Calls
from callcenter.sim.citizen import (
    Caller,
    CitizenModel,
    HangUp,
    Outcome,
    Press,
    PromptLibrary,
    Script,
    Silence,
)
from callcenter.sim.config import AgentSpec, ContextSpec, SimConfig, engine_dialplan
from callcenter.sim.core import SimAsterisk, SimClock
from callcenter.sim.queues import Queues
from callcenter.sim.waiting import PromptCaller, QueueCaller

__all__ = [
    "AgentSpec",
    "Caller",
    "CitizenModel",
    "ContextSpec",
    "HangUp",
    "Outcome",
    "Press",
    "PromptCaller",
    "PromptLibrary",
    "QueueCaller",
    "Script",
    "Silence",
    "SimConfig",
    "Simulator",
    "engine_dialplan",
]


def _loopback(host: str) -> None:
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the simulator only talks to loopback addresses, not {host!r}")


class Simulator:
    """The AMI server plus inbound callers; every task it starts stops with :meth:`close`."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        _loopback(self.config.agi_host)
        self.hub = SimAsterisk(
            SimClock(self.config.time_scale, self.config.wall),
            first_uniqueid=self.config.first_uniqueid,
            first_channel=self.config.first_channel,
        )
        self.queues = Queues(self.hub, self.config.queues)
        self.calls = Calls(self.hub, self.config, self.queues)
        self.ami = AmiServer(self.hub, self.calls, self.queues, self.config)

    async def start(self, *, ami_host: str = "127.0.0.1", ami_port: int = 0) -> None:
        _loopback(ami_host)
        await self.ami.start(ami_host, ami_port)

    @property
    def ami_port(self) -> int:
        return self.ami.port

    async def call(
        self, caller: Script | None = None, *, context: str = "inbound-1415", exten: str = "1415"
    ) -> SimAgiChannel:
        """One inbound call through the context's AGI; returns when the engine hangs up."""
        work = self.calls.inbound(caller or Caller(), context=context, exten=exten)
        result: SimAgiChannel = await self.hub.spawn(work, f"inbound-{exten}")
        return result

    async def run_callers(
        self, callers: Iterable[Script], *, concurrency: int | None = None
    ) -> list[SimAgiChannel]:
        """Place inbound calls, at most ``concurrency`` at a time; results in input order."""
        limit = asyncio.Semaphore(concurrency or 1_000_000)

        async def one(caller: Script) -> SimAgiChannel:
            async with limit:
                return await self.call(caller)

        return list(await asyncio.gather(*(one(caller) for caller in callers)))

    def drop_ami_connections(self) -> None:
        """Cut every AMI client off (tests the dialer's reconnection)."""
        self.ami.drop_sessions()

    async def wait_idle(self) -> None:
        await self.hub.wait_idle()

    async def close(self) -> None:
        await self.ami.close()
        await self.hub.close()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
