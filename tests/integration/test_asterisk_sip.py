"""The project's dialplans on a real Asterisk 22: SIP calls with RFC 2833 keys, AMI Originate,
the trunk's busy / no-answer / hang-up cases, AMD. FastAGI is the engine's own AgiServer.

Skipped without the Asterisk/SIPp builds (../shared/asterisk or CALLCENTER_ASTERISK_DIR),
except under CI (``CI=true``), where their absence fails.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callcenter.telephony import names
from callcenter.telephony.agi import AgiChannel, AgiHangup, AgiServer
from callcenter.testing.asterisk import (
    AmiMessage,
    AsteriskInstance,
    Toolchain,
    UasBehaviour,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(60)]

CAMPAIGN_VARS = {
    names.VAR_CAMPAIGN: "12",
    names.VAR_DELIVERY: "3456",
    names.VAR_CITIZEN: "+218912345678",
}


@pytest.fixture(scope="module")
def silence(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 0.3 s prompt (absolute path, no extension): Asterisk has no sound files here."""
    path = tmp_path_factory.mktemp("prompts") / "silence"
    with wave.open(str(path.with_suffix(".wav")), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 2400)
    return str(path)


@dataclass
class Calls:
    """What the AGI handlers saw, one entry per call."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, **entry: Any) -> None:
        self.seen.append(entry)
        self.changed.set()

    async def wait(self, count: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout_s):
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.seen


Handler = Callable[[AgiChannel, Calls], Awaitable[None]]


@dataclass
class Lab:
    pbx: AsteriskInstance
    calls: Calls


@pytest.fixture
def handlers() -> dict[str, Handler]:
    """Tests put their AGI script handlers here before ``lab`` starts."""
    return {}


@pytest.fixture
async def lab(tools: Toolchain, tmp_path: Path, handlers: dict[str, Handler]) -> AsyncIterator[Lab]:
    calls = Calls()
    server = AgiServer("127.0.0.1", 0, close_timeout=2)

    async def serve(call: AgiChannel) -> None:
        handler = handlers.get(call.env.script)  # looked up per call: tests fill it late
        if handler is None:
            calls.add(script=call.env.script, unexpected=True)
            return
        await handler(call, calls)

    for script in names.AGI_SCRIPTS:
        server.register(script, serve)
    async with server, AsteriskInstance(tools, tmp_path, agi_port=server.port) as pbx:
        yield Lab(pbx, calls)


def reason(event: AmiMessage) -> str | None:
    return event.get("Reason")


# -- boot ---------------------------------------------------------------------------------------


async def test_boots_with_the_project_modules(lab: Lab) -> None:
    assert lab.pbx.boot_seconds is not None and lab.pbx.boot_seconds < 10
    log = lab.pbx.messages_log.read_text(errors="replace")
    assert "declined to load" not in log, lab.pbx.log_tail()
    dialplan = await lab.pbx.cli("dialplan show")
    for context in [*names.CONTEXTS, "campaign-dial", "robot-citizens"]:
        assert f"'{context}'" in dialplan
    endpoints = await lab.pbx.cli("pjsip show endpoints")
    assert "trunk" in endpoints and "citizen" in endpoints


# -- (a) a citizen calls 1415 over SIP and presses keys ------------------------------------------


async def test_sip_call_to_1415_delivers_rfc2833_keys(
    lab: Lab, handlers: dict[str, Handler], silence: str
) -> None:
    async def main(call: AgiChannel, calls: Calls) -> None:
        await call.answer()
        first = await call.get_data(silence, 4000, 4)  # "42#": '#' ends the input
        second = await call.get_data(silence, 4000, 2)  # "33": a repeated key
        calls.add(caller=call.env.callerid, context=call.env.context, keys=[first, second])

    handlers[names.AGI_MAIN] = main
    result = await lab.pbx.sipp_uac(keys="42#33", calls=3, caller="0912345678")
    seen = await lab.calls.wait(3)
    assert result.ok, f"{result}\n{result.errors}\n{lab.pbx.log_tail()}"
    assert result.successful == 3
    assert [entry["keys"] for entry in seen] == [["42", "33"]] * 3
    assert {entry["caller"] for entry in seen} == {"0912345678"}
    assert {entry["context"] for entry in seen} == {names.CTX_INBOUND}


# -- (b) a campaign call to a robot citizen over a Local channel ----------------------------------


async def test_originate_to_a_robot_reaches_the_outbound_script(
    lab: Lab, handlers: dict[str, Handler], silence: str
) -> None:
    async def outbound(call: AgiChannel, calls: Calls) -> None:
        variables = {name: await call.get_variable(name) for name in CAMPAIGN_VARS}
        calls.add(variables=variables, key=await call.get_data(silence, 5000, 1))

    handlers[names.AGI_OUTBOUND] = outbound
    async with await lab.pbx.ami() as ami:
        event = await ami.originate(
            "Local/0912345678@robot-citizens",
            context=names.CTX_OUTBOUND,
            variables={**CAMPAIGN_VARS, "ROBOT_KEYS": "W5"},
            caller_id="1415 <1415>",
        )
    assert reason(event) == "4", event
    [seen] = await lab.calls.wait(1)
    assert seen == {"variables": CAMPAIGN_VARS, "key": "5"}


async def test_busy_robot_gives_reason_5(lab: Lab) -> None:
    async with await lab.pbx.ami() as ami:
        event = await ami.originate(
            "Local/0912345678@robot-citizens",
            context=names.CTX_OUTBOUND,
            variables={"ROBOT_MODE": "busy"},
        )
    assert reason(event) == "5", event
    assert lab.calls.seen == []


# -- (c) the operator's trunk: busy, no answer, answer then hang up ------------------------------


async def test_trunk_busy_and_no_answer(lab: Lab) -> None:
    async with await lab.pbx.ami() as ami:
        uas = await lab.pbx.sipp_uas(UasBehaviour.BUSY)
        busy = await ami.originate(
            "Local/0912345678@campaign-dial", context=names.CTX_OUTBOUND, variables=CAMPAIGN_VARS
        )
        assert (await uas.wait()).ok
        assert reason(busy) == "5", busy

        uas = await lab.pbx.sipp_uas(UasBehaviour.NO_ANSWER)
        started = asyncio.get_running_loop().time()
        unanswered = await ami.originate(
            "Local/0912345678@campaign-dial", context=names.CTX_OUTBOUND, timeout_ms=1500
        )
        assert (await uas.wait()).ok
        assert reason(unanswered) == "3", unanswered
        assert asyncio.get_running_loop().time() - started < 5

        # Why campaign-dial: straight to PJSIP, a 486 is Reason 0 ("failed"); only the
        # channel's Hangup event says busy (cause 17), with the delivery id from channelvars.
        uas = await lab.pbx.sipp_uas(UasBehaviour.BUSY)
        direct = await ami.originate(
            "PJSIP/0912345678@trunk", context=names.CTX_OUTBOUND, variables=CAMPAIGN_VARS
        )
        assert (await uas.wait()).ok
        assert reason(direct) == "0", direct
        hangup = await ami.wait_for(
            lambda m: (
                m.get("Event") == "Hangup"
                and m.get("Channel", "").startswith("PJSIP/trunk")
                and "CC_DELIVERY_ID=3456" in m.get("ChanVariable", "").splitlines()
            )
        )
        assert hangup["Cause"] == "17", hangup
    assert lab.calls.seen == []


async def test_trunk_answer_with_keys(lab: Lab, handlers: dict[str, Handler], silence: str) -> None:
    async def outbound(call: AgiChannel, calls: Calls) -> None:
        calls.add(keys=await call.get_data(silence, 5000, 3))  # then the engine hangs up

    handlers[names.AGI_OUTBOUND] = outbound
    uas = await lab.pbx.sipp_uas(UasBehaviour.ANSWER, keys="81#", delay_ms=800)
    async with await lab.pbx.ami() as ami:
        event = await ami.originate(
            "Local/+218912345678@campaign-dial", context=names.CTX_OUTBOUND, variables=CAMPAIGN_VARS
        )
    assert reason(event) == "4", event
    assert await lab.calls.wait(1) == [{"keys": "81"}]
    result = await uas.wait()
    assert result.ok, f"{result}\n{result.errors}"


async def test_trunk_answer_keys_then_hangup_mid_question(
    lab: Lab, handlers: dict[str, Handler], silence: str
) -> None:
    async def outbound(call: AgiChannel, calls: Calls) -> None:
        delivery = await call.get_variable(names.VAR_DELIVERY)
        first = await call.get_data(silence, 5000, 1)
        try:
            await call.get_data(silence, 10000, 1)  # the citizen hangs up during this one
        except AgiHangup:
            calls.add(delivery=delivery, key=first, hung_up=True)
        else:
            calls.add(delivery=delivery, key=first, hung_up=False)

    handlers[names.AGI_OUTBOUND] = outbound
    uas = await lab.pbx.sipp_uas(UasBehaviour.HANGUP, keys="6", delay_ms=800, hangup_after_ms=700)
    async with await lab.pbx.ami() as ami:
        event = await ami.originate(
            "Local/0912345678@campaign-dial",
            context=names.CTX_OUTBOUND,
            variables=CAMPAIGN_VARS,
            caller_id="1415 <1415>",
        )
    assert reason(event) == "4", event
    [seen] = await lab.calls.wait(1)
    result = await uas.wait()
    assert result.ok, f"{result}\n{result.errors}"
    assert seen == {"delivery": "3456", "key": "6", "hung_up": True}


# -- AMD ------------------------------------------------------------------------------------------


async def test_amd_hangs_up_on_machines_and_passes_humans(lab: Lab, handlers: dict[str, Handler]) -> None:
    async def outbound(call: AgiChannel, calls: Calls) -> None:
        calls.add(
            delivery=await call.get_variable(names.VAR_DELIVERY),
            amd=await call.get_variable("AMDSTATUS"),
            key=await call.wait_for_digit(4000),
        )

    handlers[names.AGI_OUTBOUND] = outbound
    async with await lab.pbx.ami() as ami:

        def call(mode: str) -> Awaitable[AmiMessage]:
            # a channel variable overrides the AMD_ENABLED global for this call
            variables = {"AMD_ENABLED": "1", "ROBOT_MODE": mode, "ROBOT_KEYS": "WW7"}
            return ami.originate(
                "Local/0912345678@robot-citizens",
                context=names.CTX_OUTBOUND,
                variables={**variables, names.VAR_DELIVERY: mode},
            )

        events = await asyncio.gather(call("machine"), call("human"))
        assert [reason(e) for e in events] == ["4", "4"]
        machine = await ami.wait_for(
            lambda m: m.get("UserEvent") == "CallCenterAMD" and m.get("Delivery") == "machine"
        )
        [seen] = await lab.calls.wait(1)
    assert machine["Status"] == "MACHINE", machine
    assert seen == {"delivery": "human", "amd": "HUMAN", "key": "7"}
