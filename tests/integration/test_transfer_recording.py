"""The caller's side of a transfer and of recording, end to end on the engine's FastAGI server
with a simulated caller channel (byte-exact FastAGI replies) and scripted agent phones
(tests/agentlab.py):

- a transfer: the agent on a call transfers from the desk (``desk.call_control.transfer``,
  AMI a recording fake); the old session hears the caller's line leave the Dial (as a Redirect
  does: ``HANGUP``) and changes nothing more; the ``transfer`` script's new session on the same
  channel takes the pending transfer, waits in the other queue at the kept place, is put
  through to the other agent and rates that call; an unknown or already taken id ends politely;
- recording: the greeting says calls are recorded, ``MixMonitor <dir>/<entry>.wav,b`` starts
  once on the caller's channel just before the first agent rings (not again after a missed
  ring), its file named on a ``call.recording`` event; a transferred caller's recording goes
  on under the new entry; off by default: no notice, no MixMonitor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.call_control import transfer, waited_before
from callcenter.routing import AgentState
from callcenter.settings import Settings
from callcenter.sim import PromptLibrary
from callcenter.sim.agi_client import SimAgiChannel
from callcenter.sim.calls import agi_env
from callcenter.sim.config import ContextSpec
from callcenter.sim.core import SimChannel
from callcenter.telephony import names
from tests.agentlab import Citizen, Lab, Phones, agent_lab, heard_in_order, played
from tests.integration.test_desk_calls import FakeAmi

pytestmark = pytest.mark.timeout(60)

LabFactory = Callable[..., Awaitable[Lab]]
A101, A102 = "PJSIP/agent101", "PJSIP/agent102"


@pytest.fixture
async def lab(engine: AsyncEngine, redis: aioredis.Redis, settings: Settings) -> AsyncIterator[LabFactory]:
    async with agent_lab(engine, redis, settings) as build:
        yield build


def transfer_session(
    lab: Lab, first: SimAgiChannel, transfer_id: str, citizen: Citizen
) -> tuple[SimAgiChannel, Phones]:
    """What Asterisk runs after the Redirect: ``[agent-transfer]``'s AGI on the same channel."""
    old = first.channel
    ch = SimChannel(old.name, old.uniqueid, old.linkedid, names.CTX_AGENT_TRANSFER, transfer_id, state=6)
    ch.set_caller(citizen.number, "Citizen")
    spec = ContextSpec(script=names.AGI_TRANSFER, args=(transfer_id,))
    env = agi_env(ch, f"agi://127.0.0.1:{lab.port}/transfer", spec, "PJSIP", "22.9.0", "unknown")
    phones = Phones(lab.port, citizen)
    prompts = PromptLibrary(missing=set(), default_ms=2000)
    session = SimAgiChannel(ch, env, caller=citizen, prompts=prompts, observer=phones)  # type: ignore[arg-type]
    return session, phones


async def test_a_transferred_caller_waits_in_the_other_queue_at_the_kept_place_and_is_put_through(
    lab: LabFactory,
) -> None:
    line = await lab(queues={"general": {}, "services": {}}, endpoints=[A101, A102])
    first_agent, second_agent = line.agents[A101], line.agents[A102]
    await line.ready(A101)
    fake = FakeAmi()
    moved = []

    async def transfer_now() -> None:  # the agent clicks "Transfer" on the desk during the call
        record = await line.acd.store.agent(first_agent)
        assert record is not None and record.entry is not None
        waited = await waited_before(line.engine, record.entry)
        moved.append(
            await transfer(line.acd, fake.opener(), agent_id=first_agent, to_queue="services", waited=waited)
        )

    session, phones = line.session(Citizen({"greeting": "0"}))
    phones.plan = {A101: ["answer_caller_hangs_up"]}  # the Redirect takes the caller out of Dial
    phones.during_call = transfer_now
    await session.run("127.0.0.1", line.port)

    [pending] = moved
    [(name, action)] = fake.actions
    assert name == "redirect" and action == {
        "channel": session.channel.name, "context": "agent-transfer", "exten": pending.id,
    }  # fmt: skip
    assert "rate-call" not in played(session)  # the first agent is not rated for a transfer
    first_entry = pending.entry
    assert [e.entry for e in await line.events("entry.ended")] == [first_entry]  # once
    assert await line.state(A101) is AgentState.WRAP_UP
    record = await line.acd.store.agent(first_agent)
    assert record is not None and record.entry == first_entry  # the card stays for the wrap-up
    assert await line.events("entry.left") == []

    await line.ready(A102)
    second, phones2 = transfer_session(line, session, pending.id, Citizen({"rate-call": "5"}))
    phones2.plan = {A102: ["answer"]}
    await second.run("127.0.0.1", line.port)

    assert heard_in_order(second, "transfer-intro", "please-hold", "rate-call", "thanks-rating", "goodbye")
    queued = [e for e in await line.events("entry.queued") if e.entry == pending.id]
    assert [(e.queue, e.data["enqueued_at"]) for e in queued] == [("services", pending.enqueued_at)]
    [connected] = [e for e in await line.events("entry.connected") if e.entry == pending.id]
    [first_connected] = [e for e in await line.events("entry.connected") if e.entry == first_entry]
    assert connected.agent == second_agent and connected.queue == "services"
    assert connected.data["waited"] >= first_connected.data["waited"]  # the first wait counts
    [rated] = await line.events("call.rated")
    assert (rated.entry, rated.agent, rated.queue, rated.data["rating"]) == (
        pending.id,
        second_agent,
        "services",
        5,
    )
    [transferred] = await line.events("entry.transferred")
    assert transferred.agent == first_agent and transferred.data["to"] == "services"
    [row] = await line.rows(models.Call)  # one call, one row: the new session reused it
    assert row.outcome == "connected"
    assert await line.state(A102) is AgentState.WRAP_UP


async def test_a_transfer_that_is_unknown_or_taken_ends_politely(lab: LabFactory) -> None:
    line = await lab(queues={"general": {}, "services": {}}, endpoints=[A101])
    first, _ = line.session(Citizen({}))
    for transfer_id in ("0" * 32, "not-an-id"):
        session, _phones = transfer_session(line, first, transfer_id, Citizen({}))
        await session.run("127.0.0.1", line.port)
        assert played(session) == ["technical-error", "call-later"] and session.commands[-1] == "HANGUP"
    assert await line.events("entry.queued") == []


async def test_calls_with_agents_are_recorded_once_from_just_before_the_first_ring(lab: LabFactory) -> None:
    line = await lab(endpoints=[A101, A102], record_calls=True)
    assert line.settings is not None
    await line.ready(A101, A102)
    session, phones = line.session(Citizen({"main-menu": "0", "rate-call": "3"}))
    phones.plan = {A101: ["noanswer"], A102: ["answer"]}
    await session.run("127.0.0.1", line.port)

    assert heard_in_order(session, "greeting", "recording-notice", "for-english", "main-menu")
    [queued] = await line.events("entry.queued")
    path = f"{line.settings.asterisk_recordings_path}/{queued.entry}.wav"
    monitors = [c for c in session.commands if c.startswith("EXEC MixMonitor")]
    assert monitors == [f'EXEC MixMonitor "{path},b"']  # once, though two phones rang
    dials = [i for i, c in enumerate(session.commands) if c.startswith("EXEC Dial")]
    assert session.commands.index(monitors[0]) == dials[0] - 1  # just before the first ring
    [recorded] = await line.events("call.recording")
    assert (recorded.entry, recorded.queue, recorded.data["file"]) == (
        queued.entry,
        "general",
        f"{queued.entry}.wav",
    )


async def test_recording_is_off_by_default(lab: LabFactory) -> None:
    line = await lab(endpoints=[A101])
    await line.ready(A101)
    session, phones = line.session(Citizen({"greeting": "0"}))
    phones.plan = {A101: ["answer"]}
    await session.run("127.0.0.1", line.port)
    assert "recording-notice" not in played(session)
    assert not [c for c in session.commands if "MixMonitor" in c]
    assert await line.events("call.recording") == []


async def test_a_transferred_callers_recording_goes_on_under_the_new_entry(lab: LabFactory) -> None:
    line = await lab(queues={"general": {}, "services": {}}, endpoints=[A101, A102], record_calls=True)
    first_agent = line.agents[A101]
    await line.ready(A101)
    fake = FakeAmi()
    moved = []

    async def transfer_now() -> None:
        moved.append(
            await transfer(line.acd, fake.opener(), agent_id=first_agent, to_queue="services", waited=5.0)
        )

    session, phones = line.session(Citizen({"greeting": "0"}))
    phones.plan = {A101: ["answer_caller_hangs_up"]}
    phones.during_call = transfer_now
    await session.run("127.0.0.1", line.port)
    [pending] = moved
    await line.ready(A102)
    second, phones2 = transfer_session(line, session, pending.id, Citizen({}))
    phones2.plan = {A102: ["answer"]}
    await second.run("127.0.0.1", line.port)

    assert not [c for c in second.commands if "MixMonitor" in c]  # the monitor on the channel goes on
    recordings = await line.events("call.recording")
    assert [(e.entry, e.data["file"]) for e in recordings] == [
        (pending.entry, f"{pending.entry}.wav"),
        (pending.id, f"{pending.entry}.wav"),
    ]
