"""``/admin/municipalities``: the register, by district; one municipality added or edited;
the whole register uploaded as CSV (merged or replacing).

The register is reference data every role's pages name, so the list shows all of it; changing
it is for admins who see every municipality (a scoped admin may edit only their own).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from callcenter.accounts.principal import Principal
from callcenter.errors import NotFound
from callcenter.messages import N_
from callcenter.municipalities import Mode, RegisterError, decode_register, load_register
from callcenter.municipalities.common import ALIAS_MAX, ALIASES_PER_MUNICIPALITY, CODE_MAX, NAME_MAX, Problem
from callcenter.municipalities.service import (
    District,
    MunicipalityForm,
    create_municipality,
    districts,
    get_municipality,
    list_page,
    update_municipality,
)
from callcenter.web.deps import SessionDep
from callcenter.web.guard import Forbidden
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_text, redirect
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

MAX_UPLOAD = 2 * 1024 * 1024
NEW_DISTRICT = "__new__"
_ALIASES_TEXT = ALIASES_PER_MUNICIPALITY * (ALIAS_MAX + 2)


def _say(problem: Problem) -> str:
    """A problem in the reader's language (the params are values, shown as typed)."""
    return problem.text(_)


def _may_change_all(user: Principal) -> None:
    if user.scoped:
        raise Forbidden("changing the register needs access to every municipality")


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 7 else 1


async def _list_context(session: AsyncSession, *, district: str | None, page: str | None) -> dict[str, Any]:
    chosen = district if district and len(district) <= CODE_MAX else None
    listing = await list_page(session, district=chosen, page=_page_number(page))

    def link(number: int) -> str:
        query = {"page": str(number)} | ({"district": chosen} if chosen else {})
        return "/admin/municipalities?" + urlencode(query)

    return {
        "listing": listing,
        "district": chosen or "",
        "previous_link": link(listing.page - 1) if listing.page > 1 else None,
        "next_link": link(listing.page + 1) if listing.page < listing.pages else None,
        "form": MunicipalityForm(),
        "district_choice": "",
        "errors": {},
        "notice": None,
        "limits": {"code": CODE_MAX, "name": NAME_MAX},
    }


_NOTICES = {
    "created": N_("The municipality is added to the register."),
    "saved": N_("The changes are saved."),
    "unchanged": N_("Nothing was changed."),
}


@router.get("/admin/municipalities")
async def municipalities(
    request: Request,
    session: SessionDep,
    district: str | None = None,
    page: str | None = None,
    done: str | None = None,
) -> Response:
    context = await _list_context(session, district=district, page=page)
    notice = _NOTICES.get(done or "")
    context["notice"] = _(notice) if notice else None
    return render(request, "admin/municipalities.html", context)


async def _read_form(request: Request, session: AsyncSession) -> tuple[MunicipalityForm, str, dict[str, str]]:
    """The posted municipality, the district choice as posted, and the choice's error."""
    aliases = await form_text(request, "aliases", limit=_ALIASES_TEXT)
    form = MunicipalityForm(
        code=await form_text(request, "code", limit=CODE_MAX + 1),
        name_ar=await form_text(request, "name_ar", limit=NAME_MAX + 1),
        name_en=await form_text(request, "name_en", limit=NAME_MAX + 1),
        aliases=aliases.splitlines(),
    )
    choice = await form_text(request, "district", limit=CODE_MAX + 1)
    errors: dict[str, str] = {}
    if choice == NEW_DISTRICT:
        form.district_code = await form_text(request, "new_district_code", limit=CODE_MAX + 1)
        form.district_ar = await form_text(request, "new_district_ar", limit=NAME_MAX + 1)
        form.district_en = await form_text(request, "new_district_en", limit=NAME_MAX + 1)
        if not form.district_code.strip():
            errors["district"] = _("Enter the new district's code and Arabic name.")
    elif choice:
        known: dict[str, District] = {d.code: d for d in await districts(session)}
        found = known.get(choice)
        if found is None:
            errors["district"] = _("Choose a district from the list.")
        else:
            form.district_code, form.district_ar, form.district_en = found.code, found.name_ar, found.name_en
    return form, choice, errors


def _errors(problems: list[Problem], extra: dict[str, str]) -> dict[str, str]:
    errors = dict(extra)
    for problem in problems:
        name = problem.field or "name_ar"
        errors[name] = f"{errors[name]} {_say(problem)}" if name in errors else _say(problem)
    return errors


@router.post("/admin/municipalities")
async def create(request: Request, user: CurrentUser, actor: CurrentActor, session: SessionDep) -> Response:
    _may_change_all(user)
    form, choice, errors = await _read_form(request, session)
    if not errors:
        try:
            await create_municipality(session, form, actor=actor)
        except RegisterError as exc:
            errors = _errors(exc.problems, {})
        else:
            return redirect("/admin/municipalities?done=created")
    context = await _list_context(session, district=None, page=None)
    context |= {"form": form, "district_choice": choice, "errors": errors}
    return render(request, "admin/municipalities.html", context, status_code=400)


@router.post("/admin/municipalities/upload")
async def upload(request: Request, user: CurrentUser, actor: CurrentActor, session: SessionDep) -> Response:
    _may_change_all(user)
    form = await request.form()
    mode_value = form.get("mode")
    mode: Mode | None = "merge" if mode_value == "merge" else "replace" if mode_value == "replace" else None
    file = form.get("file")
    problems: list[Problem] = []
    status = 400
    report = None
    if mode is None:
        problems.append(Problem(N_("Choose merge or replace.")))
    if not isinstance(file, UploadFile) or not file.filename:
        problems.append(Problem(N_("Choose a CSV file to upload.")))
    else:
        data = await file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            problems.append(Problem(N_("The file is larger than 2 MB: a register is far smaller.")))
            status = 413
        elif not data.strip():
            problems.append(Problem(N_("The file is empty: the first line must be the header.")))
        elif mode is not None:
            try:
                text = decode_register(data)
            except RegisterError as exc:
                problems += exc.problems
            else:
                report = await load_register(session, text, actor=actor, mode=mode)
                problems += report.errors
    context = {
        "errors": [(p.line, _say(p)) for p in problems],
        "report": report if report is not None and report.ok else None,
        "kept": [_say(p) for p in report.kept] if report is not None else [],
        "filename": file.filename if isinstance(file, UploadFile) else "",
        "mode": mode or "",
    }
    if problems:
        return render(request, "admin/municipalities_upload.html", context, status_code=status)
    return render(request, "admin/municipalities_upload.html", context)


def _municipality_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise NotFound(N_("No such municipality."))
    return int(value)


async def _edit_context(session: AsyncSession, municipality_id: int) -> dict[str, Any]:
    row, aliases = await get_municipality(session, municipality_id)
    return {
        "municipality": row,
        "form": MunicipalityForm.of(row, aliases),
        "district_choice": row.district_code,
        "districts": await districts(session),
        "errors": {},
        "notice": None,
        "limits": {"code": CODE_MAX, "name": NAME_MAX},
    }


@router.get("/admin/municipalities/{municipality_id}")
async def edit_page(
    request: Request, municipality_id: str, user: CurrentUser, session: SessionDep, done: str | None = None
) -> Response:
    number = _municipality_id(municipality_id)
    if not user.sees(number):
        raise Forbidden("outside your municipalities")
    context = await _edit_context(session, number)
    notice = _NOTICES.get(done or "")
    context["notice"] = _(notice) if notice else None
    return render(request, "admin/municipalities_edit.html", context)


@router.post("/admin/municipalities/{municipality_id}")
async def edit(
    request: Request, municipality_id: str, user: CurrentUser, actor: CurrentActor, session: SessionDep
) -> Response:
    number = _municipality_id(municipality_id)
    if not user.sees(number):
        raise Forbidden("outside your municipalities")
    context = await _edit_context(session, number)  # 404 before reading the form
    form, choice, errors = await _read_form(request, session)
    if not errors:
        try:
            changed = await update_municipality(session, number, form, actor=actor)
        except RegisterError as exc:
            errors = _errors(exc.problems, {})
        else:
            return redirect(f"/admin/municipalities/{number}?done={'saved' if changed else 'unchanged'}")
    form.code = context["municipality"].code
    context |= {"form": form, "district_choice": choice, "errors": errors}
    return render(request, "admin/municipalities_edit.html", context, status_code=400)
