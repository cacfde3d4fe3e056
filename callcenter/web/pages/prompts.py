"""``/prompts``: what the voice line says, the audio the IVR plays, and studio recordings.

The domain (which prompts exist, where the IVR finds a file, converting an upload) lives in
``callcenter.voice.recordings``; these handlers only read the form and render.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from callcenter.audit import audit
from callcenter.errors import NotFound
from callcenter.inquiry.definition import LANGUAGES, Language
from callcenter.messages import N_
from callcenter.prompts import VOICES, voice_for
from callcenter.settings import Settings
from callcenter.voice.recordings import (
    MAX_BYTES,
    MAX_SECONDS,
    RecordingRejected,
    audio_file,
    converted,
    delete_recording,
    find_prompt,
    list_prompts,
    parse_language,
    prompt_state,
    recording_info,
)
from callcenter.web.deps import SessionDep, SettingsDep
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, form_text, redirect
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)
PER_PAGE = 50
LANGUAGE_NAMES = {"ar": N_("Arabic"), "en": N_("English")}
DONE = {
    "uploaded": N_("The recording is in place: the voice line plays it from now on."),
    "deleted": N_("The recording is deleted: the voice line plays the synthetic voice again."),
    "nothing": N_("There was no recording to delete."),
}


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or "1"), 10_000))
    except ValueError:
        return 1


async def _listing(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    *,
    page: int,
    q: str,
    notice: str | None = None,
    error: str | None = None,
    error_for: tuple[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    entries = await list_prompts(session, settings.prompts_dir)
    needle = q.strip().casefold()
    if needle:
        entries = [
            e
            for e in entries
            if needle in e.prompt.id or needle in e.prompt.ar.casefold() or needle in e.prompt.en.casefold()
        ]
    pages = max(1, -(-len(entries) // PER_PAGE))
    page = min(page, pages)
    rows: list[dict[str, Any]] = []
    missing = 0
    on_page = False
    for entry in entries[(page - 1) * PER_PAGE : page * PER_PAGE]:
        voices = []
        for language in LANGUAGES:
            state = prompt_state(settings.prompts_dir, language, entry.prompt)
            missing += state.kind == "missing"
            voices.append(
                {
                    "language": language,
                    "language_name": _(LANGUAGE_NAMES[language]),
                    "text": entry.prompt.text(language),
                    "text_lang": "ar"
                    if voice_for(entry.prompt.text(language), language) == VOICES["ar"]
                    else "en",
                    "state": state,
                    "audio": f"/prompts/audio/{language}/{entry.prompt.id}",
                    "action": f"/prompts/{language}/{entry.prompt.id}/recording",
                    "error": error if error_for == (language, entry.prompt.id) else None,
                }
            )
        rows.append({"entry": entry, "voices": voices})
        on_page = on_page or any(voice["error"] for voice in voices)
    context = {
        "rows": rows,
        "page": page,
        "pages": pages,
        "total": len(entries),
        "q": q,
        "missing": missing,
        "notice": notice,
        "error": error,
        "error_field": f"file-{error_for[0]}-{error_for[1]}" if error and error_for and on_page else None,
        "max_mb": MAX_BYTES // (1024 * 1024),
        "max_seconds": f"{MAX_SECONDS:g}",
        "query": lambda **kw: urlencode({"q": q, "page": page} | kw),
    }
    return render(request, "prompts/list.html", context, status_code=status_code)


@router.get("/prompts")
async def prompts_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page: str | None = None,
    q: str | None = None,
    done: str | None = None,
) -> Response:
    notice = DONE.get(done or "")
    return await _listing(
        request,
        session,
        settings,
        page=_page_number(page),
        q=(q or "")[:100],
        notice=_(notice) if notice else None,
    )


@router.get("/prompts/audio/{language}/{prompt_id}")
async def prompt_audio(
    language: str, prompt_id: str, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    """The WAV file the IVR plays for this prompt now (the recording, else the rendered one)."""
    lang = parse_language(language)
    prompt = await find_prompt(session, settings.prompts_dir, prompt_id)
    path = audio_file(settings.prompts_dir, lang, prompt.id)
    if path is None:
        raise NotFound(N_("This prompt has not been rendered yet: run “callcenter prompts” on the server."))
    return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-cache"})


async def _back(request: Request) -> tuple[int, str]:
    return _page_number(await form_text(request, "page", limit=6)), await form_text(request, "q", limit=100)


def _after(page: int, q: str, done: str, prompt_id: str) -> Response:
    return redirect(f"/prompts?{urlencode({'q': q, 'page': page, 'done': done})}#p-{prompt_id}")


@router.post("/prompts/{language}/{prompt_id}/recording")
async def upload_recording(
    request: Request,
    language: str,
    prompt_id: str,
    actor: CurrentActor,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    lang: Language = parse_language(language)
    prompt = await find_prompt(session, settings.prompts_dir, prompt_id)
    page, q = await _back(request)
    upload = (await request.form()).get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise RecordingRejected(N_("Choose an audio file to upload."))
        async with converted(
            settings.prompts_dir, lang, prompt, upload.file, uploaded_by=actor.name
        ) as recording:
            audit(
                session,
                actor=actor,
                action="prompt.recording_upload",
                target=f"prompt:{lang}/{prompt.id}",
                after={"seconds": recording.seconds},
                prompt=prompt.id,
                language=lang,
                seconds=recording.seconds,
            )
            await session.flush()  # the audit row is written before the IVR can hear the file
            recording.install()
    except RecordingRejected as exc:
        return await _listing(
            request,
            session,
            settings,
            page=page,
            q=q,
            error=exc.text(_),
            error_for=(lang, prompt.id),
            status_code=422,
        )
    return _after(page, q, "uploaded", prompt.id)


@router.post("/prompts/{language}/{prompt_id}/recording/delete")
async def delete_prompt_recording(
    request: Request,
    language: str,
    prompt_id: str,
    actor: CurrentActor,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    lang: Language = parse_language(language)
    prompt = await find_prompt(session, settings.prompts_dir, prompt_id)
    page, q = await _back(request)
    info = recording_info(settings.prompts_dir, lang, prompt.id)
    if info is None:
        return _after(page, q, "nothing", prompt.id)
    audit(
        session,
        actor=actor,
        action="prompt.recording_delete",
        target=f"prompt:{lang}/{prompt.id}",
        before={"seconds": info.seconds},
        prompt=prompt.id,
        language=lang,
        seconds=info.seconds,
    )
    await session.flush()  # audited first, as for an upload
    delete_recording(settings.prompts_dir, lang, prompt.id)
    return _after(page, q, "deleted", prompt.id)
