"""Every prompt the IVR plays, on every path of the menu and the inquiry, is in the catalogue
(or is one of the inquiry's own prompts) and exists as rendered audio."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.inquiries import load_definition
from callcenter.prompts import inquiry_prompts, load_catalogue, render_all
from callcenter.settings import Settings
from callcenter.sim import Caller, SimConfig, Simulator, engine_dialplan
from callcenter.sim.citizen import PromptLibrary
from callcenter.voice.ivr import make_agi_server
from tests.agentlab import Citizen, agent_lab, occupy, put_through
from tests.factories import SAMPLE, make_inquiry

PATHS = [
    ("1", "4", "1"),  # the inquiry: rating, then the yes/no question
    ("1", "2", "3", "1"),  # rating 2 -> the choice question (options read out)
    ("9", "1", "*", "7", None, "5", "2"),  # English, repeat, invalid, silence
    ("2",),  # service request: all agents busy, reference read out
    ("0",),  # an agent: callback stored
    ("3", "999999#"),  # status of an unknown request
    ("7", None, "#"),  # invalid menu keys, then goodbye
]


def played_files(commands: list[str]) -> list[str]:
    files: list[str] = []
    for line in commands:
        if line.startswith(("STREAM FILE", "GET DATA")):
            files.append(line.split(" ", 3)[2])
        elif line.startswith("EXEC Playback"):
            files += line.split(" ", 2)[2].strip('"').split("&")
    return files


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
async def test_every_prompt_the_ivr_plays_is_catalogued_and_rendered(
    engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        if os.environ.get("CI") == "true":
            pytest.fail("espeak-ng and sox are required in CI")
        pytest.skip("espeak-ng / sox not installed (apt install espeak-ng sox)")
    await make_inquiry(engine, yaml_text=SAMPLE.read_text(encoding="utf-8"))
    async with AsyncSession(engine) as session:
        inquiry = await load_definition(session, "return-of-life-roads")
    settings = settings.model_copy(update={"prompts_dir": tmp_path / "prompts"})
    report = await render_all(settings, [inquiry])
    assert report.ok, report.failed
    known = set(load_catalogue()) | set(inquiry_prompts(inquiry))

    played: set[str] = set()
    server = make_agi_server(settings, engine, host="127.0.0.1", port=0)
    async with server:
        # the simulator plays a file only if it was rendered: a missing one fails like Asterisk
        library = PromptLibrary(missing=set(), exists=lambda path: Path(path + ".wav").exists())
        config = SimConfig(agi_port=server.port, time_scale=0, dialplan=engine_dialplan(), prompts=library)
        async with Simulator(config) as sim:
            for n, keys in enumerate(PATHS):
                session = await sim.call(Caller.keys(*keys, number=f"09100001{n:02d}"))
                played.update(played_files(session.commands))
    try:
        assert len(played) > 20
        for path in played:
            assert Path(path + ".wav").exists(), f"not rendered: {path}"
            assert Path(path).name in known, f"not in the catalogue: {path}"
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(models.table(models.Ticket)))
            await conn.execute(delete(models.table(models.Call)))


#: Callers to agents: the queue's config, callers ahead (None: the agent is free), settings,
#: the caller's keys, what the phones do (the first rings first)
AGENT_PATHS: list[tuple[dict[str, Any], int | None, dict[str, Any], dict[str, Any], list[list[str]]]] = [
    ({}, 1, {}, {"greeting": "0", "rate-call": "5"}, [["answer"]]),  # place, wait, put through, rating
    (
        {},
        0,
        {"queue_default_aht_s": 30.0},
        {"greeting": "9", "main-menu": "0", "rate-call": "9"},
        [["answer"]],
    ),
    ({}, 2, {"queue_default_aht_s": 5000.0}, {"greeting": "0"}, [["noanswer"], ["answer"]]),  # over an hour
    ({}, 3, {}, {"greeting": "9", "main-menu": "0"}, [["busy"], ["answer"]]),
    ({"callback_after": 0}, None, {}, {"greeting": "0", "callback-keep-place": "1"}, []),  # nobody staffed
    ({"callback_after": 0}, None, {}, {"greeting": "9", "main-menu": "0", "callback-keep-place": "1"}, []),
    ({"max_wait": 0}, None, {}, {"greeting": "0", "callback-press-1": [None, None]}, []),  # no callback taken
    ({"max_size": 0}, None, {}, {"greeting": "9", "main-menu": "0", "callback-press-1": "1"}, []),
    ({"max_size": 0, "on_full": "message"}, None, {}, {"greeting": "0"}, []),
]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
async def test_every_prompt_a_caller_waiting_for_an_agent_hears_is_catalogued_and_rendered(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings, tmp_path: Path
) -> None:
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        if os.environ.get("CI") == "true":
            pytest.fail("espeak-ng and sox are required in CI")
        pytest.skip("espeak-ng / sox not installed (apt install espeak-ng sox)")
    settings = settings.model_copy(update={"prompts_dir": tmp_path / "prompts"})
    report = await render_all(settings, [])
    assert report.ok, report.failed
    known = set(load_catalogue())
    library = PromptLibrary(missing=set(), exists=lambda path: Path(path + ".wav").exists())
    played: set[str] = set()
    async with agent_lab(engine, redis, settings) as build:
        for n, (config, ahead, overrides, keys, phones_do) in enumerate(AGENT_PATHS):
            queue = f"q{n}"
            endpoints = [f"PJSIP/q{n}a{k}" for k in range(1, len(phones_do) + 1)]
            line = await build(
                queues={queue: config}, endpoints=endpoints, queue_for_key_0=queue, **overrides
            )
            line.library = library
            session, phones = line.session(Citizen(keys, number=f"09100002{n:02d}"))
            phones.plan = dict(zip(endpoints, phones_do, strict=True))
            if ahead is None:
                await session.run("127.0.0.1", line.port)
            else:
                others = await occupy(line, endpoints[0], waiting=ahead, queue=queue)
                await put_through(line, session, others, *endpoints[1:])
            played.update(played_files(session.commands))
    assert len(played) > 40
    for path in played:
        assert Path(path + ".wav").exists(), f"not rendered: {path}"
        assert Path(path).name in known, f"not in the catalogue: {path}"
