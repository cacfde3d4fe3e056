"""``/admin/requests/texts``: the SMS texts citizens get about their service requests, edited
in the app. The list shows each text in Arabic and English as it is sent now, where it comes
from (the packaged default, the data directory's ``request_texts.yaml``, or an edit made here)
and how many SMS it costs with sample values; a text's page previews an edit before it is saved
(broken or unknown placeholders are refused, nothing saved) and restores the default. Admins
who see every municipality only, as for the catalogue: the texts are the whole country's.
Every save is audited.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.accounts.principal import Principal
from callcenter.errors import NotFound
from callcenter.messages import N_
from callcenter.requests.citizen_texts import LANGUAGES, CitizenTexts, allowed_placeholders, citizen_texts
from callcenter.requests.text_overrides import (
    Edited,
    default_of,
    edited,
    known,
    merged,
    restore_default,
    save,
    source_of,
)
from callcenter.requests.text_preview import (
    PLACEHOLDERS,
    TEXT_LIMIT,
    check,
    every_text,
    preview,
    purpose,
    section_and_name,
)
from callcenter.settings import Settings
from callcenter.web.deps import SessionDep, SettingsDep
from callcenter.web.guard import Forbidden
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_text, isolated, redirect
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

NOTICES: Final = {
    "saved": N_("The text is saved: citizens get it from their next message."),
    "restored": N_("The text is back to its default."),
}
NO_SUCH: Final = N_("No such text.")


def _may_change(user: Principal) -> None:
    if user.scoped:
        raise Forbidden("the citizens' texts are the whole country's")


def _pair(texts: CitizenTexts, section: str, name: str) -> dict[str, str]:
    return dict((texts.texts if section == "texts" else texts.statuses)[name])


def _shown(section: str, name: str, pair: dict[str, str], texts: CitizenTexts) -> dict[str, Any]:
    """Each language's text, its preview and its cost, as the templates show them."""
    return {
        lang: {"text": pair[lang], "preview": preview(section, name, pair[lang], lang, texts)}
        for lang in LANGUAGES
    }


async def _state(
    session: AsyncSession, settings: Settings
) -> tuple[CitizenTexts, dict[tuple[str, str], Edited]]:
    """The texts as citizens get them now, and the edits saved here."""
    rows = await edited(await session.connection())
    return merged(citizen_texts(settings), rows), rows


@router.get("/admin/requests/texts")
async def texts_list(
    request: Request, session: SessionDep, settings: SettingsDep, done: str | None = None
) -> Response:
    texts, rows = await _state(session, settings)
    groups = []
    for group, title, ids in every_text(texts):
        items = []
        for text_id in ids:
            section, name = section_and_name(text_id)
            items.append(
                {
                    "id": text_id, "name": name, "purpose": purpose(section, name),
                    "source": source_of(section, name, settings, rows),
                    "languages": _shown(section, name, _pair(texts, section, name), texts),
                }
            )  # fmt: skip
        groups.append({"key": group, "title": title, "items": items})
    notice = _(NOTICES[done]) if done in NOTICES else None
    return render(request, "admin/request_texts.html", {"groups": groups, "notice": notice})


async def _text_context(
    session: AsyncSession, settings: Settings, text_id: str
) -> tuple[str, str, CitizenTexts, dict[str, Any]]:
    section, name = section_and_name(text_id)
    if not known(section, name):
        raise NotFound(NO_SUCH)
    texts, rows = await _state(session, settings)
    base = citizen_texts(settings)
    current = _pair(texts, section, name)
    default = default_of(section, name)
    context: dict[str, Any] = {
        "text_id": text_id, "section": section, "name": name, "purpose": purpose(section, name),
        "source": source_of(section, name, settings, rows), "saved": rows.get((section, name)),
        "default": default, "base": _pair(base, section, name),
        "placeholders": [(p, PLACEHOLDERS.get(p, "")) for p in sorted(allowed_placeholders(default["ar"]))],
        "form": current, "shown": _shown(section, name, current, texts), "errors": {}, "limit": TEXT_LIMIT,
        "notice": None, "previewing": False,
    }  # fmt: skip
    return section, name, texts, context


@router.get("/admin/requests/texts/{text_id}")
async def text_page(
    request: Request, text_id: str, session: SessionDep, settings: SettingsDep, done: str | None = None
) -> Response:
    context = (await _text_context(session, settings, text_id))[3]
    context["notice"] = _(NOTICES[done]) if done in NOTICES else None
    return render(request, "admin/request_text.html", context)


@router.post("/admin/requests/texts/{text_id}")
async def edit_text(
    request: Request,
    text_id: str,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """``action=preview`` shows the edit with the sample values and its cost; ``save`` keeps it."""
    _may_change(user)
    section, name, texts, context = await _text_context(session, settings, text_id)
    typed = {lang: (await form_text(request, lang, limit=TEXT_LIMIT + 1000)).strip() for lang in LANGUAGES}
    problems = check(section, name, typed)
    context["form"] = typed
    context["shown"] = _shown(section, name, typed, texts)
    context["errors"] = {p.language: isolated(_(p.message), p.values) for p in problems}
    if problems:
        return render(request, "admin/request_text.html", context, status_code=400)
    if await form_text(request, "action", limit=10) != "save":
        context["previewing"] = True
        return render(request, "admin/request_text.html", context)
    await save(session, section, name, typed, actor=actor, before=_pair(texts, section, name))
    return redirect(f"/admin/requests/texts/{text_id}?done=saved")


@router.post("/admin/requests/texts/{text_id}/default")
async def restore_text(
    request: Request, text_id: str, user: CurrentUser, actor: CurrentActor, session: SessionDep
) -> Response:
    _may_change(user)
    section, name = section_and_name(text_id)
    if not known(section, name):
        raise NotFound(NO_SUCH)
    restored = await restore_default(session, section, name, actor=actor)
    return redirect(f"/admin/requests/texts/{text_id}" + ("?done=restored" if restored else ""))
