"""``/admin/users``: the staff list, invitations, editing a user's role and municipalities,
disabling and enabling, and a new one-time link to set a password.

There is no e-mail sending: an invitation or reset link is shown once, to the admin, who
hands it over. Every change is audited by the domain functions in the same transaction.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.accounts import admin
from callcenter.accounts.principal import Principal
from callcenter.accounts.roles import Role
from callcenter.accounts.service import create_user, get_user, reset_invitation, scope_of, set_disabled
from callcenter.errors import Conflict, NotFound
from callcenter.messages import N_
from callcenter.settings import Settings
from callcenter.web.deps import SessionDep, SettingsDep
from callcenter.web.guard import Forbidden, client_address
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentUser, form_list, form_text, now, redirect
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}  # pages that show a one-time link
FORM_LIMIT = 1000  # a field is read up to this length, then refused when over its own limit


def _user_id(value: str) -> int:
    """A path id; anything else is a page that does not exist (not a 422 or a database error)."""
    if not value.isascii() or not value.isdigit() or len(value) > 18 or int(value) < 1:
        raise NotFound(N_("There is no such user."))
    return int(value)


async def _load(session: AsyncSession, value: str, principal: Principal) -> models.User:
    """The user of a path id, if this admin may manage them (a scoped admin: only the users
    whose every municipality is one of theirs)."""
    try:
        subject = await get_user(session, _user_id(value))
    except NotFound:
        raise NotFound(N_("There is no such user.")) from None
    assert subject.id is not None
    if not admin.manages(principal.municipalities, await scope_of(session, subject.id)):
        raise Forbidden("this user reaches beyond your municipalities")
    return subject


def _translated(errors: dict[str, str]) -> dict[str, str]:
    return {name: _(reason) for name, reason in errors.items()}


def _invite_link(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/invite/{token}"


# -- the list and invitations ---------------------------------------------------------------


async def _list_context(
    session: AsyncSession, principal: Principal, *, role: str | None, q: str | None, page: str | None
) -> tuple[dict[str, Any], int]:
    errors: dict[str, str] = {}
    within = principal.municipalities
    try:
        flt = admin.parse_user_filter(role=role, query=q, page=page, within=within)
    except admin.UserFilterError as exc:
        errors[exc.field] = _(exc.reason)
        flt = admin.UserFilter(within=within)
    listing = await admin.list_users(session, flt) if not errors else admin.UserPage([], 1, 0)
    keep = {k: v for k, v in (("role", flt.role.value if flt.role else ""), ("q", flt.query)) if v}

    def page_link(number: int) -> str:
        return "/admin/users?" + urlencode(keep | {"page": str(number)})

    context = {
        "listing": listing,
        "filter": flt,
        "filter_errors": errors,
        "roles": list(Role),
        "choices": await admin.municipality_choices(session, within),
        "previous_link": page_link(listing.page - 1) if listing.has_previous else None,
        "next_link": page_link(listing.page + 1) if listing.has_next else None,
        "form": {"email": "", "name": "", "role": "", "municipalities": [], "language": "ar"},
        "errors": {},
        "notice": None,
    }
    return context, 400 if errors else 200


@router.get("/admin/users")
async def users_page(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    role: str | None = None,
    q: str | None = None,
    page: str | None = None,
) -> HTMLResponse:
    context, status = await _list_context(session, user, role=role, q=q, page=page)
    notice = {"disabled": _("The user is disabled."), "enabled": _("The user is enabled again.")}
    context["notice"] = notice.get(request.query_params.get("done", ""))
    return render(request, "admin/users.html", context, status_code=status)


@router.post("/admin/users")
async def invite(request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep) -> Response:
    email = await form_text(request, "email", limit=FORM_LIMIT)
    name = await form_text(request, "name", limit=FORM_LIMIT)
    role = await form_text(request, "role", limit=32)
    municipalities = (await form_list(request, "municipalities"))[:1000]
    language = await form_text(request, "language", limit=8) or "ar"
    form = {
        "email": email,
        "name": name,
        "role": role,
        "municipalities": municipalities,
        "language": language,
    }
    status = 400
    errors: dict[str, str] = {}
    try:
        values = await admin.check_user_form(
            session,
            name=name,
            role=role,
            municipalities=municipalities,
            email=email,
            language=language,
            within=user.municipalities,
        )
        when = now()
        invitation = await create_user(
            session,
            email=values.email,
            role=values.role,
            name=values.name,
            municipalities=values.municipalities,
            language=values.language,
            actor=user.actor(client_address(request)),
            invite_valid=timedelta(hours=settings.invite_valid_hours),
            now=when,
        )
    except admin.InvalidUserForm as exc:
        errors = _translated(exc.errors)
    except Conflict as exc:
        errors, status = {"email": _(exc.message)}, 409
    else:
        return render(
            request,
            "admin/users_link.html",
            {
                "subject": invitation.user,
                "link": _invite_link(settings, invitation.token),
                "expires_at": invitation.user.invite_expires_at,
                "kind": "invite",
            },
            status_code=201,
            headers=NO_STORE,
        )
    context, _status = await _list_context(session, user, role=None, q=None, page=None)
    context |= {"form": form, "errors": errors}
    return render(request, "admin/users.html", context, status_code=status)


# -- one user ---------------------------------------------------------------------------------


async def _detail(
    request: Request,
    session: AsyncSession,
    subject: models.User,
    principal: Principal,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    notice: str | None = None,
) -> HTMLResponse:
    assert subject.id is not None
    scope = (await admin.municipalities_of(session, [subject.id])).get(subject.id, [])
    return render(
        request,
        "admin/users_detail.html",
        {
            "subject": subject,
            "state": admin.state_of(subject),
            "scope": scope,
            "roles": list(Role),
            "choices": await admin.municipality_choices(session, principal.municipalities),
            "form": form
            or {"name": subject.name, "role": subject.role, "municipalities": [str(m.id) for m in scope]},
            "errors": errors or {},
            "notice": notice,
            "audit_link": "/admin/audit?" + urlencode({"target": f"user:{subject.id}"}),
        },
        status_code=status,
    )


@router.get("/admin/users/{user_id}")
async def user_page(request: Request, user_id: str, user: CurrentUser, session: SessionDep) -> HTMLResponse:
    subject = await _load(session, user_id, user)
    notices = {
        "saved": _("The changes are saved."),
        "saved_sessions": _("The changes are saved. The user must log in again for the new rights."),
        "unchanged": _("Nothing was changed."),
        "enabled": _("The user is enabled again."),
    }
    return await _detail(
        request, session, subject, user, notice=notices.get(request.query_params.get("done", ""))
    )


@router.post("/admin/users/{user_id}")
async def save_user(request: Request, user_id: str, user: CurrentUser, session: SessionDep) -> Response:
    subject = await _load(session, user_id, user)
    name = await form_text(request, "name", limit=FORM_LIMIT)
    role = await form_text(request, "role", limit=32)
    municipalities = (await form_list(request, "municipalities"))[:1000]
    form = {"name": name, "role": role, "municipalities": municipalities}
    try:
        values = await admin.check_user_form(
            session, name=name, role=role, municipalities=municipalities, within=user.municipalities
        )
        ended = await admin.update_user(
            session,
            subject,
            values,
            actor=user.actor(client_address(request)),
            now=now(),
            keep_session=user.session_id if user.user_id == subject.id else None,
        )
    except admin.InvalidUserForm as exc:
        return await _detail(
            request, session, subject, user, form=form, errors=_translated(exc.errors), status=400
        )
    except admin.SelfLockout as exc:
        return await _detail(
            request, session, subject, user, form=form, errors={"role": _(exc.reason)}, status=400
        )
    done = "unchanged" if ended is None else ("saved_sessions" if ended else "saved")
    return redirect(f"/admin/users/{subject.id}?done={done}")


async def _self_refused(
    request: Request, session: AsyncSession, subject: models.User, principal: Principal, reason: str
) -> HTMLResponse | None:
    try:
        admin.check_not_self(principal.actor(), subject, reason)
    except admin.SelfLockout as exc:
        return await _detail(
            request, session, subject, principal, errors={"action": _(exc.reason)}, status=400
        )
    return None


@router.post("/admin/users/{user_id}/disable")
async def disable(request: Request, user_id: str, user: CurrentUser, session: SessionDep) -> Response:
    subject = await _load(session, user_id, user)
    refused = await _self_refused(
        request, session, subject, user, N_("You cannot disable your own account. Ask another administrator.")
    )
    if refused is not None:
        return refused
    if subject.disabled_at is None:
        await set_disabled(session, subject, True, actor=user.actor(client_address(request)), now=now())
    return redirect("/admin/users?done=disabled")


@router.post("/admin/users/{user_id}/enable")
async def enable(request: Request, user_id: str, user: CurrentUser, session: SessionDep) -> Response:
    subject = await _load(session, user_id, user)
    if subject.disabled_at is not None:
        await set_disabled(session, subject, False, actor=user.actor(client_address(request)), now=now())
    return redirect(f"/admin/users/{subject.id}?done=enabled")


@router.post("/admin/users/{user_id}/reset")
async def reset(
    request: Request, user_id: str, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Response:
    subject = await _load(session, user_id, user)
    refused = await _self_refused(
        request, session, subject, user, N_("Change your own password on your account page.")
    )
    if refused is not None:
        return refused
    token = await reset_invitation(
        session,
        subject,
        actor=user.actor(client_address(request)),
        valid=timedelta(hours=settings.invite_valid_hours),
        now=now(),
    )
    return render(
        request,
        "admin/users_link.html",
        {
            "subject": subject,
            "link": _invite_link(settings, token),
            "expires_at": subject.invite_expires_at,
            "kind": "reset",
        },
        headers=NO_STORE,
    )
