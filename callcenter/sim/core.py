"""The simulated Asterisk's shared state: clock, channels, counters and the event bus.

Events are rendered to bytes when published, in the header order Asterisk 22 uses (taken from
the recordings). ``deferred`` events imitate Asterisk's asynchronous (stasis) delivery: they go
out once the current burst of work yields, e.g. after the responses to pipelined actions —
which is where the recordings show them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
CID_PRES = "0 (Presentation Allowed, Not Screened)"
Pairs = list[tuple[str, str]]


class SimClock:
    """Virtual durations (prompt lengths, waits) scaled to real sleeps; 0 means no sleeping."""

    def __init__(self, time_scale: float = 1.0, wall: Callable[[], float] = time.time) -> None:
        self.time_scale = time_scale
        self.wall = wall
        self._origin = time.monotonic()

    async def sleep_ms(self, ms: float) -> None:
        if ms > 0 and self.time_scale > 0:
            await asyncio.sleep(ms / 1000 * self.time_scale)

    def now_ms(self) -> float:
        """Virtual milliseconds since the clock began (real ones when nothing is scaled):
        what a caller's patience is counted in."""
        real_ms = (time.monotonic() - self._origin) * 1000
        return real_ms / self.time_scale if self.time_scale > 0 else real_ms


@dataclass
class SimChannel:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    priority: int = 1
    state: int = 0
    caller_num: str = "<unknown>"
    caller_name: str = "<unknown>"
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"
    language: str = "en"
    account: str = ""
    application: str = ""
    app_data: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    hung_up: bool = False

    def block(self, prefix: str = "") -> Pairs:
        """The channel snapshot headers every channel event carries (``Dest``/``LocalOne``...)."""
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (f"{prefix}CallerIDNum", self.caller_num),
            (f"{prefix}CallerIDName", self.caller_name),
            (f"{prefix}ConnectedLineNum", self.connected_num),
            (f"{prefix}ConnectedLineName", self.connected_name),
            (f"{prefix}Language", self.language),
            (f"{prefix}AccountCode", self.account),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]

    def set_caller(self, num: str, name: str) -> None:
        self.caller_num, self.caller_name = num or "<unknown>", name or "<unknown>"

    def set_connected(self, num: str, name: str) -> None:
        self.connected_num, self.connected_name = num or "<unknown>", name or "<unknown>"

    def lookup(self, name: str) -> str | None:
        """``GET VARIABLE``: channel variables, a few functions and builtins."""
        match = re.fullmatch(r"CALLERID\((\w+)\)", name, re.IGNORECASE)
        if match:
            part = match.group(1).lower()
            known = self.caller_num != "<unknown>"
            if part in ("num", "number"):
                return self.caller_num if known else None
            if part == "name":
                return self.caller_name if self.caller_name != "<unknown>" else None
            if part == "all":
                return f'"{self.caller_name}" <{self.caller_num}>' if known else None
            return None
        if name in self.variables:
            return self.variables[name]
        builtins = {"CHANNEL": self.name, "UNIQUEID": self.uniqueid, "EXTEN": self.exten,
                    "CONTEXT": self.context, "PRIORITY": str(self.priority)}  # fmt: skip
        return builtins.get(name)


@dataclass(frozen=True, slots=True)
class AmiEvent:
    name: str
    category: str  # the Privilege class: call, dialplan, agi, dtmf, agent, system, security
    data: bytes


def render(pairs: Iterable[tuple[str, str]]) -> bytes:
    return ("".join(f"{key}: {value}\r\n" for key, value in pairs) + "\r\n").encode()


def event(name: str, category: str, *parts: Pairs, privilege: bool = True) -> AmiEvent:
    pairs: Pairs = [("Event", name)]
    if privilege:
        pairs.append(("Privilege", f"{category},all"))
    for part in parts:
        pairs.extend(part)
    return AmiEvent(name, category, render(pairs))


Listener = Callable[[AmiEvent], None]


class SimAsterisk:
    """What every part of the simulator shares; one per :class:`callcenter.sim.Simulator`."""

    def __init__(self, clock: SimClock, *, first_uniqueid: int = 0, first_channel: int = 0) -> None:
        self.clock = clock
        self.started = clock.wall()
        self.channels: dict[str, SimChannel] = {}
        self.listeners: list[Listener] = []
        self._uniqueid = first_uniqueid
        self._sequence: dict[str, int] = {}
        self._first_channel = first_channel
        self._deferred: list[AmiEvent] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- identifiers ----------------------------------------------------------------------------

    def new_uniqueid(self) -> str:
        value = f"{int(self.clock.wall())}.{self._uniqueid}"
        self._uniqueid += 1
        return value

    def new_sequence(self, tech: str) -> str:
        number = self._sequence.get(tech, self._first_channel)
        self._sequence[tech] = number + 1
        return f"{number:08x}"

    def new_channel(self, name: str, *, linkedid: str | None, **fields: Any) -> SimChannel:
        uniqueid = self.new_uniqueid()
        channel = SimChannel(name, uniqueid, linkedid or uniqueid, **fields)
        self.channels[name] = channel
        return channel

    def remove(self, channel: SimChannel) -> None:
        channel.hung_up = True
        self.channels.pop(channel.name, None)

    # -- events ---------------------------------------------------------------------------------

    def publish(self, item: AmiEvent, *, deferred: bool = False) -> None:
        if deferred:
            self._deferred.append(item)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
            return
        for listener in list(self.listeners):
            listener(item)

    def _flush(self) -> None:
        self._flush_scheduled = False
        items, self._deferred = self._deferred, []
        for item in items:
            self.publish(item)

    def channel_event(self, name: str, channel: SimChannel, *extra: Pairs, **kw: Any) -> None:
        category = kw.pop("category", "call")
        self.publish(event(name, category, channel.block(), *extra), **kw)

    def device_state(self, device: str, state: str, *, deferred: bool = False) -> None:
        pairs = [("Device", device), ("State", state)]
        self.publish(event("DeviceStateChange", "call", pairs), deferred=deferred)

    # -- tasks ----------------------------------------------------------------------------------

    def spawn(self, work: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("simulator task %s failed", task.get_name(), exc_info=exc)

    async def wait_idle(self) -> None:
        """Until every call placed so far has ended."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
