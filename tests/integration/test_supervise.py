"""Supervisors on the wallboard: callers' ratings per queue and agent (from the one fold), the
listen / whisper / barge buttons of an agent on a call — sent as a ChanSpy Originate over a real
socket to the simulator's AMI server, which accepts an Originate with an Application — and what
is refused with a clear message (a call that has just ended, a supervisor without a phone, an
unknown mode, an AMI that cannot be reached, an agent or analyst at the route). Recordings: a
supervisor plays a call's WAV (audited at every playback), ``../`` and tampered names are not
found, and the retention cleanup deletes old files (audited). The desk's call back goes to the
simulator's AMI the same way."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.desk.recordings import delete_expired
from callcenter.desk.wallboard import today
from callcenter.settings import Settings
from callcenter.sim import SimConfig, Simulator
from tests.integration.test_campaign_pages import staff
from tests.integration.test_desk_calls import PHONE, on_a_call
from tests.integration.test_desk_pages import desk_agent, move, queues

A = models.table(models.AuditLog)
P = models.table(models.AgentProfile)
EV = models.table(models.RoutingEvent)


@pytest.fixture
async def sim(settings: Settings) -> AsyncIterator[Simulator]:
    """The simulator's AMI server, with the engine's AMI account; the app's settings point at it."""
    config = SimConfig(accounts={settings.ami_username: settings.ami_secret}, time_scale=0)
    async with Simulator(config) as running:
        settings.ami_host, settings.ami_port = "127.0.0.1", running.ami_port
        yield running


def actions(sim: Simulator, name: str) -> list[dict[str, list[str]]]:
    """The actions named ``name`` the simulator received, as header -> values."""
    out = []
    for request in sim.ami.received:
        headers: dict[str, list[str]] = {}
        for key, value in request:
            headers.setdefault(key, []).append(value)
        if headers.get("Action", [""])[0].lower() == name.lower():
            out.append(headers)
    return out


async def phone_for(engine: AsyncEngine, user_id: int, endpoint: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(P).values(user_id=user_id, endpoint=endpoint, skills=[], active=False,
                                            created_at=datetime.now(UTC)))  # fmt: skip


async def audits(engine: AsyncEngine, action: str) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(A).where(A.c.action == action).order_by(A.c.id)))


def row_of(html: str, marker: str) -> str:
    part = html[html.index(marker) :]
    return part[: part.index("</tr>")]


async def test_ratings_show_per_queue_and_agent_and_the_spy_buttons_only_for_calls(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    await queues(engine, "general")
    desk, _agent, agent_id = await desk_agent(web, engine)
    boss, _ = await staff(web, engine, "supervisor", language="en")
    acd = Acd(engine, redis)
    await on_a_call(acd, desk, agent_id)
    html = (await boss.get("/wallboard/figures")).text
    agent_row = row_of(html, f'<tr data-agent="{agent_id}"')
    for mode in ("listen", "whisper", "barge"):
        assert f'data-spy="{mode}"' in agent_row
    assert f'action="/wallboard/agents/{agent_id}/spy"' in agent_row and 'name="csrf_token"' in agent_row
    await acd.ended("call-1", agent_id)
    await acd.record("call.rated", entry="call-1", agent=agent_id, queue="general", data={"rating": 4})
    await acd.record("call.rated", entry="call-x", agent=agent_id, queue="general", data={"rating": 11})
    await move(desk, to="ready", shown="wrap_up", disposition="resolved", notes="roads")

    html = (await boss.get("/wallboard/figures")).text
    agent_row = row_of(html, f'<tr data-agent="{agent_id}"')
    assert "data-spy=" not in agent_row  # not on a call: nothing to listen to
    assert '<bdi dir="ltr">4.0</bdi> <span class="muted">(1)</span>' in agent_row
    queue_row = row_of(html[html.index('id="queues"') :], '<tr data-queue="general">')
    assert 'data-figure="rating"><bdi dir="ltr">4.0</bdi>' in queue_row
    assert (
        'data-figure="rating"><bdi dir="ltr">4.0</bdi>' in html[: html.index('id="waiting"')]
    )  # today's card
    day = today(time.time(), settings.timezone).isoformat()
    report = (await boss.get("/wallboard/report", params={"day": day, "by": "agent"})).text
    assert '<bdi dir="ltr">4.0</bdi> <span class="muted">(1)</span>' in report
    export = await boss.get("/wallboard/report.csv", params={"day": day, "by": "queue"})
    header, row = export.text.lstrip("\ufeff").splitlines()[:2]
    assert header.endswith(",ratings,rating_mean,transferred") and row.endswith(",1,4.00,0")


async def test_a_supervisor_listens_whispers_and_barges_through_the_simulators_ami(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, sim: Simulator
) -> None:
    await queues(engine, "general")
    desk, _agent, agent_id = await desk_agent(web, engine)
    boss, boss_user = await staff(web, engine, "supervisor", language="en")
    assert boss_user.id is not None
    acd = Acd(engine, redis)
    await on_a_call(acd, desk, agent_id)
    await boss.get("/wallboard")
    path = f"/wallboard/agents/{agent_id}/spy"

    no_phone = await boss.post(path, {"mode": "listen"})
    assert no_phone.status_code == 409 and "You have no phone to listen with" in no_phone.text
    await phone_for(engine, boss_user.id, "PJSIP/sup201")
    bad = await boss.post(path, {"mode": "eavesdrop"})
    assert bad.status_code == 422 and "Choose listen, whisper or barge." in bad.text
    assert (await boss.post(path, {"mode": "listen"}, csrf=False)).status_code == 403
    assert (await boss.post("/wallboard/agents/987654/spy", {"mode": "listen"})).status_code == 404
    assert (await boss.post("/wallboard/agents/..%2F1/spy", {"mode": "listen"})).status_code == 404
    assert actions(sim, "Originate") == []
    await boss.get("/wallboard")  # (a page not found is drawn without the session: its token is not ours)

    for mode, options in (("listen", "qES"), ("whisper", "qESw"), ("barge", "qESB")):
        sent = await boss.post(path, {"mode": mode})
        assert (
            sent.status_code == 303 and sent.headers["location"] == f"/wallboard?spy={mode}&agent={agent_id}"
        )
        [originate] = actions(sim, "Originate")[-1:]
        assert originate["Channel"] == ["PJSIP/sup201"] and originate["Application"] == ["ChanSpy"]
        assert originate["Data"] == [f"PJSIP/agent{agent_id}-,{options}"]
        assert originate["Async"] == ["true"] and f"CC_SPY_MODE={mode}" in originate["Variable"]
    notice = await boss.get(sent.headers["location"])
    assert "Your phone rings now: answer it to join Test agent&#39;s call; both hear you." in notice.text
    rows = [*await audits(engine, "wallboard.listen"), *await audits(engine, "wallboard.barge")]
    assert [r.target for r in rows] == [f"agent:{agent_id}"] * 2 and rows[0].details["entry"] == "call-1"
    assert rows[0].actor_id == boss_user.id and rows[0].details["phone"] == "PJSIP/sup201"

    # the call ends between the page's last refresh and the click: said so, nothing rings
    await acd.ended("call-1", agent_id)
    ended = await boss.post(path, {"mode": "listen"})
    assert (
        ended.status_code == 409
        and "Test agent&#39;s call has just ended: there is nothing to listen to." in ended.text
    )
    assert len(actions(sim, "Originate")) == 3

    # an agent is refused the route; an analyst too
    assert (await desk.post(path, {"mode": "listen"})).status_code == 403
    analyst, _ = await staff(web, engine, "analyst", language="en")
    assert (await analyst.post(path, {"mode": "listen"})).status_code == 403


async def test_an_ami_that_cannot_be_reached_is_said_plainly(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        settings.ami_port = probe.getsockname()[1]
    await queues(engine, "general")
    desk, _agent, agent_id = await desk_agent(web, engine)
    boss, boss_user = await staff(web, engine, "supervisor", language="en")
    assert boss_user.id is not None
    await phone_for(engine, boss_user.id, "PJSIP/sup201")
    await on_a_call(Acd(engine, redis), desk, agent_id)
    await boss.get("/wallboard")
    down = await boss.post(f"/wallboard/agents/{agent_id}/spy", {"mode": "listen"})
    assert down.status_code == 503 and "The telephony server cannot be reached now." in down.text
    assert await audits(engine, "wallboard.listen") == []


async def test_the_desks_call_back_reaches_the_simulators_ami_as_an_originate_of_dial(
    web: FastAPI, engine: AsyncEngine, redis: aioredis.Redis, sim: Simulator, settings: Settings
) -> None:
    await queues(engine, "general")
    desk, _agent, agent_id = await desk_agent(web, engine)
    acd = Acd(engine, redis)
    await on_a_call(acd, desk, agent_id)
    await acd.ended("call-1", agent_id)
    await desk.get("/desk")
    calling = await desk.post("/desk/call-back", {"entry": "call-1"})
    assert calling.status_code == 303
    [originate] = actions(sim, "Originate")
    assert originate["Channel"] == [f"PJSIP/agent{agent_id}"] and originate["Application"] == ["Dial"]
    assert originate["Data"] == [f"Local/{PHONE}@campaign-dial,30"]
    assert originate["CallerID"] == [settings.voice_caller_id]
    assert actions(sim, "Logoff")  # the short-lived connection was closed


# -- recordings --------------------------------------------------------------------------------------


async def a_recording(
    engine: AsyncEngine, settings: Settings, entry: str, *, file: str | None = None
) -> None:
    settings.recordings_path.mkdir(parents=True, exist_ok=True)
    (settings.recordings_path / f"{entry}.wav").write_bytes(b"RIFF" + b"\0" * 4000)
    async with engine.begin() as conn:
        await conn.execute(
            insert(EV).values(
                at=datetime.now(UTC), kind="call.recording", entry=entry, queue="general",
                data={"file": file or f"{entry}.wav"},
            )
        )  # fmt: skip


async def test_a_supervisor_plays_a_recording_and_every_playback_is_audited(
    web: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    await queues(engine, "general")
    await a_recording(engine, settings, "e" * 32)
    await a_recording(engine, settings, "tampered", file="../../secret.wav")
    (settings.recordings_path.parent / "secret.wav").write_bytes(b"RIFF-NOT-YOURS")
    boss, boss_user = await staff(web, engine, "supervisor", language="en")

    report = await boss.get("/wallboard/report")
    assert f'<audio controls preload="none" src="/wallboard/recordings/{"e" * 32}">' in report.text
    assert "Nobody answered" in report.text
    played = await boss.get(f"/wallboard/recordings/{'e' * 32}")
    assert played.status_code == 200 and played.headers["content-type"] == "audio/wav"
    assert played.content.startswith(b"RIFF") and played.headers["cache-control"] == "no-store"
    rest = await boss.get(f"/wallboard/recordings/{'e' * 32}", headers={"Range": "bytes=100-"})
    assert rest.status_code in (200, 206)
    again = await boss.get(f"/wallboard/recordings/{'e' * 32}", headers={"Range": "bytes=0-"})
    assert again.status_code in (200, 206)
    rows = await audits(engine, "recording.play")
    assert [(r.actor_id, r.target, r.details) for r in rows] == [
        (boss_user.id, f"call:{'e' * 32}", {"file": f"{'e' * 32}.wav"})
    ] * 2  # the first and the third: a range that goes on is the same listening

    # (a bare "/.." is resolved by the client before it is sent; "%2e%2e" reaches the server)
    for path in ("/wallboard/recordings/tampered", "/wallboard/recordings/..%2F..%2Fsecret.wav",
                 "/wallboard/recordings/nosuchcall", "/wallboard/recordings/%2e%2e",
                 "/wallboard/recordings/%2e%2e%2fsecret"):  # fmt: skip
        refused = await boss.get(path)
        assert refused.status_code in (404, 405) and b"NOT-YOURS" not in refused.content, path
    os.unlink(settings.recordings_path / f"{'e' * 32}.wav")
    deleted = await boss.get(f"/wallboard/recordings/{'e' * 32}")
    assert deleted.status_code == 404 and "deleted after the retention time" in deleted.text
    assert "Deleted" in (await boss.get("/wallboard/report")).text
    assert len(await audits(engine, "recording.play")) == 2

    agent, _ = await staff(web, engine, "agent", language="en")
    assert (await agent.get(f"/wallboard/recordings/{'e' * 32}")).status_code == 403


async def test_recordings_past_the_retention_are_deleted_and_audited(
    engine: AsyncEngine, settings: Settings
) -> None:
    settings.recording_retention_days = 30
    base = settings.recordings_path
    base.mkdir(parents=True)
    now = time.time()
    for name, days in (("old.wav", 31), ("new.wav", 29)):
        (base / name).write_bytes(b"RIFF")
        os.utime(base / name, (now - days * 86400, now - days * 86400))
    assert await delete_expired(engine, settings, now=now) == ["old.wav"]
    assert sorted(p.name for p in base.iterdir()) == ["new.wav"]
    [row] = await audits(engine, "recording.delete")
    assert row.actor == "retention" and row.details["files"] == ["old.wav"] and row.details["count"] == 1
    assert await delete_expired(engine, settings, now=now) == []  # nothing due: no row
    assert len(await audits(engine, "recording.delete")) == 1
