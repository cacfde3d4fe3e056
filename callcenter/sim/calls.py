"""Call flows of the simulated Asterisk: Originate (Local and trunk channels), inbound calls,
the dialplan around ``AGI()``, and ``Dial`` to an agent — emitting the events, in the order
and format, of ``ami-session-1.txt`` (Local originate, AGI, DTMF, hangup, missing context)
and ``ami-session-2.txt`` (Dial to ``Local/101@agents``, bridge, queue member status).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from dataclasses import dataclass

from callcenter.sim.agi_client import AgiObserver, SimAgiChannel, run_app
from callcenter.sim.citizen import (
    CAUSES,
    REASONS,
    Outcome,
    Script,
    Step,
    cause_text,
    robot_apps,
)
from callcenter.sim.config import ContextSpec, SimConfig
from callcenter.sim.core import CID_PRES, Pairs, SimAsterisk, SimChannel, event
from callcenter.sim.queues import Queues

log = logging.getLogger(__name__)


def parse_callerid(text: str) -> tuple[str, str]:
    """``'Citizen <0912345678>'`` → ``('0912345678', 'Citizen')``; a bare number has no name."""
    match = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', text)
    if match:
        return match.group(2), match.group(1)
    return text.strip(), ""


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    action_id: str | None
    channel: str
    context: str
    exten: str
    priority: int = 1
    variables: tuple[tuple[str, str], ...] = ()
    caller_id: str = ""
    timeout_ms: int = 30000


class Calls:
    """Runs every simulated call as a task of the shared :class:`SimAsterisk`."""

    def __init__(self, hub: SimAsterisk, config: SimConfig, queues: Queues) -> None:
        self.hub, self.config, self.queues = hub, config, queues
        self.agi_sessions: list[SimAgiChannel] = []
        self._outcomes: dict[int, asyncio.Future[int] | None] = {}

    # -- helpers --------------------------------------------------------------------------------

    def _hangup(self, channel: SimChannel, cause: int = 16) -> None:
        extra = [("Cause", str(cause)), ("Cause-txt", cause_text(cause))]
        self.hub.channel_event("Hangup", channel, extra)
        self.hub.remove(channel)

    def _request(self, name: str, channel: SimChannel, cause: int = 16) -> None:
        self.hub.channel_event(name, channel, [("Cause", str(cause))])

    def _newexten(self, channel: SimChannel, app: str, data: str) -> None:
        channel.application, channel.app_data = app, data
        extra = [("Extension", channel.exten), ("Application", app), ("AppData", data)]
        self.hub.channel_event("Newexten", channel, extra, category="dialplan")

    def _set_var(self, channel: SimChannel, name: str, value: str) -> None:
        channel.variables[name] = value
        extra = [("Variable", name), ("Value", value)]
        self.hub.channel_event("VarSet", channel, extra, category="dialplan")

    def _callerid(self, channel: SimChannel, num: str, name: str, connected: bool = True) -> None:
        channel.set_caller(num, name)
        self.hub.channel_event("NewCallerid", channel, [("CID-CallingPres", CID_PRES)])
        if connected:
            channel.set_connected(num, name)
        self.hub.channel_event("NewConnectedLine", channel)

    def _state(self, channel: SimChannel, state: int) -> None:
        channel.state = state
        self.hub.channel_event("Newstate", channel)

    def _local_bridge(self, one: SimChannel, two: SimChannel) -> None:
        tail = [("Context", two.context), ("Exten", two.exten), ("LocalOptimization", "Yes")]
        self.hub.publish(event("LocalBridge", "call", one.block("LocalOne"), two.block("LocalTwo"), tail))

    def _dial_end(self, caller: SimChannel, dest: SimChannel, status: str) -> None:
        pairs = [caller.block(), dest.block("Dest"), [("DialStatus", status)]]
        self.hub.publish(event("DialEnd", "call", *pairs))

    def _originate_response(self, req: OriginateRequest, reason: int, **fields: str) -> None:
        num, name = parse_callerid(req.caller_id) if req.caller_id else ("", "")
        pairs: Pairs = [("ActionID", req.action_id)] if req.action_id else []
        pairs += [
            ("Response", "Success" if reason == 4 else "Failure"),
            ("Channel", fields.get("channel", req.channel)), ("Context", req.context),
            ("Exten", req.exten), ("Reason", str(reason)),
            ("Uniqueid", fields.get("uniqueid", "<unknown>")),
            ("CallerIDNum", num or "<unknown>"), ("CallerIDName", name or "<unknown>"),
        ]  # fmt: skip
        self.hub.publish(event("OriginateResponse", "call", pairs))
        waiting = self._outcomes.get(id(req))
        if waiting is not None and not waiting.done():
            waiting.set_result(reason)

    # -- Originate ------------------------------------------------------------------------------

    async def originate(self, req: OriginateRequest, outcome: asyncio.Future[int] | None = None) -> int:
        """Place the call; returns the OriginateResponse Reason (4 = answered) once the call
        ended. ``outcome`` gets the Reason as soon as it is known (a synchronous Originate)."""
        self._outcomes[id(req)] = outcome
        try:
            return await self._originate(req)
        finally:
            self._outcomes.pop(id(req), None)
            if outcome is not None and not outcome.done():
                outcome.set_result(0)

    async def _originate(self, req: OriginateRequest) -> int:
        tech, _, data = req.channel.partition("/")
        if tech.lower() == "local":
            return await self._local(req, data)
        return await self._trunk(req, tech, data)

    async def _local(self, req: OriginateRequest, data: str) -> int:
        exten, _, context = data.split("/", 1)[0].partition("@")
        context = context or "default"
        base = f"Local/{exten}@{context}-{self.hub.new_sequence('Local')}"
        fields = {"context": context, "exten": exten}
        c1 = self.hub.new_channel(f"{base};1", linkedid=None, **fields)
        c2 = self.hub.new_channel(f"{base};2", linkedid=c1.uniqueid, state=4, **fields)
        self.hub.channel_event("Newchannel", c1)
        self.hub.channel_event("Newchannel", c2)
        self._newexten(c1, "AppDial2", "(Outgoing Line)")
        device = f"Local/{exten}@{context}"
        spec = self.config.dialplan.get(context)
        if spec is None:  # as recorded for Local/999@nosuchcontext
            self._hangup(c2, 0)
            self._originate_response(req, 0)
            self._hangup(c1, 0)
            self.hub.device_state(device, "INVALID")
            self.hub.device_state(device, "INVALID")
            return 0
        num, name = parse_callerid(req.caller_id) if req.caller_id else ("", "")
        for leg in (c1, c2):
            for key, value in req.variables:
                self._set_var(leg, key, value)
            if req.caller_id:  # ;2 has the connected line already when its caller id changes
                if leg is c2:
                    c2.set_connected(num, name)
                self._callerid(leg, num, name, connected=leg is c1)
        bridge = [("Context", context), ("Exten", exten), ("LocalOptimization", "Yes")]
        self.hub.publish(event("LocalBridge", "call", c1.block("LocalOne"), c2.block("LocalTwo"), bridge))
        self.hub.publish(event("DialBegin", "call", c1.block("Dest"), [("DialString", data)]))
        for priority, (app, app_data) in enumerate(spec.before, start=1):
            c2.priority = priority
            self._newexten(c2, app, app_data)
        self._state(c2, 6)
        self._state(c1, 6)
        self.hub.device_state(device, "INUSE")
        self.hub.device_state(device, "INUSE")
        dial_end = [("DialStatus", "ANSWER")]
        self.hub.publish(event("DialEnd", "call", c1.block("Dest"), dial_end))
        outcome = self.config.citizens.decide(num or exten)
        c1.context, c1.exten, c1.priority = req.context, req.exten, req.priority
        for index, (app, app_data) in enumerate(outcome.caller.prelude):
            c1.priority = req.priority + index
            self._newexten(c1, app, app_data)
        self._originate_response(req, 4, channel=c1.name, uniqueid=c1.uniqueid)
        observer = CallObserver(self, c2, c1, device)
        await self._agi(c2, spec, outcome.caller, observer, "Local", before=False)
        return 4

    async def _trunk(self, req: OriginateRequest, tech: str, data: str) -> int:
        number, _, endpoint = data.partition("@")
        endpoint = endpoint or "trunk"
        outcome = self.config.citizens.decide(number)
        name = f"{tech}/{endpoint}-{self.hub.new_sequence(tech)}"
        ch = self.hub.new_channel(name, linkedid=None, context=req.context, exten=req.exten)
        self.hub.channel_event("Newchannel", ch)
        for key, value in req.variables:
            self._set_var(ch, key, value)
        if req.caller_id:
            self._callerid(ch, *parse_callerid(req.caller_id))
        self._state(ch, 5)
        if outcome.kind == "noanswer":
            await self.hub.clock.sleep_ms(req.timeout_ms)
        else:
            await self.hub.clock.sleep_ms(outcome.after_ms)
        if outcome.kind != "answer":
            self._hangup(ch, CAUSES[outcome.kind])
            self._originate_response(req, REASONS[outcome.kind])
            return REASONS[outcome.kind]
        self._state(ch, 6)
        self._originate_response(req, 4, channel=ch.name, uniqueid=ch.uniqueid)
        ch.priority = req.priority
        spec = self.config.dialplan.get(req.context)
        if spec is None:
            log.warning("simulated dialplan has no context %r; hanging up", req.context)
            self._hangup(ch)
            return 4
        observer = CallObserver(self, ch, None, None)
        await self._agi(ch, spec, outcome.caller, observer, tech, before=True)
        return 4

    async def inbound(
        self, caller: Script, *, context: str = "inbound-1415", exten: str = "1415"
    ) -> SimAgiChannel:
        """A citizen dials in (no AMI involved): PJSIP channel → the context's AGI."""
        spec = self.config.dialplan[context]
        name = f"PJSIP/citizen-{self.hub.new_sequence('PJSIP')}"
        ch = self.hub.new_channel(name, linkedid=None, context=context, exten=exten, state=4)
        ch.set_caller(caller.number, caller.name)
        ch.set_connected("", "")
        self.hub.channel_event("Newchannel", ch)
        observer = CallObserver(self, ch, None, None)
        return await self._agi(ch, spec, caller, observer, "PJSIP", before=True, dnid=exten)

    # -- the AGI leg ----------------------------------------------------------------------------

    async def _agi(
        self,
        ch: SimChannel,
        spec: ContextSpec,
        caller: Script,
        observer: CallObserver,
        tech: str,
        *,
        before: bool,
        dnid: str = "unknown",
    ) -> SimAgiChannel:
        """Run the context from ``ch.priority`` (``before``: its applications first) to AGI."""
        if before:
            start = ch.priority
            for offset, (app, app_data) in enumerate(spec.before):
                ch.priority = start + offset
                self._newexten(ch, app, app_data)
                if app == "Answer" and ch.state != 6:
                    self._state(ch, 6)
            ch.priority = start + len(spec.before)
        else:
            ch.priority += 1
        url = f"agi://{self.config.agi_host}:{self.config.agi_port}/{spec.script}"
        self._newexten(ch, "AGI", ",".join([url, *spec.args]))
        env = agi_env(ch, url, spec, tech, self.config.agi_version, dnid)
        session = SimAgiChannel(
            ch, env, caller=caller, prompts=self.config.prompts, clock=self.hub.clock,
            observer=observer,
        )  # fmt: skip
        self.agi_sessions.append(session)
        try:
            await session.run(self.config.agi_host, self.config.agi_port)
        except OSError as exc:
            log.warning("simulated call %s: FastAGI server unreachable: %s", ch.name, exc)
            ch.variables["AGISTATUS"] = "FAILURE"
        observer.agi_ended(session)
        return session


class CallObserver(AgiObserver):
    """Turns one AGI session's activity into AMI events; ``citizen`` is the Local ;1 leg."""

    def __init__(self, calls: Calls, ch: SimChannel, citizen: SimChannel | None, device: str | None) -> None:
        self.calls, self.hub, self.ch = calls, calls.hub, ch
        self.citizen, self.device = citizen, device
        self.hung_up_by_agi = False

    def command_started(self, command_id: int, line: str) -> None:
        extra = [("CommandId", str(command_id)), ("Command", line)]
        self.hub.channel_event("AGIExecStart", self.ch, extra, category="agi")

    def command_ended(self, command_id: int, line: str, code: int, result: str) -> None:
        extra = [("CommandId", str(command_id)), ("Command", line)]
        extra += [("ResultCode", str(code)), ("Result", result)]
        self.hub.channel_event("AGIExecEnd", self.ch, extra, category="agi")

    def variable_set(self, name: str, value: str) -> None:
        extra = [("Variable", name), ("Value", value)]
        self.hub.channel_event("VarSet", self.ch, extra, category="dialplan")

    def step_started(self, step: Step) -> None:
        if self.citizen is None or self.citizen.hung_up:
            return
        for app, data in robot_apps(step):
            self.citizen.priority += 1
            self.calls._newexten(self.citizen, app, data)

    def dtmf(self, digit: str) -> None:
        received = [("Direction", "Received")]
        self.hub.channel_event("DTMFBegin", self.ch, [("Digit", digit), *received], category="dtmf")
        end = [("Digit", digit), ("DurationMs", "100"), *received]
        self.hub.channel_event("DTMFEnd", self.ch, end, category="dtmf")

    def caller_hung_up(self) -> None:
        if self.citizen is not None and not self.citizen.hung_up:
            self.calls._request("SoftHangupRequest", self.citizen)
            self.calls._request("HangupRequest", self.ch)
            self.calls._hangup(self.citizen)
            if self.device:
                self.hub.device_state(self.device, "NOT_INUSE", deferred=True)
        else:
            self.calls._request("HangupRequest", self.ch)

    def agi_hung_up(self) -> None:
        self.hung_up_by_agi = True
        self.calls._request("SoftHangupRequest", self.ch)

    def agi_ended(self, session: SimAgiChannel) -> None:
        """The engine closed the connection: the dialplan goes on to ``Hangup()``."""
        ch, citizen = self.ch, self.citizen
        if not session.dead and not self.hung_up_by_agi:
            ch.priority += 1
            self.calls._newexten(ch, "Hangup", "")
            self.calls._request("SoftHangupRequest", ch)
        elif not self.hung_up_by_agi:
            self.calls._request("SoftHangupRequest", ch)
        if citizen is not None and not citizen.hung_up:
            self.calls._request("HangupRequest", citizen)
        self.calls._hangup(ch)
        if self.device:
            self.hub.device_state(self.device, "NOT_INUSE", deferred=True)
        if citizen is not None and not citizen.hung_up:
            self.calls._hangup(citizen)
            if self.device:
                self.hub.device_state(self.device, "NOT_INUSE", deferred=True)

    async def exec_app(self, call: SimAgiChannel, app: str, args: str) -> int:
        if app.lower() == "dial" and not call.dead:
            return await self._dial(call, args)
        return await run_app(call, app, args)

    async def _dial(self, call: SimAgiChannel, args: str) -> int:
        """``Dial`` to an agent's phone (:mod:`.agents`)."""
        from callcenter.sim.agents import dial  # it imports this module

        return await dial(self.calls, self.ch, call, args)


def agi_env(
    ch: SimChannel, url: str, spec: ContextSpec, tech: str, version: str, dnid: str
) -> list[tuple[str, str]]:
    """The ``agi_*`` lines in the order Asterisk 22 sends them (``agi-session-1.txt``)."""
    known = ch.caller_num != "<unknown>"
    env = [
        ("agi_network", "yes"), ("agi_network_script", spec.script), ("agi_request", url),
        ("agi_channel", ch.name), ("agi_language", ch.language), ("agi_type", tech),
        ("agi_uniqueid", ch.uniqueid), ("agi_version", version),
        ("agi_callerid", ch.caller_num if known else "unknown"),
        ("agi_calleridname", ch.caller_name if ch.caller_name != "<unknown>" else "unknown"),
        ("agi_callingpres", "0"), ("agi_callingani2", "0"), ("agi_callington", "0"),
        ("agi_callingtns", "0"), ("agi_dnid", dnid), ("agi_rdnis", "unknown"),
        ("agi_context", ch.context), ("agi_extension", ch.exten),
        ("agi_priority", str(ch.priority)), ("agi_enhanced", "0.0"),
        ("agi_accountcode", ch.account), ("agi_threadid", str(random.randrange(10**14, 10**15))),
    ]  # fmt: skip
    env += [(f"agi_arg_{index}", arg) for index, arg in enumerate(spec.args, start=1)]
    return env


__all__ = ["Calls", "OriginateRequest", "Outcome", "agi_env", "parse_callerid"]
