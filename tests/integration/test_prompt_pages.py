"""``/prompts``: an operator hears what the IVR says, replaces a prompt with a studio recording
and takes it back, through the pages as a browser does; bad files, bad ids and the wrong
roles are turned away. The IVR side is checked with ``Prompts``, which the IVR asks for
every path it streams."""

from __future__ import annotations

import subprocess
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.inquiries import load_definition
from callcenter.inquiry.definition import InquiryStatus
from callcenter.prompts import prompt_path
from callcenter.settings import Settings
from callcenter.voice.ivr_prompts import Prompts, write_silent_prompts
from tests.factories import THREE_QUESTIONS, make_inquiry
from tests.webapp import StaffClient, logged_in, running_app

GREETING_AR = "مرحباً بكم في 1415، خط وزارة الحكم المحلي."


@pytest.fixture
async def app(settings: Settings, redis: object, tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The staff app with its prompts in this test's folder (never the source tree's)."""
    async with running_app(settings.model_copy(update={"prompts_dir": tmp_path / "prompts"})) as running:
        yield running


def prompts_dir(app: FastAPI) -> Path:
    folder: Path = app.state.settings.prompts_dir
    return folder


def sox(tmp: Path, name: str, *args: str) -> bytes:
    target = tmp / name
    subprocess.run(["sox", *args[:-1], str(target), *args[-1].split()], check=True, capture_output=True)
    return target.read_bytes()


def stereo_tone(tmp: Path) -> bytes:
    """``sox -n -r 44100 -c 2 tone.wav synth 1 sine 440``: CD quality, not what Asterisk plays."""
    return sox(tmp, "tone.wav", "-n", "-r", "44100", "-c", "2", "synth 1 sine 440")


async def operator(app: FastAPI, engine: AsyncEngine, **kw: Any) -> StaffClient:
    client, _ = await logged_in(app, engine, "operator", language="en", **kw)
    return client


async def upload(client: StaffClient, path: str, content: bytes, name: str = "take1.wav") -> Any:
    return await client.post(path, {"page": "1", "q": ""}, files={"file": (name, content, "audio/wav")})


async def audit_rows(engine: AsyncEngine, action: str) -> list[models.AuditLog]:
    async with AsyncSession(engine) as session:
        found = await session.execute(select(models.AuditLog).where(models.AuditLog.action == action))  # type: ignore[arg-type]
        return list(found.scalars())


async def test_an_operator_lists_the_prompts_and_plays_one(app: FastAPI, engine: AsyncEngine) -> None:
    inquiry_id = await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    async with AsyncSession(engine) as session:
        inquiry = await load_definition(session, inquiry_id)
    write_silent_prompts(prompts_dir(app), [inquiry])
    client = await operator(app, engine)

    page = await client.get("/prompts")
    assert page.status_code == 200
    assert "greeting" in page.text and GREETING_AR in page.text and "Welcome to 1415" in page.text
    assert '<audio controls preload="none" src="/prompts/audio/ar/greeting">' in page.text
    assert '<audio controls preload="none" src="/prompts/audio/en/greeting">' in page.text
    assert "Synthetic voice" in page.text and "not rendered yet" not in page.text
    assert 'enctype="multipart/form-data"' in page.text and 'name="csrf_token"' in page.text

    found = await client.get("/prompts?q=q-three-q1")  # the inquiry's question, by the IVR's id
    assert "q-three-q1" in found.text and "First question" in found.text and "السؤال الأول" in found.text
    assert '<td lang="ar" dir="auto">السؤال الأول</td>' in found.text

    audio = await client.get("/prompts/audio/ar/greeting")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content[:4] == b"RIFF" and audio.content[8:12] == b"WAVE"
    question = await client.get("/prompts/audio/en/q-three-q2")
    assert question.status_code == 200 and question.content[:4] == b"RIFF"
    await client.http.aclose()


async def test_the_list_is_paginated_and_a_closed_inquiry_is_left_out(
    app: FastAPI, engine: AsyncEngine
) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS, status=InquiryStatus.CLOSED)
    client = await operator(app, engine)
    first = await client.get("/prompts")
    assert first.text.count('<tbody id="p-') == 50 and 'rel="next"' in first.text
    second = await client.get("/prompts?page=2")
    assert second.text.count('<tbody id="p-') == 50 and 'id="p-greeting"' not in second.text
    last = await client.get("/prompts?page=999")  # past the end: the last page
    assert last.status_code == 200 and 'rel="next"' not in last.text and 'rel="prev"' in last.text
    assert (await client.get("/prompts?page=abc")).text.count('<tbody id="p-') == 50
    assert "q-three-q1" not in (await client.get("/prompts?q=q-three")).text
    await client.http.aclose()


async def test_nothing_rendered_yet_says_which_command_renders_it(app: FastAPI, engine: AsyncEngine) -> None:
    client = await operator(app, engine)
    page = await client.get("/prompts?q=greeting")
    assert "Not rendered yet" in page.text and "callcenter prompts" in page.text
    assert '<audio controls preload="none" src="/prompts/audio/ar/greeting">' not in page.text
    missing = await client.get("/prompts/audio/ar/greeting")
    assert missing.status_code == 404 and "callcenter prompts" in missing.text
    await client.http.aclose()


async def test_an_uploaded_recording_is_converted_and_the_ivr_plays_it_until_deleted(
    app: FastAPI, engine: AsyncEngine, tmp_path: Path
) -> None:
    folder = prompts_dir(app)
    write_silent_prompts(folder, [])
    ivr = Prompts(app.state.settings)
    client = await operator(app, engine)

    sent = await upload(client, "/prompts/ar/greeting/recording", stereo_tone(tmp_path))
    assert sent.status_code == 303 and sent.headers["location"].endswith("done=uploaded#p-greeting")
    stored = folder.resolve() / "recordings" / "ar" / "greeting.wav"
    with wave.open(str(stored), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()) == (
            8000,
            1,
            2,
            8000,
        )
    assert ivr.paths("ar", "greeting") == [str(stored.with_suffix(""))]
    assert ivr.paths("en", "greeting") == [str(prompt_path(folder, "en", "greeting"))]
    played = await client.get("/prompts/audio/ar/greeting")
    assert played.content == stored.read_bytes()

    page = await client.get(sent.headers["location"])
    assert "The recording is in place" in page.text and "Studio recording" in page.text
    assert 'action="/prompts/ar/greeting/recording/delete"' in page.text
    [row] = await audit_rows(engine, "prompt.recording_upload")
    assert row.target == "prompt:ar/greeting" and row.actor.startswith("operator-")
    assert row.details == {"prompt": "greeting", "language": "ar", "seconds": 1.0}

    gone = await client.post("/prompts/ar/greeting/recording/delete", {"page": "1"})
    assert gone.status_code == 303 and not stored.exists()
    assert ivr.paths("ar", "greeting") == [str(prompt_path(folder, "ar", "greeting"))]
    assert (await client.get("/prompts/audio/ar/greeting")).content == (
        prompt_path(folder, "ar", "greeting").with_suffix(".wav").read_bytes()
    )
    [removed] = await audit_rows(engine, "prompt.recording_delete")
    assert removed.details == {"prompt": "greeting", "language": "ar", "seconds": 1.0}
    again = await client.post("/prompts/ar/greeting/recording/delete", {"page": "1"})
    assert again.headers["location"].endswith("done=nothing#p-greeting")
    assert len(await audit_rows(engine, "prompt.recording_delete")) == 1
    await client.http.aclose()


async def test_an_inquiry_question_can_be_recorded_too(
    app: FastAPI, engine: AsyncEngine, tmp_path: Path
) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    client = await operator(app, engine)
    sent = await upload(client, "/prompts/en/q-three-q3/recording", stereo_tone(tmp_path))
    assert sent.status_code == 303
    assert (prompts_dir(app) / "recordings" / "en" / "q-three-q3.wav").is_file()
    assert Prompts(app.state.settings).paths("en", "q-three-q3")[0].endswith("/recordings/en/q-three-q3")
    await client.http.aclose()


async def test_a_text_file_is_refused_with_a_clear_message_and_nothing_is_stored(
    app: FastAPI, engine: AsyncEngine
) -> None:
    client = await operator(app, engine)
    refused = await upload(client, "/prompts/ar/greeting/recording", b"<script>alert(1)</script>\n" * 20)
    assert refused.status_code == 422
    assert "This file is not audio that can be read. Upload a WAV, FLAC or Ogg file." in refused.text
    assert 'aria-invalid="true"' in refused.text  # on the file field of that prompt
    assert '<a href="#file-ar-greeting">' in refused.text  # the summary leads to it
    assert "&lt;script&gt;" not in refused.text and "<script>alert" not in refused.text
    assert not (prompts_dir(app) / "recordings" / "ar" / "greeting.wav").exists()
    assert await audit_rows(engine, "prompt.recording_upload") == []
    await client.http.aclose()


async def test_a_recording_past_the_time_limit_is_refused(
    app: FastAPI, engine: AsyncEngine, tmp_path: Path
) -> None:
    long = sox(tmp_path, "long.wav", "-n", "-r", "8000", "-c", "1", "synth 70 sine 440")
    client = await operator(app, engine)
    refused = await upload(client, "/prompts/en/goodbye/recording", long)
    assert refused.status_code == 422
    assert "The recording lasts 70.0 seconds; the longest allowed is 60 seconds." in refused.text
    assert not (prompts_dir(app) / "recordings" / "en" / "goodbye.wav").exists()
    await client.http.aclose()


async def test_a_file_over_10_mb_is_refused_before_it_is_read_as_audio(
    app: FastAPI, engine: AsyncEngine
) -> None:
    client = await operator(app, engine)
    refused = await upload(client, "/prompts/ar/goodbye/recording", b"RIFF" + b"\0" * (11 * 1024 * 1024))
    assert refused.status_code == 422 and "The file is larger than 10 MB." in refused.text
    left = [p for p in (prompts_dir(app) / "recordings").rglob("*") if not p.is_dir()]
    assert left == []  # no scratch copy left behind either
    await client.http.aclose()


async def test_a_post_without_a_file_asks_for_one_in_arabic(app: FastAPI, engine: AsyncEngine) -> None:
    client, _ = await logged_in(app, engine, "operator")  # an Arabic-speaking operator
    empty = await client.post("/prompts/ar/greeting/recording", {"file": "not a file"})
    assert empty.status_code == 422 and "اختر ملفاً صوتياً لرفعه." in empty.text
    await client.http.aclose()


async def test_a_search_is_shown_back_escaped(app: FastAPI, engine: AsyncEngine) -> None:
    client = await operator(app, engine)
    page = await client.get("/prompts", params={"q": "<script>alert(1)</script>"})
    assert page.status_code == 200 and "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "No prompt matches" in page.text
    await client.http.aclose()


@pytest.mark.parametrize(
    "path",
    [
        "/prompts/audio/ar/..%2F..%2Fsecret",
        "/prompts/audio/ar/..%2F..%2Fsecret.wav",
        "/prompts/audio/ar/..",
        "/prompts/audio/ar/greeting%00",
        "/prompts/audio/ar/no-such-prompt",
        "/prompts/audio/ar/q-nosuch-q1",
        "/prompts/audio/fr/greeting",
        "/prompts/audio/../greeting",
        "/prompts/audio/ar/GREETING",
    ],
)
async def test_paths_and_unknown_ids_are_not_found(app: FastAPI, engine: AsyncEngine, path: str) -> None:
    write_silent_prompts(prompts_dir(app), [])
    (prompts_dir(app) / "secret.wav").write_bytes(b"RIFF private-bytes")
    client = await operator(app, engine)
    response = await client.get(path)
    assert response.status_code == 404 and b"private-bytes" not in response.content
    await client.http.aclose()


@pytest.mark.parametrize(
    "path",
    [
        "/prompts/ar/..%2Fgreeting/recording",
        "/prompts/ar/no-such-prompt/recording",
        "/prompts/xx/greeting/recording",
        "/prompts/ar/%00/recording",
        "/prompts/ar/no-such-prompt/recording/delete",
    ],
)
async def test_uploads_to_unknown_prompts_are_not_found(
    app: FastAPI, engine: AsyncEngine, tmp_path: Path, path: str
) -> None:
    client = await operator(app, engine)
    response = await upload(client, path, stereo_tone(tmp_path))
    assert response.status_code == 404
    assert not (prompts_dir(app) / "recordings").exists() or not any(
        (prompts_dir(app) / "recordings").rglob("*.wav")
    )
    await client.http.aclose()


@pytest.mark.parametrize("role", ["analyst", "agent"])
async def test_other_roles_are_refused(app: FastAPI, engine: AsyncEngine, tmp_path: Path, role: str) -> None:
    write_silent_prompts(prompts_dir(app), [])
    client, _ = await logged_in(app, engine, role)
    assert (await client.get("/prompts")).status_code == 403
    assert (await client.get("/prompts/audio/ar/greeting")).status_code == 403
    assert (await upload(client, "/prompts/ar/greeting/recording", stereo_tone(tmp_path))).status_code == 403
    assert (await client.post("/prompts/ar/greeting/recording/delete", {})).status_code == 403
    assert not (prompts_dir(app) / "recordings").exists()
    await client.http.aclose()


async def test_an_upload_without_the_csrf_token_is_refused(
    app: FastAPI, engine: AsyncEngine, tmp_path: Path
) -> None:
    client = await operator(app, engine)
    response = await client.http.post(
        "/prompts/ar/greeting/recording", files={"file": ("t.wav", stereo_tone(tmp_path), "audio/wav")}
    )
    assert response.status_code == 403
    forged = await client.post("/prompts/ar/greeting/recording/delete", {"csrf_token": "forged"}, csrf=False)
    assert forged.status_code == 403
    assert not (prompts_dir(app) / "recordings").exists()
    assert await audit_rows(engine, "prompt.recording_upload") == []
    await client.http.aclose()


async def test_an_anonymous_visitor_is_sent_to_the_login(app: FastAPI) -> None:
    from tests.webapp import staff_client

    async with staff_client(app) as client:
        response = await client.get("/prompts/audio/ar/greeting")
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_the_sample_tone_is_what_a_studio_hands_over(tmp_path: Path) -> None:
    """The upload above is 44.1 kHz stereo (WAVE_FORMAT_EXTENSIBLE, which the wave module and
    some Asterisk builds do not read): the conversion is what makes it playable."""
    (tmp_path / "in.wav").write_bytes(stereo_tone(tmp_path))
    probe = subprocess.run(["soxi", str(tmp_path / "in.wav")], check=True, capture_output=True, text=True)
    assert "Channels       : 2" in probe.stdout and "Sample Rate    : 44100" in probe.stdout
