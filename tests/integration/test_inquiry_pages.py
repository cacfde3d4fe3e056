"""The /inquiries pages: list, create by YAML file or form, detail with preview, status."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from redis import asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import SQLModel

from callcenter import models
from callcenter.accounts.roles import MFA_REQUIRED, Role
from callcenter.inquiries import create_inquiry
from callcenter.inquiry.definition import InquiryStatus
from callcenter.inquiry.schema import parse_inquiry_yaml
from callcenter.settings import Settings
from tests.conftest import make_settings
from tests.factories import SAMPLE, THREE_QUESTIONS, make_inquiry
from tests.webapp import StaffClient, logged_in, make_user, running_app

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def settings(tmp_path: Path, engine: AsyncEngine, redis_db: int) -> Settings:
    """The test's settings, with prompts in the test's own directory."""
    return make_settings(
        tmp_path, engine.url.render_as_string(hide_password=False), redis_db, prompts_dir=tmp_path / "prompts"
    )


@pytest.fixture
async def web(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as app:
        yield app


async def _login(
    web: FastAPI, engine: AsyncEngine, role: str, **user: Any
) -> tuple[StaffClient, models.User]:
    """Logged in the whole way (the second factor for the roles that need it), with the CSRF
    token of one of these pages (the landing pages may not exist yet)."""
    if Role(role) not in MFA_REQUIRED:
        client, row = await logged_in(web, engine, role, **user)
    else:
        secret = pyotp.random_base32()
        row = await make_user(engine, role, totp_secret=secret, **user)
        client = StaffClient(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=web, client=("203.0.113.7", 50000)),
                base_url="https://1415.test",
            )
        )
        assert (await client.login(row.email)).headers["location"] == "/login/totp"
        assert (await client.post("/login/totp", {"code": pyotp.TOTP(secret).now()})).status_code == 303
    await client.get("/inquiries")
    return client, row


async def _count(engine: AsyncEngine, model: type[SQLModel]) -> int:
    async with AsyncSession(engine) as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def _audits(engine: AsyncEngine, action: str) -> list[models.AuditLog]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(select(models.AuditLog).where(models.AuditLog.action == action))  # type: ignore[arg-type]
        return list(rows.scalars())


async def _inquiry(engine: AsyncEngine, slug: str) -> models.Inquiry | None:
    async with AsyncSession(engine) as session:
        found = await session.execute(select(models.Inquiry).where(models.Inquiry.slug == slug))  # type: ignore[arg-type]
        return found.scalar_one_or_none()


async def _upload(client: StaffClient, content: bytes, name: str = "inquiry.yaml") -> str:
    await client.get("/inquiries/new")
    response = await client.post(
        "/inquiries", {"source": "file"}, files={"file": (name, content, "application/yaml")}
    )
    return f"{response.status_code}\n{response.text}"


def _form(**given: str) -> dict[str, str]:
    base = {
        "source": "form",
        "slug": "street-lights",
        "title_ar": "إنارة الشوارع",
        "title_en": "Street lights",
        "intro_ar": "",
        "intro_en": "",
        "thanks_ar": "",
        "thanks_en": "",
        "q1_key": "working",
        "q1_kind": "yes_no",
        "q1_text_ar": "هل تعمل إنارة شارعك؟",
        "q1_text_en": "Do the lights in your street work?",
        "q2_key": "why",
        "q2_kind": "choice",
        "q2_text_ar": "ما السبب؟",
        "q2_text_en": "Why?",
        "q2_options": "broken = معطلة | Broken\nnone = لا توجد إنارة | There are none\n",
    }
    return base | given


# -- creating ----------------------------------------------------------------------------------


async def test_an_operator_creates_an_inquiry_by_uploading_its_yaml_file(
    web: FastAPI, engine: AsyncEngine
) -> None:
    client, user = await _login(web, engine, "operator")
    await client.get("/inquiries/new")
    response = await client.post(
        "/inquiries",
        {"source": "file"},
        files={"file": ("roads.yaml", SAMPLE.read_bytes(), "application/yaml")},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/inquiries/return-of-life-roads?done=created"
    row = await _inquiry(engine, "return-of-life-roads")
    assert row is not None and row.status == "draft" and row.switch_to == "voice"
    assert await _count(engine, models.Question) == 3
    (entry,) = await _audits(engine, "inquiry.create")
    assert (entry.actor, entry.actor_id, entry.target) == (user.email, user.id, "return-of-life-roads")
    assert entry.address == "203.0.113.7"
    page = await client.get(response.headers["location"])
    assert page.status_code == 200 and "استبيان أعمال الطرق لبرنامج عودة الحياة" in page.text
    await client.http.aclose()


async def test_an_operator_creates_an_inquiry_with_the_form(web: FastAPI, engine: AsyncEngine) -> None:
    client, user = await _login(web, engine, "operator")
    page = await client.get("/inquiries/new")
    assert (
        page.status_code == 200
        and 'name="q5_key"' in page.text
        and 'enctype="multipart/form-data"' in page.text
    )
    response = await client.post(
        "/inquiries", _form(q3_key="score", q3_kind="rating", q3_text_ar="قيّم", q3_max="10")
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/inquiries/street-lights?done=created"
    async with AsyncSession(engine) as session:
        questions = (
            (
                await session.execute(select(models.Question).order_by(models.Question.position))  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
    assert [(q.key, q.kind) for q in questions] == [
        ("working", "yes_no"),
        ("why", "choice"),
        ("score", "rating"),
    ]
    assert questions[1].options == [
        {"value": "broken", "ar": "معطلة", "en": "Broken", "synonyms": []},
        {"value": "none", "ar": "لا توجد إنارة", "en": "There are none", "synonyms": []},
    ]
    assert (questions[2].min_value, questions[2].max_value) == (None, 10)
    (entry,) = await _audits(engine, "inquiry.create")
    assert entry.actor_id == user.id
    await client.http.aclose()


async def test_a_yaml_syntax_error_names_its_line_and_creates_nothing(
    web: FastAPI, engine: AsyncEngine
) -> None:
    client, _ = await _login(web, engine, "operator", language="en")
    result = await _upload(client, b"slug: broken\ntitle: {ar: x\nquestions: [\n")
    assert result.startswith("400") and "not valid YAML: line 3" in result, result
    assert await _count(engine, models.Inquiry) == 0
    await client.http.aclose()


async def test_a_schema_error_in_the_file_names_the_field_path(web: FastAPI, engine: AsyncEngine) -> None:
    client, _ = await _login(web, engine, "operator", language="en")
    bad = THREE_QUESTIONS.replace("kind: yes_no", "kind: maybe")
    result = await _upload(client, bad.encode())
    assert result.startswith("400") and "questions.1.kind: Choose one of: " in result, result
    result = await _upload(
        client, THREE_QUESTIONS.replace("title: {ar: ثلاثة أسئلة, en: Three questions}\n", "").encode()
    )
    assert result.startswith("400") and "title: This is required." in result
    skip = THREE_QUESTIONS.replace("text: {ar: السؤال الأول", 'next: {"*": nowhere}, text: {ar: السؤال الأول')
    result = await _upload(client, skip.encode())
    assert result.startswith("400") and "skip target &#39;nowhere&#39; is not a question" in result, result
    result = await _upload(client, b"- just\n- a list\n")
    assert result.startswith("400") and "slug, title and questions" in result
    assert await _count(engine, models.Inquiry) == 0
    await client.http.aclose()


async def test_a_file_that_is_not_utf8_is_refused(web: FastAPI, engine: AsyncEngine) -> None:
    client, _ = await _login(web, engine, "operator", language="en")
    result = await _upload(client, THREE_QUESTIONS.encode("cp1256"))
    assert result.startswith("400") and "not UTF-8" in result
    assert await _count(engine, models.Inquiry) == 0
    await client.http.aclose()


async def test_a_file_over_256_kb_or_none_at_all_is_refused(web: FastAPI, engine: AsyncEngine) -> None:
    client, _ = await _login(web, engine, "operator", language="en")
    huge = (THREE_QUESTIONS + "#" + "x" * (256 * 1024)).encode()
    result = await _upload(client, huge)
    assert result.startswith("413") and "larger than 256 KB" in result
    result = await _upload(client, b"   \n")
    assert result.startswith("400") and "The file is empty." in result
    response = await client.post("/inquiries", {"source": "file"})
    assert response.status_code == 400 and "Choose a YAML file" in response.text
    assert await _count(engine, models.Inquiry) == 0
    await client.http.aclose()


async def test_form_errors_are_listed_and_what_was_typed_is_kept_escaped(
    web: FastAPI, engine: AsyncEngine
) -> None:
    client, _ = await _login(web, engine, "operator", language="en")
    response = await client.post(
        "/inquiries",
        _form(
            slug="Bad Slug",
            title_en=SCRIPT,
            q1_key="1bad",
            q2_options="broken = معطلة | Broken\nno equals sign here\n",
            q3_key="level",
            q3_kind="rating",
            q3_text_ar="مستوى",
            q3_min="low",
        ),
    )
    assert response.status_code == 400
    text = response.text
    assert "There is a problem" in text
    assert (
        'href="#f-slug"' in text
        and "Short name (slug): Use lowercase Latin letters, digits and hyphens" in text
    )
    assert "Question 1 — Key: Use lowercase Latin letters, digits and underscores" in text
    assert "Question 2, option line 2: write value = Arabic label | English label." in text
    assert "Question 3 — Lowest answer: Enter a whole number." in text
    assert text.index("Short name (slug):") < text.index("Question 1 — Key:") < text.index("option line 2")
    assert SCRIPT not in text and f'value="{ESCAPED}"' in text
    assert 'value="Bad Slug"' in text and "no equals sign here" in text
    assert await _count(engine, models.Inquiry) == 0
    await client.http.aclose()


async def test_a_form_without_questions_or_titles_too_long_is_refused(
    web: FastAPI, engine: AsyncEngine
) -> None:
    client, _ = await _login(web, engine, "operator", language="en")
    empty = {k: "" for k in _form() if k.startswith("q")}
    response = await client.post("/inquiries", _form(**empty))
    assert response.status_code == 400 and "Questions: Write at least one question." in response.text
    response = await client.post("/inquiries", _form(title_ar="ط" * 301))
    assert response.status_code == 400 and "Title in Arabic: At most 300 characters." in response.text
    response = await client.post("/inquiries", _form(q1_kind="<b>odd</b>"))
    assert response.status_code == 400 and "Question 1 — Kind: Choose one of: " in response.text
    assert "<b>odd</b>" not in response.text
    assert await _count(engine, models.Inquiry) == 0
    await client.http.aclose()


async def test_a_slug_that_exists_is_a_form_error(web: FastAPI, engine: AsyncEngine) -> None:
    client, _ = await _login(web, engine, "operator", language="en")
    assert (await client.post("/inquiries", _form())).status_code == 303
    again = await client.post("/inquiries", _form(title_en="Another"))
    assert again.status_code == 409
    assert "An inquiry with the short name street-lights already exists." in again.text
    assert 'value="Another"' in again.text
    result = await _upload(client, THREE_QUESTIONS.encode())
    assert result.startswith("303")
    result = await _upload(client, THREE_QUESTIONS.encode())
    assert result.startswith("409") and "short name three already exists" in result
    assert await _count(engine, models.Inquiry) == 2
    assert len(await _audits(engine, "inquiry.create")) == 2
    await client.http.aclose()


async def test_posting_without_the_csrf_token_is_refused(web: FastAPI, engine: AsyncEngine) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS, status=InquiryStatus.DRAFT)
    client, _ = await _login(web, engine, "operator")
    assert (await client.post("/inquiries", _form(), csrf=False)).status_code == 403
    assert (await client.post("/inquiries", _form(csrf_token="forged"), csrf=False)).status_code == 403
    refused = await client.post("/inquiries/three/status", {"status": "running"}, csrf=False)
    assert refused.status_code == 403
    assert await _count(engine, models.Inquiry) == 1
    row = await _inquiry(engine, "three")
    assert row is not None and row.status == "draft"
    await client.http.aclose()


# -- who may do what ---------------------------------------------------------------------------


async def test_an_analyst_reads_but_cannot_create_or_change(web: FastAPI, engine: AsyncEngine) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS, status=InquiryStatus.DRAFT)
    client, _ = await _login(web, engine, "analyst", language="en")
    listing = await client.get("/inquiries")
    assert listing.status_code == 200 and "Three questions" in listing.text
    assert 'href="/inquiries/new"' not in listing.text
    detail = await client.get("/inquiries/three")
    assert detail.status_code == 200 and "Change the status" not in detail.text
    assert "<audio" not in detail.text  # the prompt audio is for those who run inquiries
    assert (await client.get("/inquiries/new")).status_code == 403
    assert (await client.post("/inquiries", _form())).status_code == 403
    assert (await client.post("/inquiries/three/status", {"status": "running"})).status_code == 403
    assert await _count(engine, models.Inquiry) == 1
    await client.http.aclose()


@pytest.mark.parametrize("role", ["admin", "supervisor"])
async def test_admins_create_and_supervisors_only_read(web: FastAPI, engine: AsyncEngine, role: str) -> None:
    client, _ = await _login(web, engine, role, language="en")
    assert (await client.get("/inquiries")).status_code == 200
    new = await client.get("/inquiries/new")
    created = await client.post("/inquiries", _form())
    if role == "admin":
        assert (new.status_code, created.status_code) == (200, 303)
        assert (await client.get("/inquiries/street-lights")).status_code == 200
    else:
        assert (new.status_code, created.status_code) == (403, 403)
        assert await _count(engine, models.Inquiry) == 0
    await client.http.aclose()


@pytest.mark.parametrize("role", ["agent", "officer"])
async def test_agents_and_officers_cannot_see_the_inquiries(
    web: FastAPI, engine: AsyncEngine, role: str
) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    client, _ = await _login(web, engine, role)
    assert (await client.get("/inquiries")).status_code == 403
    assert (await client.get("/inquiries/three")).status_code == 403
    await client.http.aclose()


# -- the list ----------------------------------------------------------------------------------


async def test_the_list_pages_by_fifty_newest_first_and_filters_by_status(
    web: FastAPI, engine: AsyncEngine
) -> None:
    template = parse_inquiry_yaml(THREE_QUESTIONS)
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        for n in range(51):
            data = template.model_copy(update={"slug": f"inquiry-{n:02d}"})
            await create_inquiry(session, data, actor="test")
    await make_inquiry(engine, yaml_text=SAMPLE.read_text(encoding="utf-8"))  # running, the newest
    client, _ = await _login(web, engine, "supervisor", language="en")
    first = await client.get("/inquiries")
    assert first.status_code == 200
    slugs = re.findall(r'<td class="mono" dir="ltr">([a-z0-9-]+)</td>', first.text)
    assert len(slugs) == 50 and slugs[:2] == ["return-of-life-roads", "inquiry-50"]
    assert "52 inquiries" in first.text and "Page 1 of 2" in first.text
    assert 'href="/inquiries?page=2"' in first.text
    second = await client.get("/inquiries?page=2")
    assert re.findall(r'<td class="mono" dir="ltr">([a-z0-9-]+)</td>', second.text) == [
        "inquiry-01",
        "inquiry-00",
    ]
    running = await client.get("/inquiries?status=running")
    assert re.findall(r'<td class="mono" dir="ltr">([a-z0-9-]+)</td>', running.text) == [
        "return-of-life-roads"
    ]
    assert "Return of Life road works inquiry" in running.text and '<td class="num">3</td>' in running.text
    odd = await client.get("/inquiries", params={"status": SCRIPT, "page": "x"})
    assert odd.status_code == 200 and SCRIPT not in odd.text and "Page 1 of 2" in odd.text
    beyond = await client.get("/inquiries?page=999999999")
    assert beyond.status_code == 200 and "Page 2 of 2" in beyond.text
    await client.http.aclose()


async def test_the_title_follows_the_page_language(web: FastAPI, engine: AsyncEngine) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    only_ar = THREE_QUESTIONS.replace("slug: three", "slug: only-ar").replace(", en: Three questions", "")
    await make_inquiry(engine, yaml_text=only_ar)
    arabic, _ = await _login(web, engine, "operator", language="ar")
    page = (await arabic.get("/inquiries")).text
    assert page.count("ثلاثة أسئلة") == 2 and "Three questions" not in page
    english, _ = await _login(web, engine, "operator", language="en")
    page = (await english.get("/inquiries")).text
    assert "Three questions" in page and "ثلاثة أسئلة" in page  # the Arabic one has no English title
    await arabic.http.aclose()
    await english.http.aclose()


async def test_a_script_in_the_title_is_shown_escaped(web: FastAPI, engine: AsyncEngine) -> None:
    hostile = THREE_QUESTIONS.replace("ثلاثة أسئلة", f'"{SCRIPT}"').replace("First question", SCRIPT)
    await make_inquiry(engine, yaml_text=hostile)
    client, _ = await _login(web, engine, "operator")
    for path in ("/inquiries", "/inquiries/three"):
        page = await client.get(path)
        assert page.status_code == 200 and SCRIPT not in page.text and ESCAPED in page.text
    await client.http.aclose()


# -- the detail and its preview ----------------------------------------------------------------


async def test_the_preview_shows_each_question_with_encoding_and_segments_per_language(
    web: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    long_one = THREE_QUESTIONS.replace("Third question", "Third question " + "is rather long " * 12)
    await make_inquiry(engine, yaml_text=long_one, status=InquiryStatus.DRAFT)
    wav = settings.prompts_dir / "audio" / "en" / "q-three-q2.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF")
    client, _ = await _login(web, engine, "operator", language="en")
    page = await client.get("/inquiries/three")
    assert page.status_code == 200
    block = (
        r'<div class="preview" data-language="(ar|en)">(.*?)</div>\s*(?=<div class="preview"|<h3|</section)'
    )
    blocks = re.findall(block, page.text, re.S)
    by_question = [blocks[i : i + 2] for i in range(2, 8, 2)]  # after the two call openings
    (ar1, arabic), (en1, english) = by_question[0]
    assert (ar1, en1) == ("ar", "en")
    assert "السؤال الأول\nأرسل رقماً من 1 إلى 5\nلإيقاف الرسائل أرسل توقف" in arabic
    assert "Encoding: UCS-2" in arabic and re.search(r"·\s*1 segment\s", arabic)
    assert "First question\nReply with a number from 1 to 5\nReply STOP to opt out" in english
    assert "Encoding: GSM-7" in english and re.search(r"·\s*1 segment\s", english)
    assert "Second question\nReply 1 (yes) or 2 (no)" in by_question[1][1][1]
    assert re.search(r"·\s*2 segments\s", by_question[2][1][1])  # the long English one
    # voice: the IVR's prompt ids, a player only where the WAV exists
    assert '<audio controls preload="none" src="/prompts/audio/en/q-three-q2">' in page.text
    assert 'src="/prompts/audio/ar/q-three-q2"' not in page.text
    assert "q-three-q1" in page.text and "rating-hint" in page.text and "not rendered yet" in page.text
    assert "q-three-_thanks" in page.text and "Thank you for taking part." in page.text
    await client.http.aclose()


async def test_the_pages_speak_arabic_to_an_arabic_reader(web: FastAPI, engine: AsyncEngine) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    client, _ = await _login(web, engine, "operator", language="ar")
    listing = await client.get("/inquiries")
    assert 'dir="rtl"' in listing.text and "استطلاع واحد" in listing.text and "جارٍ" in listing.text
    detail = await client.get("/inquiries/three")
    assert "ما يصل إلى المواطنين" in detail.text and "الترميز: UCS-2" in detail.text
    assert "جزء واحد" in detail.text and "إيقاف مؤقت" in detail.text
    new = await client.get("/inquiries/new")
    assert "رفع ملف YAML" in new.text and "السؤال 5" in new.text
    await client.http.aclose()


async def test_an_unknown_inquiry_is_not_found(web: FastAPI, engine: AsyncEngine) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    client, _ = await _login(web, engine, "operator")
    assert (await client.get("/inquiries/nothing-here")).status_code == 404
    assert (await client.get("/inquiries/1")).status_code == 404  # a slug, never an id
    assert (await client.post("/inquiries/nothing-here/status", {"status": "closed"})).status_code == 404
    await client.http.aclose()


# -- status ------------------------------------------------------------------------------------


async def test_the_status_buttons_move_the_inquiry_and_are_audited(web: FastAPI, engine: AsyncEngine) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS, status=InquiryStatus.DRAFT)
    client, user = await _login(web, engine, "operator", language="en")
    page = await client.get("/inquiries/three")
    assert "Start now" in page.text and 'name="at"' in page.text and "Pause" not in page.text
    moved = await client.post("/inquiries/three/status", {"status": "running"})
    assert moved.status_code == 303 and moved.headers["location"] == "/inquiries/three?done=status"
    page = await client.get(moved.headers["location"])
    assert (
        "The status has been changed." in page.text and "Pause" in page.text and "Start now" not in page.text
    )
    assert (await client.post("/inquiries/three/status", {"status": "paused"})).status_code == 303
    page = await client.get("/inquiries/three")
    assert "Resume" in page.text
    row = await _inquiry(engine, "three")
    assert row is not None and row.status == "paused"
    (running,) = await _audits(engine, "inquiry.running")
    (paused,) = await _audits(engine, "inquiry.paused")
    assert (running.actor_id, paused.actor_id, paused.target) == (user.id, user.id, "three")
    await client.http.aclose()


async def test_scheduling_takes_a_future_tripoli_time(web: FastAPI, engine: AsyncEngine) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS, status=InquiryStatus.DRAFT)
    client, _ = await _login(web, engine, "operator", language="en")
    for at, message in (
        ("", "Give the start time as a date and a time"),
        ("next tuesday", "Give the start time as a date and a time"),
        ("0001-01-01T00:30", "Give the start time as a date and a time"),
        ("2020-01-01T10:00", "The start time must be in the future."),
    ):
        response = await client.post("/inquiries/three/status", {"status": "scheduled", "at": at})
        assert response.status_code == 400 and message in response.text
    response = await client.post("/inquiries/three/status", {"status": "scheduled", "at": SCRIPT})
    assert response.status_code == 400 and SCRIPT not in response.text
    response = await client.post("/inquiries/three/status", {"status": "scheduled", "at": "2030-01-01T10:00"})
    assert response.status_code == 303
    row = await _inquiry(engine, "three")
    assert row is not None and row.status == "scheduled" and row.scheduled_at is not None
    assert row.scheduled_at.replace(tzinfo=row.scheduled_at.tzinfo or UTC) == datetime(
        2030, 1, 1, 8, tzinfo=UTC
    )
    page = await client.get("/inquiries/three")
    assert "2030-01-01 10:00" in page.text and "Back to draft" in page.text
    assert len(await _audits(engine, "inquiry.scheduled")) == 1
    await client.http.aclose()


async def test_a_move_the_life_cycle_refuses_shows_an_error_and_changes_nothing(
    web: FastAPI, engine: AsyncEngine
) -> None:
    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)  # running
    client, _ = await _login(web, engine, "operator", language="en")
    refused = await client.post("/inquiries/three/status", {"status": "draft"})
    assert refused.status_code == 409
    assert "An inquiry that is “Running” cannot become “Draft”." in refused.text
    refused = await client.post("/inquiries/three/status", {"status": "scheduled", "at": "2030-01-01T10:00"})
    assert refused.status_code == 409 and "cannot become “Scheduled”" in refused.text
    unknown = await client.post("/inquiries/three/status", {"status": SCRIPT})
    assert unknown.status_code == 400 and "Choose one of the statuses offered." in unknown.text
    assert SCRIPT not in unknown.text
    row = await _inquiry(engine, "three")
    assert row is not None and row.status == "running" and row.scheduled_at is None
    assert await _audits(engine, "inquiry.draft") == [] and await _audits(engine, "inquiry.scheduled") == []
    await client.http.aclose()


async def test_the_json_api_still_creates_and_reads(web: FastAPI, engine: AsyncEngine) -> None:
    """The pages sit beside the API: it keeps working for tokens and tools."""
    client, _ = await _login(web, engine, "operator")
    response = await client.http.post(
        "/api/inquiries", content=THREE_QUESTIONS.encode(), headers={"Content-Type": "application/yaml",
                                                                     "X-CSRF-Token": client.csrf}
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert (await client.http.get("/api/inquiries/three")).json()["slug"] == "three"
    await client.http.aclose()
