"""Agent phones behind ``Dial``: what a simulated channel's ``EXEC Dial`` reaches.

A phone does one of the :class:`~callcenter.sim.config.AgentSpec` behaviours per call (the
config's ``agents``, then ``agent_rule``, then ``default_agent``): it answers after a delay and
talks for a handling time before hanging up, declines (``BUSY``), rings out at Dial's timeout
(``NOANSWER``) or is not registered (``CHANUNAVAIL``). A caller whose patience runs out while
it rings hangs up (``CANCEL``). On answer, Dial's ``U(context^arg1^arg2)`` option runs the
context as Asterisk runs the gosub — ``Gosub(context,s,1(arg1,arg2))`` on the agent's channel,
its ``AGI()`` included, before the two are bridged — so the engine's ``agent_answered`` script
sees the agent pick up while the call lasts. The events follow ``ami-session-2.txt`` (Dial to
``Local/101@agents``, bridge, queue member status).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from callcenter.sim.agi_client import SimAgiChannel
from callcenter.sim.citizen import Caller
from callcenter.sim.config import AgentSpec
from callcenter.sim.core import Pairs, SimChannel, event

if TYPE_CHECKING:
    from callcenter.sim.calls import Calls

log = logging.getLogger(__name__)

_GOSUB = re.compile(r"U\(([^)]*)\)")
_ARG = re.compile(r"\$\{ARG(\d+)\}")
#: hangup causes: normal clearing, user busy, no answer
NORMAL, BUSY, NO_ANSWER = 16, 17, 19


@dataclass(frozen=True, slots=True)
class DialRequest:
    """``Dial(target[&...],timeout,options)`` as app_dial reads it (the first target only)."""

    target: str
    timeout_s: float | None = None
    gosub: str | None = None  # U()'s context
    gosub_args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, args: str) -> DialRequest:
        parts = args.split(",", 2)
        target = parts[0].split("&", 1)[0].strip()
        timeout: float | None = None
        if len(parts) > 1 and parts[1].strip():
            try:
                timeout = float(parts[1])
            except ValueError:
                timeout = None
        found = _GOSUB.search(parts[2]) if len(parts) > 2 else None
        if found is None:
            return cls(target, timeout)
        context, *rest = found.group(1).split("^")
        return cls(target, timeout, context, tuple(rest))


def spec_for(calls: Calls, target: str) -> AgentSpec:
    config = calls.config
    found = config.agents.get(target)
    if found is None and config.agent_rule is not None:
        found = config.agent_rule(target)
    return found or config.default_agent


async def dial(calls: Calls, me: SimChannel, call: SimAgiChannel, args: str) -> int:
    """Run one ``Dial`` from ``me`` (the AGI channel); returns EXEC's result: -1 once the call
    was answered (Dial without ``g``) or the caller hung up, 0 otherwise."""
    hub = calls.hub
    request = DialRequest.parse(args)
    target = request.target
    spec = spec_for(calls, target)
    if spec.kind == "unavailable":  # no contact: app_dial cannot even create the channel
        call.set_variable("DIALSTATUS", "CHANUNAVAIL")
        return 0
    tech, _, data = target.partition("/")
    exten, _, context = data.partition("@")
    base = f"{target}-{hub.new_sequence(tech)}"
    local = tech.lower() == "local"
    fields = {"context": context or "default", "exten": exten}
    a1 = hub.new_channel(f"{base};1" if local else base, linkedid=me.linkedid, **fields)
    legs = [a1]
    hub.channel_event("Newchannel", a1)
    if local:
        a2 = hub.new_channel(f"{base};2", linkedid=me.linkedid, state=4, **fields)
        legs.append(a2)
        hub.channel_event("Newchannel", a2)
    a1.exten = me.exten
    a1.set_connected(me.caller_num, me.caller_name)
    calls._callerid(a1, me.exten, me.caller_name, connected=False)
    if local:
        a2.set_connected(me.exten, me.caller_name)
        calls._callerid(a2, me.caller_num, me.caller_name, connected=False)
        bridge = [("Context", a2.context), ("Exten", a2.exten), ("LocalOptimization", "Yes")]
        hub.publish(event("LocalBridge", "call", a1.block("LocalOne"), a2.block("LocalTwo"), bridge))
    dial_string = [("DialString", data if local else target)]
    hub.publish(event("DialBegin", "call", me.block(), a1.block("Dest"), dial_string))

    ring_ms = float(spec.answer_after_ms)
    if spec.kind == "noanswer" and request.timeout_s is not None:
        ring_ms = request.timeout_s * 1000
    elif spec.kind == "answer" and request.timeout_s is not None:
        ring_ms = min(ring_ms, request.timeout_s * 1000)  # an answer after the timeout is none
    patience = call.caller.patience_left_ms(hub.clock.now_ms())
    if patience is not None and patience < ring_ms:  # the caller gives up while it rings
        await hub.clock.sleep_ms(max(0.0, patience))
        for leg in reversed(legs):
            calls._hangup(leg, NORMAL)
        hub.publish(event("DialEnd", "call", me.block(), a1.block("Dest"), [("DialStatus", "CANCEL")]))
        call.set_variable("DIALSTATUS", "CANCEL")
        call.hang_up()
        return -1
    await hub.clock.sleep_ms(ring_ms)
    answers = spec.kind == "answer" and (
        request.timeout_s is None or spec.answer_after_ms <= request.timeout_s * 1000
    )
    if not answers:
        status = "BUSY" if spec.kind == "busy" else "NOANSWER"
        for leg in reversed(legs):
            calls._hangup(leg, BUSY if spec.kind == "busy" else NO_ANSWER)
        hub.publish(event("DialEnd", "call", me.block(), a1.block("Dest"), [("DialStatus", status)]))
        call.set_variable("DIALSTATUS", status)
        return 0
    device = target
    legs[-1].priority = spec.answer_priority
    for leg in reversed(legs):
        calls._state(leg, 6)
    a1.exten = ""
    hub.publish(event("DialEnd", "call", me.block(), a1.block("Dest"), [("DialStatus", "ANSWER")]))
    if request.gosub is not None:
        await gosub(calls, a1, request.gosub, request.gosub_args, tech)
    bridge_id = str(uuid.uuid4())
    hub.publish(event("BridgeCreate", "call", _bridge(bridge_id, 0)))
    hub.device_state(device, "INUSE")
    calls.queues.device_status(device, 2)
    hub.device_state(device, "INUSE")
    hub.publish(event("BridgeEnter", "call", _bridge(bridge_id, 1), a1.block()))
    hub.publish(event("BridgeEnter", "call", _bridge(bridge_id, 2), me.block()))
    await hub.clock.sleep_ms(spec.talk_ms)
    far = legs[-1]
    far.priority = spec.hangup_priority
    calls._request("SoftHangupRequest", far)
    if local:
        calls._request("HangupRequest", a1)
        calls._hangup(far)
    hub.publish(event("BridgeLeave", "call", _bridge(bridge_id, 1), a1.block()))
    calls._hangup(a1)
    calls.queues.device_status(device, 1)
    hub.device_state(device, "NOT_INUSE")
    hub.device_state(device, "NOT_INUSE")
    hub.publish(event("BridgeLeave", "call", _bridge(bridge_id, 0), me.block()))
    hub.publish(event("BridgeDestroy", "call", _bridge(bridge_id, 0)))
    call.set_variable("DIALSTATUS", "ANSWER")
    return -1


async def gosub(calls: Calls, ch: SimChannel, context: str, args: tuple[str, ...], tech: str) -> None:
    """``Gosub(context,s,1(args))`` on the answering channel: the context's applications and
    its ``AGI()``, then ``Return()``. A context the dialplan lacks is skipped, as Asterisk
    bridges the call anyway (with an error in its log)."""
    from callcenter.sim.calls import CallObserver, agi_env  # the module that imports this one

    spec = calls.config.dialplan.get(context)
    if spec is None:
        log.warning("simulated dialplan has no gosub context %r; bridging anyway", context)
        return

    def fill(text: str) -> str:
        return _ARG.sub(lambda m: args[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(args) else "", text)

    spec = replace(
        spec,
        before=tuple((app, fill(data)) for app, data in spec.before),
        args=tuple(fill(arg) for arg in spec.args),
    )
    ch.context, ch.exten, ch.priority = context, "s", 1
    for offset, (app, data) in enumerate(spec.before):
        ch.priority = 1 + offset
        calls._newexten(ch, app, data)
    ch.priority = 1 + len(spec.before)
    url = f"agi://{calls.config.agi_host}:{calls.config.agi_port}/{spec.script}"
    calls._newexten(ch, "AGI", ",".join([url, *spec.args]))
    env = agi_env(ch, url, spec, tech, calls.config.agi_version, "unknown")
    session = SimAgiChannel(
        ch, env, caller=Caller(), prompts=calls.config.prompts, clock=calls.hub.clock,
        observer=CallObserver(calls, ch, None, None),
    )  # fmt: skip
    try:
        await session.run(calls.config.agi_host, calls.config.agi_port)
    except OSError as exc:
        log.warning("gosub on %s: FastAGI server unreachable: %s", ch.name, exc)
        ch.variables["AGISTATUS"] = "FAILURE"
    ch.priority += 1
    calls._newexten(ch, "Return", "")


def _bridge(bridge_id: str, count: int) -> Pairs:
    return [
        ("BridgeUniqueid", bridge_id), ("BridgeType", "basic"),
        ("BridgeTechnology", "simple_bridge"), ("BridgeCreator", "<unknown>"),
        ("BridgeName", "<unknown>"), ("BridgeNumChannels", str(count)),
        ("BridgeVideoSourceMode", "none"),
    ]  # fmt: skip
