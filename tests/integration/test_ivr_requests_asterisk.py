"""IVR option 2 on a real Asterisk 22 over real SIP: a SIPp caller dials 1415, keys 2, the
category and the municipality's number (RFC 2833), then speaks after the tone (µ-law RTP of an
Arabic sentence rendered by espeak-ng) and presses #. Asterisk's ``RECORD FILE`` writes the
description, the engine judges it, makes the request in PostgreSQL and texts the reference
through the loopback gateway. A caller who stays silent, then only coughs, is asked again and
the request is made without a recording.

Skipped without the Asterisk/SIPp builds or espeak-ng, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import asyncio
import re
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.prompts import Prompt, PromptToolMissing, prompt_path, render
from callcenter.requests import recordings
from callcenter.requests.store import load
from callcenter.settings import Settings
from callcenter.sms.gateways.base import OutboundSms
from callcenter.sms.gateways.loopback import read_outbox
from callcenter.testing.asterisk import AsteriskInstance, Audio, SippResult, Toolchain
from callcenter.voice.ivr import make_agi_server
from callcenter.voice.ivr_prompts import write_silent_prompts
from tests.conftest import make_settings, unavailable
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(60)]

CALLER = "0912345678"
PHONE = "+218912345678"
R = models.table(models.ServiceRequest)
SAID = "عمود الإنارة في شارعنا مطفأ منذ أسبوع."


@dataclass
class Line:
    """The engine's FastAGI server and a real Asterisk in front of it, on the test's
    PostgreSQL and Redis; ``municipalities``: the register's numbers (what callers key)."""

    pbx: AsteriskInstance
    engine: AsyncEngine
    settings: Settings
    redis: aioredis.Redis
    municipalities: dict[str, int]

    async def call(self, *media: str | Audio) -> SippResult:
        result = await self.pbx.sipp_uac(keys=list(media), caller=CALLER, timeout_s=40)
        assert result.ok, f"{result}\n{result.errors}\n{self.pbx.log_tail()}"
        return result

    async def request(self) -> dict[str, object]:
        async with self.engine.connect() as conn:
            [row] = (await conn.execute(select(R))).mappings().all()
        return dict(row)

    async def texted(self) -> list[OutboundSms]:
        items, _ = await read_outbox(self.redis)
        return [sms for _, sms, _ in items]

    def played(self, prompt_id: str) -> bool:
        """Whether Asterisk played the prompt (its verbose log names every file it plays)."""
        log = self.pbx.messages_log.read_text(errors="replace")
        return re.search(rf"Playing '[^']*/{re.escape(prompt_id)}\.\w+'", log) is not None


@pytest.fixture
async def line(
    tools: Toolchain, pg: AsyncEngine, redis: aioredis.Redis, redis_db: int, tmp_path: Path
) -> AsyncIterator[Line]:
    prompts = tmp_path / "prompts"
    write_silent_prompts(prompts, [])  # a real Asterisk plays files: silent stand-ins, 0.3 s each
    settings = make_settings(
        tmp_path, pg.url.render_as_string(hide_password=False), redis_db, prompts_dir=prompts
    )
    municipalities = await add_municipalities(pg)
    await load(pg, SAMPLE.read_text(encoding="utf-8"), actor="test")
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0, redis=redis)
    async with server, AsteriskInstance(tools, tmp_path / "ast", agi_port=server.port) as pbx:
        yield Line(pbx, pg, settings, redis, municipalities)
    CALL = models.table(models.Call)
    async with pg.begin() as conn:  # conftest's TABLES empties the rest
        await conn.execute(CALL.delete())


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    """A citizen describing a broken street light: about three seconds of Arabic speech."""
    folder = tmp_path_factory.mktemp("speech")

    try:
        report = asyncio.run(render(folder, {"said": Prompt("said", SAID, SAID)}, languages=["ar"]))
    except PromptToolMissing as exc:
        unavailable(str(exc))
    assert not report.failed, report.failed
    return Audio.from_wav(prompt_path(folder, "ar", "said").with_suffix(".wav"))


def seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


async def test_a_sip_caller_keys_category_and_municipality_and_speaks_the_description(
    line: Line, speech: Audio
) -> None:
    misrata = line.municipalities["misrata"]
    # 2 at the main menu, 1 (street lighting) in the category menu, Misrata's number and #,
    # then the description after the tone, ended by #
    await line.call("2", "W", "1", "W", f"{misrata}#", "W", speech, "w#")
    made = await line.request()
    C, M = models.table(models.ServiceCategory), models.table(models.Municipality)
    async with line.engine.connect() as conn:
        category = (await conn.execute(select(C.c.key).where(C.c.id == made["category_id"]))).scalar()
        code = (await conn.execute(select(M.c.code).where(M.c.id == made["municipality_id"]))).scalar()
    assert (category, code) == ("street_lighting", "misrata")
    assert (made["channel"], made["phone"], made["status"]) == ("ivr", PHONE, "sent")
    stored = made["recording_path"]
    assert isinstance(stored, str) and stored.startswith("requests/req-")
    path = line.settings.recordings_path / stored
    assert path.is_file()  # written by Asterisk, where the engine reads it
    assert speech.ms / 1000 - 1 < seconds(path) < speech.ms / 1000 + 2  # what was said, ended by #
    verdict = recordings.judge(path)
    assert verdict.ok and verdict.spoken_s >= 1.5
    assert made["details"] == {}
    [sms] = await line.texted()
    assert sms.to == PHONE and str(made["reference"]) in sms.body and "إنارة" in sms.body
    assert line.played("request-recorded") and line.played("svc-sms-sent")
    assert not line.played("svc-recording-silent")


async def test_a_silent_then_too_short_recording_is_asked_again_and_the_request_kept_without_it(
    line: Line,
) -> None:
    """The phone keeps sending RTP, silent: Asterisk ends the first recording after four
    seconds of silence (RECORD FILE's s=4), the engine finds it silent and asks again; the
    second holds only a cough (0.4 s), too short, so nothing is kept."""
    await line.call(
        "2", "W", "1", "W", "#",  # no municipality keyed: the ministry routes it
        Audio.silence(7000), Audio.tone(400), Audio.silence(5000),
    )  # fmt: skip
    made = await line.request()
    assert made["recording_path"] is None
    assert made["details"] == {"recording": "too_short"}
    assert str(made["description"]).startswith("(لا يوجد وصف")
    assert made["municipality_id"] is None
    assert line.played("svc-recording-silent") and line.played("svc-saved-without-recording")
    assert list((line.settings.recordings_path / recordings.FOLDER).iterdir()) == []
    [sms] = await line.texted()
    assert sms.to == PHONE and str(made["reference"]) in sms.body and "دون وصف صوتي" in sms.body
