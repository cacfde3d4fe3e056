"""``/admin/catalogue``: the service catalogue edited in the app (``callcenter requests load``
loads it from YAML): categories with their Arabic and English names, keypad code, questions
and SLA targets; the responsible bodies; a category's body in one municipality. Admins who
see every municipality only: the catalogue is the whole country's. Every save is audited.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.accounts.principal import Principal
from callcenter.errors import NotFound
from callcenter.messages import N_
from callcenter.requests.catalogue_admin import (
    BodyForm,
    CatalogueFormError,
    CategoryForm,
    body_row,
    body_rows,
    category_row,
    category_rows,
    municipality_choices,
    overrides_of,
    questions_text,
    save_body,
    save_category,
    set_override,
)
from callcenter.web.deps import SessionDep
from callcenter.web.guard import Forbidden
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_text, redirect
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

NOTICES: Final = {
    "category": N_("The category is saved."),
    "body": N_("The body is saved."),
    "override": N_("The municipality's body is saved."),
}


def _may_change(user: Principal) -> None:
    if user.scoped:
        raise Forbidden("the catalogue is the whole country's")


def _id(value: str, message: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise NotFound(message)
    return int(value)


def _optional_id(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


def _errors(exc: CatalogueFormError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for p in exc.problems:
        errors[p.field] = f"{errors[p.field]} {_(p.message)}" if p.field in errors else _(p.message)
    return errors


def _notice(done: str | None) -> str | None:
    message = NOTICES.get(done or "")
    return _(message) if message else None


async def _saved(
    request: Request, saving: Awaitable[int], context: dict[str, Any], template: str, *, done: str
) -> Response:
    """The item saved, then its page again (``?done``); or the form with its errors, 400."""
    try:
        await saving
    except CatalogueFormError as exc:
        return render(request, template, context | {"errors": _errors(exc)}, status_code=400)
    return redirect(f"{request.url.path}?done={done}")


async def _lists(session: AsyncSession) -> dict[str, Any]:
    conn = await session.connection()
    return {
        "categories": await category_rows(conn),
        "bodies": await body_rows(conn),
        "municipalities": await municipality_choices(conn),
    }


async def _category_form(request: Request) -> CategoryForm:
    return CategoryForm(
        key=(await form_text(request, "key", limit=60)).strip(),
        keypad=(await form_text(request, "keypad", limit=4)).strip(),
        name_ar=await form_text(request, "name_ar", limit=210),
        name_en=await form_text(request, "name_en", limit=210),
        first_response_hours=(await form_text(request, "first_response_hours", limit=12)).strip(),
        resolution_hours=(await form_text(request, "resolution_hours", limit=12)).strip(),
        body_id=_optional_id(await form_text(request, "body_id", limit=20)),
        active=await form_text(request, "active", limit=1) == "1",
        questions=await form_text(request, "questions", limit=10_000),
    )


async def _body_form(request: Request) -> BodyForm:
    return BodyForm(
        key=(await form_text(request, "key", limit=60)).strip(),
        kind=await form_text(request, "kind", limit=12),
        name_ar=await form_text(request, "name_ar", limit=210),
        name_en=await form_text(request, "name_en", limit=210),
        municipality_id=_optional_id(await form_text(request, "municipality_id", limit=20)),
        active=await form_text(request, "active", limit=1) == "1",
    )


@router.get("/admin/catalogue")
async def catalogue(request: Request, session: SessionDep, done: str | None = None) -> Response:
    context = await _lists(session) | {
        "category_form": CategoryForm(), "body_form": BodyForm(), "errors": {}, "body_errors": {},
        "notice": _notice(done),
    }  # fmt: skip
    return render(request, "admin/catalogue.html", context)


@router.post("/admin/catalogue/categories")
async def add_category(
    request: Request, user: CurrentUser, actor: CurrentActor, session: SessionDep
) -> Response:
    _may_change(user)
    form = await _category_form(request)
    try:
        category_id = await save_category(session, form, actor=actor)
    except CatalogueFormError as exc:
        context = await _lists(session) | {
            "category_form": form, "body_form": BodyForm(), "errors": _errors(exc), "body_errors": {},
            "notice": None,
        }  # fmt: skip
        return render(request, "admin/catalogue.html", context, status_code=400)
    return redirect(f"/admin/catalogue/categories/{category_id}?done=category")


@router.post("/admin/catalogue/bodies")
async def add_body(request: Request, user: CurrentUser, actor: CurrentActor, session: SessionDep) -> Response:
    _may_change(user)
    form = await _body_form(request)
    try:
        await save_body(session, form, actor=actor)
    except CatalogueFormError as exc:
        context = await _lists(session) | {
            "category_form": CategoryForm(), "body_form": form, "errors": {}, "body_errors": _errors(exc),
            "notice": None,
        }  # fmt: skip
        return render(request, "admin/catalogue.html", context, status_code=400)
    return redirect("/admin/catalogue?done=body#bodies")


# -- one category -------------------------------------------------------------------------------


async def _category_context(session: AsyncSession, category_id: int) -> dict[str, Any]:
    conn = await session.connection()
    row = await category_row(conn, category_id)
    if row is None:
        raise NotFound(N_("No such category."))
    form = CategoryForm(
        key=row["key"], keypad=row["keypad"], name_ar=row["name_ar"], name_en=row["name_en"],
        first_response_hours=f"{row['first_response_hours']:g}",
        resolution_hours=f"{row['resolution_hours']:g}", body_id=row["default_body_id"], active=row["active"],
        questions=questions_text(row["questions"] or []),
    )  # fmt: skip
    return await _lists(session) | {
        "category": row, "form": form, "overrides": await overrides_of(conn, category_id), "errors": {},
        "override_errors": {}, "notice": None,
    }  # fmt: skip


@router.get("/admin/catalogue/categories/{category_id}")
async def category_page(
    request: Request, category_id: str, session: SessionDep, done: str | None = None
) -> Response:
    context = await _category_context(session, _id(category_id, N_("No such category.")))
    context["notice"] = _notice(done)
    return render(request, "admin/catalogue_category.html", context)


@router.post("/admin/catalogue/categories/{category_id}")
async def edit_category(
    request: Request, category_id: str, user: CurrentUser, actor: CurrentActor, session: SessionDep
) -> Response:
    _may_change(user)
    number = _id(category_id, N_("No such category."))
    context = await _category_context(session, number)  # 404 first
    form = await _category_form(request)
    form.key = context["category"]["key"]
    saving = save_category(session, form, actor=actor, category_id=number)
    return await _saved(
        request, saving, context | {"form": form}, "admin/catalogue_category.html", done="category"
    )


@router.post("/admin/catalogue/categories/{category_id}/overrides")
async def override(
    request: Request, category_id: str, user: CurrentUser, actor: CurrentActor, session: SessionDep
) -> Response:
    """In one municipality, the category goes to another body (none chosen: its default)."""
    _may_change(user)
    number = _id(category_id, N_("No such category."))
    context = await _category_context(session, number)
    municipality = _optional_id(await form_text(request, "municipality_id", limit=20))
    body = _optional_id(await form_text(request, "body_id", limit=20))
    try:
        await set_override(session, number, municipality or 0, body, actor=actor)
    except CatalogueFormError as exc:
        context["override_errors"] = _errors(exc)
        return render(request, "admin/catalogue_category.html", context, status_code=400)
    return redirect(f"/admin/catalogue/categories/{number}?done=override#overrides")


# -- one body -----------------------------------------------------------------------------------


async def _body_context(session: AsyncSession, body_id: int) -> dict[str, Any]:
    row = await body_row(await session.connection(), body_id)
    if row is None:
        raise NotFound(N_("No such body."))
    form = BodyForm(
        key=row["key"], kind=row["kind"], name_ar=row["name_ar"], name_en=row["name_en"],
        municipality_id=row["municipality_id"], active=row["active"],
    )  # fmt: skip
    return await _lists(session) | {"body": row, "form": form, "errors": {}, "notice": None}


@router.get("/admin/catalogue/bodies/{body_id}")
async def body_page(request: Request, body_id: str, session: SessionDep, done: str | None = None) -> Response:
    context = await _body_context(session, _id(body_id, N_("No such body.")))
    context["notice"] = _notice(done)
    return render(request, "admin/catalogue_body.html", context)


@router.post("/admin/catalogue/bodies/{body_id}")
async def edit_body(
    request: Request, body_id: str, user: CurrentUser, actor: CurrentActor, session: SessionDep
) -> Response:
    _may_change(user)
    number = _id(body_id, N_("No such body."))
    context = await _body_context(session, number)
    form = await _body_form(request)
    form.key = context["body"]["key"]
    saving = save_body(session, form, actor=actor, body_id=number)
    return await _saved(request, saving, context | {"form": form}, "admin/catalogue_body.html", done="body")
