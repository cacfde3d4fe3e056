"""The dialer on the simulated Asterisk, for tests and the pacing benchmark: a probe on the
simulator's side, a stand-in for the IVR's ``outbound`` script, and a rig wiring them up.

:class:`OriginateProbe` counts what Asterisk would see, independently of the dialer's own
book: every Originate (its ``CC_DELIVERY_ID`` and number), when its call started and ended,
its ``Reason``, how many calls were up at once, and which citizens were dialled twice (a new
Originate while their previous call was still up, or after a call they answered: both bugs;
a new Originate after an unanswered call is a retry). Usage::

    async with sim_rig(settings, engine, redis, CitizenModel(...)) as rig:
        rig.start()                                   # Dialer.run in a task
        ...
    assert rig.probe.max_active <= 60 and rig.probe.dialled_twice() == []
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.settings import Settings
from callcenter.sim import CitizenModel, SimConfig, Simulator, engine_dialplan
from callcenter.sim.calls import OriginateRequest
from callcenter.sim.core import AmiEvent, event
from callcenter.telephony import names
from callcenter.telephony.agi import AgiChannel, AgiError, AgiServer
from callcenter.telephony.ami import AmiClient
from callcenter.voice.dialer import Dialer

CALL = models.table(models.Call)


@dataclass
class Dialled:
    delivery_id: int | None
    number: str
    started: float  # monotonic
    ended: float | None = None
    reason: int | None = None  # the OriginateResponse Reason (4: answered), once ended


class OriginateProbe:
    def __init__(self, sim: Simulator, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.calls: list[Dialled] = []
        self.active = 0
        self.max_active = 0
        self._clock = clock
        original = sim.calls.originate

        async def originate(req: OriginateRequest, outcome: asyncio.Future[int] | None = None) -> int:
            variables = dict(req.variables)
            delivery = variables.get(names.VAR_DELIVERY)
            number = req.channel.partition("/")[2].partition("@")[0]
            entry = Dialled(int(delivery) if delivery and delivery.isdigit() else None, number, self._clock())
            self.calls.append(entry)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                entry.reason = await original(req, outcome)
                return entry.reason
            finally:
                self.active -= 1
                entry.ended = self._clock()

        sim.calls.originate = originate  # type: ignore[method-assign]

    def by_delivery(self) -> dict[int, list[Dialled]]:
        result: dict[int, list[Dialled]] = {}
        for entry in self.calls:
            if entry.delivery_id is not None:
                result.setdefault(entry.delivery_id, []).append(entry)
        return result

    def dialled_twice(self) -> list[str]:
        """Numbers (citizens) dialled again while a call to them was up or after they answered."""
        per_number: dict[str, list[Dialled]] = {}
        for entry in self.calls:
            per_number.setdefault(entry.number, []).append(entry)
        twice = []
        for number, calls in per_number.items():
            calls.sort(key=lambda entry: entry.started)
            for before, after in itertools.pairwise(calls):
                overlap = before.ended is None or after.started < before.ended
                if overlap or before.reason == 4:
                    twice.append(number)
                    break
        return twice

    def start_rate(self, *, skip_s: float = 0.0, window_s: float | None = None) -> tuple[float, int, float]:
        """Originates per second over a window (after ``skip_s`` from the first one):
        (rate, starts counted, seconds measured)."""
        if len(self.calls) < 2:
            return 0.0, len(self.calls), 0.0
        starts = sorted(entry.started for entry in self.calls)
        begin = starts[0] + skip_s
        end = begin + window_s if window_s is not None else starts[-1]
        inside = [t for t in starts if begin <= t <= end]
        if len(inside) < 2:
            return 0.0, len(inside), 0.0
        seconds = inside[-1] - inside[0]
        return (len(inside) - 1) / seconds, len(inside), seconds


Hook = Callable[[AgiChannel, dict[str, str | None]], Awaitable[None]]


class StubOutbound:
    """Stands in for the IVR's ``outbound`` script: opens the Call row the IVR opens (delivery,
    Uniqueid, ``answered_at``), stays on the line ``talk_s`` (or runs ``hook``), hangs up.

    Numbers in ``machines`` play ``[outbound-campaign]`` with AMD hearing a machine: the
    ``CallCenterAMD`` UserEvent, then a hangup before the inquiry (``publish`` is set by
    :func:`sim_rig`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        talk_s: float = 0.5,
        hook: Hook | None = None,
        machines: frozenset[str] = frozenset(),
    ) -> None:
        self.engine = engine
        self.talk_s = talk_s
        self.hook = hook
        self.machines = machines
        self.publish: Callable[[AmiEvent], None] | None = None
        self.seen: list[dict[str, str | None]] = []

    async def __call__(self, call: AgiChannel) -> None:
        wanted = (names.VAR_CAMPAIGN, names.VAR_DELIVERY, names.VAR_CITIZEN)
        variables = {name: await call.get_variable(name) for name in wanted}
        delivery, campaign = variables[names.VAR_DELIVERY], variables[names.VAR_CAMPAIGN]
        if variables[names.VAR_CITIZEN] in self.machines and self.publish is not None:
            amd = [("UserEvent", "CallCenterAMD"), ("Delivery", delivery or ""), ("Campaign", campaign or "")]
            amd += [("Status", "MACHINE"), ("Cause", "LONGGREETING-1500-1500")]
            self.publish(event("UserEvent", "user", amd))
            with contextlib.suppress(AgiError):
                await call.hangup()
            return
        self.seen.append(variables)
        async with self.engine.begin() as conn:
            await conn.execute(
                CALL.insert().values(
                    direction="out",
                    uniqueid=call.env.uniqueid,
                    channel=call.name[:128],
                    caller=(variables[names.VAR_CITIZEN] or "")[:32],
                    campaign_id=int(campaign) if campaign else None,
                    delivery_id=int(delivery) if delivery else None,
                    outcome="answered",
                    answered_at=models.utcnow(),
                )
            )
        if self.hook is not None:
            await self.hook(call, variables)
        else:
            await asyncio.sleep(self.talk_s)
        with contextlib.suppress(AgiError):
            await call.hangup()


@dataclass
class SimRig:
    sim: Simulator
    agi: AgiServer
    ami: AmiClient
    dialer: Dialer
    probe: OriginateProbe
    stub: StubOutbound
    task: asyncio.Task[None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> asyncio.Task[None]:
        """Run the dialer in a task (:meth:`stop` ends it)."""
        self.stopping = asyncio.Event()
        self.task = asyncio.create_task(self.dialer.run(self.stopping), name="dialer")
        return self.task

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            task, self.task = self.task, None
            await task


@asynccontextmanager
async def sim_rig(
    settings: Settings,
    engine: AsyncEngine,
    redis: Redis,
    citizens: CitizenModel,
    *,
    time_scale: float = 1.0,
    stub: StubOutbound | None = None,
    secret: str = "s3cret",
    **dialer_options: float | None,
) -> AsyncIterator[SimRig]:
    """A simulator whose answered campaign calls reach ``stub`` over FastAGI, an AMI client
    on it, and a dialer (not running until :meth:`SimRig.start`). ``settings`` should dial
    ``PJSIP/{number}@trunk``: the simulator decides busy / no answer on trunk channels."""
    stub = stub or StubOutbound(engine)
    agi = AgiServer("127.0.0.1", 0, close_timeout=2)
    agi.register(names.AGI_OUTBOUND, stub)
    await agi.start()
    config = SimConfig(
        agi_port=agi.port, dialplan=engine_dialplan(), citizens=citizens, time_scale=time_scale
    )
    sim = Simulator(config)
    stub.publish = sim.hub.publish
    ami = AmiClient("127.0.0.1", 0, "engine", secret, reconnect_delay=0.2, ping_interval=None)
    try:
        await sim.start()
        ami.port = sim.ami_port
        probe = OriginateProbe(sim)
        options = {"switch_every_s": None, **dialer_options}
        dialer = Dialer(settings, engine, redis, ami, **options)  # type: ignore[arg-type]
        rig = SimRig(sim, agi, ami, dialer, probe, stub)
        try:
            yield rig
        finally:
            await rig.stop()
    finally:
        await ami.close()
        await sim.close()
        await agi.close()
