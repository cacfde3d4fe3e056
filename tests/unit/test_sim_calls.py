"""The simulator with the engine's own clients: outbound calls through AMI Originate with each
citizen outcome, inbound callers at scale through the FastAGI server, scripted key presses
and hangups, and the AGI replies an IVR relies on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from callcenter.sim import (
    Caller,
    CitizenModel,
    ContextSpec,
    HangUp,
    Outcome,
    Press,
    PromptLibrary,
    Silence,
    SimConfig,
    Simulator,
    engine_dialplan,
)
from callcenter.telephony.agi import (
    AgiChannel,
    AgiCommandFailed,
    AgiDeadChannel,
    AgiHangup,
    AgiInvalidCommand,
    AgiServer,
    AgiUsageError,
)
from callcenter.telephony.ami import AmiActionError, AmiClient, AmiMessage
from callcenter.telephony.stats import RttStats


@dataclass
class Ivr:
    """A small IVR: menu (1 digit), national number (up to 10 digits, # ends), confirm."""

    results: dict[str, list[object]] = field(default_factory=dict)

    async def __call__(self, call: AgiChannel) -> None:
        got: list[object] = []
        self.results[call.env.callerid or call.name] = got
        try:
            await call.answer()
            got.append(await call.get_variable("INQUIRY_ID"))
            got.append(await call.stream_file("/prompts/ar/welcome", "0123456789"))
            got.append(await call.get_data("/prompts/ar/menu", 3000, 1))
            got.append(await call.get_data("/prompts/ar/number", 5000, 10))
            got.append(await call.wait_for_digit(2000))
            await call.say_digits("1415")
            await call.hangup()
            got.append("done")
        except AgiHangup as exc:
            got.append(type(exc).__name__)
            raise


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Simulator, AgiServer, Ivr, RttStats]]:
    stats = RttStats()
    agi = AgiServer("127.0.0.1", 0, on_command=stats.record)
    ivr = Ivr()
    agi.register("ivr", ivr)
    await agi.start()
    citizens = CitizenModel(
        {
            "0910000002": Outcome("busy", after_ms=100),
            "0910000003": Outcome("noanswer"),
            "0910000004": Outcome("congestion"),
            "0910000005": Outcome("failed"),
        },
        default=Outcome("answer", 200, Caller.keys("9", "2", "0912345678#", "5")),
    )
    dialplan = {
        "inbound-1415": ContextSpec(),
        "outbound-1415": ContextSpec((("NoOp", "callback"),), args=("callback",)),
    }
    sim = Simulator(SimConfig(agi_port=agi.port, citizens=citizens, dialplan=dialplan, time_scale=0))
    await sim.start()
    yield sim, agi, ivr, stats
    await sim.close()
    await agi.close()


async def test_outbound_outcomes(rig: tuple[Simulator, AgiServer, Ivr, RttStats]) -> None:
    sim, _, ivr, _ = rig
    responses: dict[str, AmiMessage] = {}
    hangups: list[tuple[str, str]] = []
    done = asyncio.Event()

    async def on_response(event: AmiMessage) -> None:
        responses[event.action_id or "?"] = event
        if len(responses) == 5:
            done.set()

    async with AmiClient("127.0.0.1", sim.ami_port, "engine", "s3cret", ping_interval=None) as ami:
        ami.on("OriginateResponse", on_response)
        ami.on("Hangup", lambda e: hangups.append((e["Channel"], e["Cause-txt"])))
        ids = {}
        for number in ("0910000001", "0910000002", "0910000003", "0910000004", "0910000005"):
            ids[number] = await ami.originate(
                channel=f"PJSIP/{number}@trunk", context="outbound-1415", exten="s",
                caller_id="1415 <1415>", variables={"INQUIRY_ID": "42"}, timeout_ms=500,
            )  # fmt: skip
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.wait_for(sim.wait_idle(), 5)
    reasons = {number: responses[action]["Reason"] for number, action in ids.items()}
    assert reasons == {"0910000001": "4", "0910000002": "5", "0910000003": "3",
                       "0910000004": "8", "0910000005": "0"}  # fmt: skip
    failed = responses[ids["0910000002"]]
    assert failed["Response"] == "Failure" and failed["Channel"] == "PJSIP/0910000002@trunk"
    assert failed["Uniqueid"] == "<unknown>"
    assert ("PJSIP/trunk-00000001", "User busy") in hangups
    assert ("PJSIP/trunk-00000003", "Circuit/channel congestion") in hangups
    # the answered citizen went through the IVR; Originate variables are channel variables
    assert ivr.results["1415"] == ["42", "9", "2", "0912345678", "5", "done"]


async def test_synchronous_originate_failure(
    rig: tuple[Simulator, AgiServer, Ivr, RttStats],
) -> None:
    sim = rig[0]
    async with AmiClient("127.0.0.1", sim.ami_port, "engine", "s3cret", ping_interval=None) as ami:
        with pytest.raises(AmiActionError, match="Originate failed"):
            await ami.originate(channel="PJSIP/0910000002@trunk", context="outbound-1415",
                                exten="s", async_=False, timeout_ms=1000)  # fmt: skip
        await ami.originate(channel="PJSIP/0910000001@trunk", context="outbound-1415",
                            exten="s", async_=False, timeout_ms=1000)  # fmt: skip
        await asyncio.wait_for(sim.wait_idle(), 5)


async def test_inbound_callers_at_scale(rig: tuple[Simulator, AgiServer, Ivr, RttStats]) -> None:
    sim, agi, ivr, stats = rig
    callers = [Caller.keys(None, "1", f"09{n:08d}#", "3", number=f"0920{n:06d}") for n in range(200)]
    sessions = await asyncio.wait_for(sim.run_callers(callers, concurrency=50), 60)
    assert len(sessions) == 200 and agi.calls == 200
    assert ivr.results["0920000007"] == [None, None, "1", "0900000007", "3", "done"]
    assert all(result[-1] == "done" for result in ivr.results.values())
    # every engine command was answered and timed: 8 commands per call
    assert stats.count == 200 * 8
    assert stats.p50 is not None and stats.p99 is not None and stats.p99 < 5


async def test_caller_hangs_up_mid_menu(rig: tuple[Simulator, AgiServer, Ivr, RttStats]) -> None:
    sim, _, ivr, _ = rig
    caller = Caller((Silence(), Press("4"), HangUp(after_ms=300)), number="0930000001")
    session = await sim.call(caller)
    assert ivr.results["0930000001"] == [None, None, "4", "AgiHangup"]
    assert session.dead
    assert session.commands[-1].startswith("GET DATA /prompts/ar/number")


async def test_agi_replies_as_asterisk() -> None:
    """Usage errors, unknown commands, escape digits, missing prompts, the engine's own
    HANGUP, and dead-channel rules, as the engine sees them from the simulator."""
    seen: list[object] = []
    finished = asyncio.Event()

    async def probe(call: AgiChannel) -> None:
        async def expect(coro: object) -> None:
            try:
                seen.append(await coro)  # type: ignore[misc]
            except (AgiUsageError, AgiInvalidCommand, AgiCommandFailed, AgiHangup) as exc:
                seen.append(type(exc).__name__)

        try:
            await expect(call.command("GET DATA"))
            await expect(call.command("WAIT FOR DIGIT soon"))
            await expect(call.command("FLY ME TO THE MOON"))
            await expect(call.stream_file("welcome", "#"))
            await expect(call.stream_file("nosuchfile"))
            await expect(call.exec("NoSuchApp"))
            await expect(call.get_variable("CALLERID(name)"))
            await expect(call.hangup())
            await expect(call.get_variable("CALLERID(num)"))  # works on a dead channel
            await expect(call.answer())
        finally:
            finished.set()

    agi = AgiServer("127.0.0.1", 0)
    agi.register("ivr", probe)
    await agi.start()
    sim = Simulator(SimConfig(agi_port=agi.port, time_scale=0, prompts=PromptLibrary()))
    try:
        await sim.start()
        session = await sim.call(Caller((Press("#", after_ms=500),), number="0940000001", name="Ali"))
        await asyncio.wait_for(finished.wait(), 5)
    finally:
        await sim.close()
        await agi.close()
    assert seen == [
        "AgiUsageError", "AgiUsageError", "AgiInvalidCommand", "#", "AgiCommandFailed", -2,
        "Ali", None, "0940000001", "AgiDeadChannel",
    ]  # fmt: skip
    assert session.commands[3] == 'STREAM FILE welcome "#"'


async def test_missing_agi_server_and_loopback_only() -> None:
    free = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = free.sockets[0].getsockname()[1]
    free.close()
    await free.wait_closed()
    async with Simulator(SimConfig(agi_port=port, time_scale=0)) as sim:
        session = await sim.call(Caller())
        assert session.channel.variables["AGISTATUS"] == "FAILURE"
    with pytest.raises(ValueError, match="loopback"):
        Simulator(SimConfig(agi_host="192.0.2.1"))
    assert issubclass(AgiDeadChannel, AgiHangup)


async def test_campaign_call_into_the_engine_dialplan() -> None:
    """An answered campaign call runs the ``outbound`` script with the Originate variables."""
    seen: list[object] = []

    async def outbound(call: AgiChannel) -> None:
        seen.extend([call.env.script, call.env.arguments, call.env.context])
        seen.append(await call.get_variable("CC_DELIVERY_ID"))
        seen.append(await call.get_data("/prompts/ar/q1", 3000, 1))

    agi = AgiServer("127.0.0.1", 0)
    agi.register("outbound", outbound)
    await agi.start()
    citizens = CitizenModel(default=Outcome("answer", 50, Caller.keys("2")))
    config = SimConfig(agi_port=agi.port, citizens=citizens, dialplan=engine_dialplan(),
                       time_scale=0)  # fmt: skip
    try:
        async with Simulator(config) as sim:
            ami = AmiClient("127.0.0.1", sim.ami_port, "engine", "s3cret", ping_interval=None)
            async with ami:
                await ami.originate(channel="PJSIP/0912345678@trunk", context="outbound-campaign",
                                    exten="s", variables={"CC_DELIVERY_ID": "7"})  # fmt: skip
                await asyncio.wait_for(sim.wait_idle(), 5)
    finally:
        await agi.close()
    assert seen == ["outbound", [], "outbound-campaign", "7", "2"]
