"""The desk during and after a call, on the real app: notes saved with the call, a transfer to
another queue (the caller's channel redirected by AMI, the place kept), a call back from the
card (an AMI Originate that rings the agent first; the number stays on the server), and the
wrap-up's service request form — each audited, each refusing bad input with a clear message
(no CSRF token, an empty or too long field, a call that has just ended, a telephony server
that cannot be reached). AMI is a recording fake here; tests/integration/test_supervise.py
sends the same actions to the simulator's AMI server over a socket."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.desk.call_control import AmiOpener, CallControl, TelephonyUnavailable, take_transfer
from callcenter.phones import mask_phone
from callcenter.routing import AgentState, Entry
from callcenter.routing.store import Caller
from callcenter.settings import Settings
from callcenter.telephony.ami import AmiActionError, AmiMessage
from callcenter.web.deps import get_ami
from tests.integration.test_desk_pages import a_citizen_with_history, desk_agent, move, queues, state_of
from tests.webapp import StaffClient

A = models.table(models.AuditLog)
EV = models.table(models.RoutingEvent)
TK = models.table(models.Ticket)
CHANNEL = "PJSIP/citizen-00000042"
PHONE = "+218912345678"


class FakeAmi:
    """Records what the pages send; ``down``: the connection cannot be had; ``refuse``: the
    action answers with this error."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, dict[str, Any]]] = []
        self.down = False
        self.refuse: Exception | None = None

    async def originate(self, **action: Any) -> str:
        self.actions.append(("originate", action))
        if self.refuse is not None:
            raise self.refuse
        return f"fake-{len(self.actions)}"

    async def redirect(self, **action: Any) -> None:
        self.actions.append(("redirect", action))
        if self.refuse is not None:
            raise self.refuse

    def opener(self) -> AmiOpener:
        @asynccontextmanager
        async def opened() -> AsyncIterator[CallControl]:
            if self.down:
                raise TelephonyUnavailable("The telephony server cannot be reached now.")
            yield self

        return opened


def refused(message: str) -> AmiActionError:
    """The error ``AmiClient.send_action`` raises for ``Response: Error``."""
    reply = AmiMessage.from_pairs([("Response", "Error"), ("Message", message)])
    return AmiActionError(f"AMI Redirect failed: {message}", action="Redirect", response=reply)


def fake_ami(app: FastAPI) -> FakeAmi:
    fake = FakeAmi()
    app.dependency_overrides[get_ami] = fake.opener
    return fake


async def on_a_call(
    acd: Acd, client: StaffClient, agent_id: str, entry: str = "call-1", *, waited: float = 30.0,
    caller: Caller | None = None, queue: str = "general",
) -> None:  # fmt: skip
    """The agent (whose desk is open) goes ready and takes a caller who waited ``waited`` s."""
    await client.get("/desk")
    await move(client, to="ready", shown="offline")
    now = (await acd.store.snapshot()).now
    who = caller or Caller(phone=PHONE, language="ar", path=("0",), channel=CHANNEL)
    assert (await acd.enqueue(Entry(entry, queue, now - waited), who)).refused is None
    (offer,) = (await acd.round()).decisions.offers
    assert offer.agent == agent_id
    await acd.ringing(entry, agent_id)
    await acd.connected(entry, agent_id)


async def events(engine: AsyncEngine, kind: str) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(EV).where(EV.c.kind == kind).order_by(EV.c.id)))


async def audits(engine: AsyncEngine, action: str) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(A).where(A.c.action == action).order_by(A.c.id)))


# -- notes ------------------------------------------------------------------------------------------


async def test_notes_during_a_call_are_saved_with_it_and_start_the_wrap_up(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await queues(engine, "general", "services")
    client, _user, agent_id = await desk_agent(web, engine)
    acd = Acd(engine, redis)
    await on_a_call(acd, client, agent_id)
    state = await client.get("/desk/state")
    assert 'data-form="note"' in state.text and 'name="entry" value="call-1"' in state.text

    empty = await client.post("/desk/notes", {"entry": "call-1", "note": "   "})
    assert (
        empty.status_code == 422 and "Write the note first." in empty.text and 'href="#f-note"' in empty.text
    )
    long = await client.post("/desk/notes", {"entry": "call-1", "note": "x" * 2001})
    assert long.status_code == 422 and "A note has at most 2000 characters." in long.text
    other = await client.post("/desk/notes", {"entry": "call-9", "note": "roads"})
    assert other.status_code == 409 and "The call has ended: write your note in the wrap-up." in other.text
    no_csrf = await client.post("/desk/notes", {"entry": "call-1", "note": "roads"}, csrf=False)
    assert no_csrf.status_code == 403
    assert await events(engine, "entry.note") == []

    for text in ("asks about the road to Garabulli", "  second thought  "):
        saved = await client.post("/desk/notes", {"entry": "call-1", "note": text})
        assert saved.status_code == 303 and saved.headers["location"] == "/desk?done=note"
    notes = await events(engine, "entry.note")
    assert [(n.entry, n.agent, n.queue, n.data["notes"]) for n in notes] == [
        ("call-1", agent_id, "general", "asks about the road to Garabulli"),
        ("call-1", agent_id, "general", "second thought"),
    ]
    [row, _] = await audits(engine, "desk.note")
    assert row.target == f"agent:{agent_id}" and row.details == {"entry": "call-1", "length": 32}
    page = await client.get("/desk?done=note")
    assert "Your note is saved with the call." in page.text and "second thought" in page.text

    await acd.ended("call-1", agent_id)
    wrap = await client.get("/desk/state")
    assert (
        '<textarea class="textarea" id="f-notes" name="notes"' in wrap.text
        and "asks about the road to Garabulli\nsecond thought</textarea>" in wrap.text
    )


# -- transfer ---------------------------------------------------------------------------------------


async def test_a_transfer_redirects_the_callers_channel_and_keeps_the_time_they_waited(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await queues(engine, "general", "services")
    fake = fake_ami(web)
    client, _user, agent_id = await desk_agent(web, engine)
    acd = Acd(engine, redis)
    await on_a_call(acd, client, agent_id, waited=30.0)
    state = await client.get("/desk/state")
    assert (
        'data-form="transfer"' in state.text
        and '<option value="services">services queue</option>' in state.text
    )
    assert '<option value="general">' not in state.text  # not the queue the caller is in

    for queue, message in (
        ("", "Choose the queue to transfer the caller to."),
        ("general", "The caller is in this queue already: choose another one."),
        ("nowhere", "There is no such queue."),
    ):
        answer = await client.post("/desk/transfer", {"entry": "call-1", "queue": queue})
        assert answer.status_code == 422 and message in answer.text, queue
    assert fake.actions == []
    assert (
        await client.post("/desk/transfer", {"entry": "call-1", "queue": "services"}, csrf=False)
    ).status_code == 403

    fake.down = True
    down = await client.post("/desk/transfer", {"entry": "call-1", "queue": "services"})
    assert down.status_code == 503 and "The telephony server cannot be reached now." in down.text
    fake.down, fake.refuse = False, refused(f"Channel does not exist: {CHANNEL}")
    gone = await client.post("/desk/transfer", {"entry": "call-1", "queue": "services"})
    assert gone.status_code == 409 and "The call has just ended: it was not transferred." in gone.text
    fake.refuse = refused("Invalid/unknown command: Redirect.")
    refusal = await client.post("/desk/transfer", {"entry": "call-1", "queue": "services"})
    assert refusal.status_code == 503 and "The telephony server refused the transfer." in refusal.text
    assert await redis.keys("acd:transfer:*") == []  # nothing left pending by a failed try
    assert await state_of(acd, agent_id) is AgentState.ON_CALL
    fake.refuse, fake.actions = None, []

    moved = await client.post("/desk/transfer", {"entry": "call-1", "queue": "services"})
    assert moved.status_code == 303 and moved.headers["location"] == "/desk?done=transferred"
    [(name, action)] = fake.actions
    assert name == "redirect" and action["channel"] == CHANNEL and action["context"] == "agent-transfer"
    new_entry = action["exten"]
    assert re.fullmatch(r"[0-9a-f]{32}", new_entry)
    assert await state_of(acd, agent_id) is AgentState.WRAP_UP  # the card stays for the wrap-up
    record = await acd.store.agent(agent_id)
    assert record is not None and record.entry == "call-1"
    [connected] = await events(engine, "entry.connected")
    [transferred] = await events(engine, "entry.transferred")
    [ended] = await events(engine, "entry.ended")
    assert ended.entry == "call-1" and transferred.entry == "call-1" and transferred.queue == "general"
    assert transferred.data["to"] == "services" and transferred.data["entry"] == new_entry
    waited = connected.data["waited"]
    assert 30.0 <= waited < 31.0 and transferred.data["waited"] == waited
    placed = transferred.data["enqueued_at"]
    assert abs(placed - (transferred.at.timestamp() - waited)) < 0.5  # now minus the wait
    [audit] = await audits(engine, "desk.transfer")
    assert audit.before == {"entry": "call-1", "queue": "general"}
    assert audit.after == {"entry": new_entry, "queue": "services"}

    pending = await take_transfer(redis, "acd", new_entry)  # what the caller's new session takes
    assert pending is not None and pending.queue == "services" and pending.entry == "call-1"
    assert pending.caller.channel == CHANNEL and pending.caller.phone == PHONE
    assert pending.enqueued_at == placed
    assert await take_transfer(redis, "acd", new_entry) is None  # once
    after = (await client.get("/desk?done=transferred")).text
    assert "The caller is on the way to the other queue" in after
    assert '<option value="transferred" selected>' in after  # the wrap-up starts from it

    # the old AGI session hears HANGUP and ends the call too: nothing changes twice
    await acd.ended("call-1", agent_id)
    assert len(await events(engine, "entry.ended")) == 1
    again = await client.post("/desk/transfer", {"entry": "call-1", "queue": "services"})
    assert again.status_code == 409 and "The call has just ended" in again.text


async def test_a_callback_in_progress_cannot_be_transferred(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await queues(engine, "general", "services")
    fake = fake_ami(web)
    client, _user, agent_id = await desk_agent(web, engine)
    acd = Acd(engine, redis)
    await on_a_call(acd, client, agent_id, caller=Caller(phone=PHONE, callback_id=None, channel=""))
    state = await client.get("/desk/state")
    assert 'data-form="transfer"' not in state.text and "data-no-transfer" in state.text
    refused = await client.post("/desk/transfer", {"entry": "call-1", "queue": "services"})
    assert refused.status_code == 422 and "This call cannot be transferred" in refused.text
    assert fake.actions == []


# -- call back --------------------------------------------------------------------------------------


async def test_the_agent_calls_the_citizen_back_from_the_card_and_never_sees_the_number(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    await queues(engine, "general")
    fake = fake_ami(web)
    client, _user, agent_id = await desk_agent(web, engine)
    acd = Acd(engine, redis)
    await on_a_call(acd, client, agent_id)
    assert 'data-action="call-back"' not in (await client.get("/desk/card")).text  # not while talking
    early = await client.post("/desk/call-back", {"entry": "call-1"})
    assert early.status_code == 409 and "during the wrap-up of their call" in early.text
    await acd.ended("call-1", agent_id)

    card = await client.get("/desk/card")
    assert (
        'data-action="call-back"' in card.text and mask_phone(PHONE) in card.text and PHONE not in card.text
    )
    fake.down = True
    down = await client.post("/desk/call-back", {"entry": "call-1"})
    assert down.status_code == 503 and "The telephony server cannot be reached now." in down.text
    fake.down = False
    assert (await client.post("/desk/call-back", {"entry": "call-1"}, csrf=False)).status_code == 403
    wrong = await client.post("/desk/call-back", {"entry": "call-2"})
    assert wrong.status_code == 409
    assert fake.actions == []

    calling = await client.post("/desk/call-back", {"entry": "call-1"})
    assert calling.status_code == 303 and calling.headers["location"] == "/desk?done=calling"
    [(name, action)] = fake.actions
    assert name == "originate" and action["channel"] == f"PJSIP/agent{agent_id}"
    assert action["application"] == "Dial"
    assert action["data"] == f"Local/{PHONE}@campaign-dial,30"  # CALLCENTER_VOICE_DIAL_TEMPLATE
    assert action["caller_id"] == settings.voice_caller_id and action["timeout_ms"] == 20_000
    assert action["variables"] == {"CC_ENTRY": "call-1", "CC_AGENT": agent_id}
    [event] = await events(engine, "call.back")
    assert event.entry == "call-1" and event.data["phone"] == mask_phone(PHONE)
    [row] = await audits(engine, "desk.call_back")
    assert row.details == {"entry": "call-1", "phone": mask_phone(PHONE)} and PHONE not in str(row.details)
    page = await client.get("/desk?done=calling")
    assert "Your phone rings now" in page.text and PHONE not in page.text
    assert await state_of(acd, agent_id) is AgentState.WRAP_UP  # still out of the rotation


async def test_a_withheld_number_cannot_be_called_back(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await queues(engine, "general")
    fake = fake_ami(web)
    client, _user, agent_id = await desk_agent(web, engine)
    acd = Acd(engine, redis)
    await on_a_call(acd, client, agent_id, caller=Caller(phone="", channel=CHANNEL))
    await acd.ended("call-1", agent_id)
    assert 'data-action="call-back"' not in (await client.get("/desk/card")).text
    refused = await client.post("/desk/call-back", {"entry": "call-1"})
    assert refused.status_code == 409 and "There is no number to call back" in refused.text
    assert fake.actions == []


# -- the service request form -----------------------------------------------------------------------


async def test_the_wrap_up_records_a_service_request_and_shows_its_reference(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    await queues(engine, "general")
    citizen_id, phone = await a_citizen_with_history(engine)
    client, user, agent_id = await desk_agent(web, engine)
    acd = Acd(engine, redis)
    await on_a_call(acd, client, agent_id, caller=Caller(phone=phone, citizen_id=citizen_id, channel=CHANNEL))
    await acd.ended("call-1", agent_id)
    page = await client.get("/desk")
    assert 'data-form="ticket"' in page.text
    async with engine.connect() as conn:
        trp = (await conn.execute(select(models.table(models.Municipality).c.id))).scalar_one()
    assert f'<option value="{trp}" selected>TRP town</option>' in page.text  # the caller's own
    async with engine.connect() as conn:
        before = len((await conn.execute(select(TK))).all())

    empty = await client.post(
        "/desk/ticket", {"entry": "call-1", "category": " ", "municipality": "", "description": ""}
    )
    assert empty.status_code == 422
    for message in (
        "Write what the request is about (its category).",
        "Choose the municipality the request is for.",
        "Describe the request.",
    ):
        assert message in empty.text
    for form, message in (
        ({"category": "x" * 121}, "The category has at most 120 characters."),
        ({"municipality": "999999"}, "Choose the municipality the request is for."),
        ({"municipality": "TRP"}, "Choose the municipality the request is for."),
        ({"description": "y" * 1501}, "The description has at most 1500 characters."),
    ):
        good = {
            "entry": "call-1",
            "category": "Street lighting",
            "municipality": str(trp),
            "description": "dark",
        }
        bad = await client.post("/desk/ticket", good | form)
        assert bad.status_code == 422 and message in bad.text, form
        assert 'value="Street lighting"' in bad.text or "x" * 120 in bad.text  # what was typed is kept
    gone = await client.post(
        "/desk/ticket", {"entry": "call-7", "category": "a", "municipality": str(trp), "description": "b"}
    )
    assert gone.status_code == 409 and "the request was not recorded" in gone.text
    no_csrf = await client.post("/desk/ticket", {"entry": "call-1", "category": "a", "municipality": str(trp),
                                                 "description": "b"}, csrf=False)  # fmt: skip
    assert no_csrf.status_code == 403
    async with engine.connect() as conn:
        assert len((await conn.execute(select(TK))).all()) == before

    done = await client.post("/desk/ticket", {
        "entry": "call-1", "category": " Street lighting ", "municipality": str(trp),
        "description": "The lamp at the school gate has been dark for a week.",
    })  # fmt: skip
    assert done.status_code == 303
    ticket_id = int(done.headers["location"].rsplit("=", 1)[1])
    async with engine.connect() as conn:
        row = (await conn.execute(select(TK).where(TK.c.id == ticket_id))).one()
    assert (row.kind, row.status, row.callback, row.phone, row.citizen_id, row.municipality_id) == (
        "service", "open", False, phone, citizen_id, trp,
    )  # fmt: skip
    assert row.notes == "Street lighting\nThe lamp at the school gate has been dark for a week."
    shown = await client.get(done.headers["location"])
    assert '<option value="service_request" selected>' in shown.text
    assert f'Service request <bdi class="mono" dir="ltr">1415-{ticket_id:06d}</bdi> is recorded' in shown.text
    [event] = await events(engine, "entry.ticket")
    assert event.entry == "call-1" and event.data == {"ticket": ticket_id, "category": "Street lighting"}
    [row] = await audits(engine, "desk.ticket")
    assert row.actor_id == user.id and row.target == f"ticket:{ticket_id}"
    assert row.after == {"kind": "service", "category": "Street lighting", "municipality_id": trp}
    assert await state_of(acd, agent_id) is AgentState.WRAP_UP  # the wrap-up goes on
