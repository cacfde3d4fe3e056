"""The IVR on a real Asterisk 22: a SIP caller dials 1415, presses 1 and answers the
three-question inquiry with RFC 2833 keys; the answers land in PostgreSQL.

Skipped without the Asterisk/SIPp builds, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.settings import Settings
from callcenter.testing.asterisk import AsteriskInstance, Toolchain
from callcenter.voice.ivr import make_agi_server
from callcenter.voice.ivr_prompts import write_silent_prompts
from callcenter.voice.ivr_store import VoiceStore
from tests.factories import THREE_QUESTIONS, make_inquiry

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(60)]


async def test_sip_caller_answers_the_inquiry_by_rfc2833(
    tools: Toolchain, pg: AsyncEngine, tmp_path: Path
) -> None:
    inquiry_id = await make_inquiry(pg, yaml_text=THREE_QUESTIONS)
    prompts = tmp_path / "prompts"
    write_silent_prompts(prompts, [await VoiceStore(pg).definition(inquiry_id)])
    settings = Settings(
        env="test",
        data_dir=tmp_path,
        database_url=pg.url.render_as_string(hide_password=False),
        prompts_dir=prompts,
    )
    server = make_agi_server(settings, pg, host="127.0.0.1", port=0)
    async with server, AsteriskInstance(tools, tmp_path / "ast", agi_port=server.port) as pbx:
        result = await pbx.sipp_uac(keys="1w4w1w2", caller="0912345678", timeout_s=30)
        assert result.ok, f"{result}\n{result.errors}\n{pbx.log_tail()}"
    A, Q, CALL = (models.table(m) for m in (models.Answer, models.Question, models.Call))
    async with pg.connect() as conn:
        rows = await conn.execute(select(Q.c.key, A.c.value, A.c.channel).join(Q, Q.c.id == A.c.question_id))
        got = {r.key: (r.value, r.channel) for r in rows}
        calls = list(await conn.execute(select(CALL.c.outcome, CALL.c.caller, CALL.c.direction)))
        await conn.execute(CALL.delete())
        await conn.commit()
    assert got == {"q1": ("4", "voice"), "q2": ("yes", "voice"), "q3": ("2", "voice")}
    assert calls == [("completed", "+218912345678", "in")]
