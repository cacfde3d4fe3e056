"""Login (password, then the second factor), logout, invitations, the language switch, and ``/``."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from callcenter.accounts import passwords
from callcenter.accounts.service import (
    check_totp,
    find_user,
    get_user,
    set_password,
    stage_after_password,
    user_for_invitation,
)
from callcenter.accounts.sessions import COOKIE, open_session, revoke
from callcenter.accounts.throttle import Throttle
from callcenter.audit import Actor, audit
from callcenter.settings import Settings
from callcenter.web.deps import SessionDep, SettingsDep
from callcenter.web.guard import LANGUAGE_COOKIE, authenticate, client_address
from callcenter.web.i18n import gettext as _
from callcenter.web.i18n import ngettext
from callcenter.web.pages.common import CurrentUser, form_text, home_of, now, redirect, safe_next
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)


def throttle(request: Request) -> Throttle:
    settings: Settings = request.app.state.settings
    return Throttle(
        request.app.state.redis,
        max_failures=settings.login_max_failures,
        base_s=settings.login_lock_base_s,
        max_s=settings.login_lock_max_s,
    )


def lock_message(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many failed attempts. Try again in %(n)d minute.",
        "Too many failed attempts. Try again in %(n)d minutes.",
        minutes,
    ) % {"n": minutes}


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.session_absolute_hours * 3600),
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path="/",
    )


@router.get("/")
async def home(request: Request) -> RedirectResponse:
    principal = await authenticate(request)
    if principal is None:
        return redirect("/login")
    if principal.stage == "mfa":
        return redirect("/login/totp")
    if principal.stage == "enrol":
        return redirect("/account/totp")
    return redirect(home_of(principal))


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    principal = await authenticate(request)
    if principal is not None and principal.via == "session" and principal.stage == "full":
        return redirect(safe_next(next, home_of(principal)))
    return render(request, "auth/login.html", {"next": safe_next(next, ""), "email": "", "error": None})


@router.post("/login")
async def login(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    email = (await form_text(request, "email", limit=254)).strip()
    password = await form_text(request, "password", limit=passwords.MAX_LENGTH + 1)
    next_path = safe_next(await form_text(request, "next"), "")
    address = client_address(request)
    guard = throttle(request)
    context = {"next": next_path, "email": email}
    if not email or not password:
        return render(
            request,
            "auth/login.html",
            context | {"error": _("Enter your e-mail address and password.")},
            status_code=400,
        )
    locked = await guard.locked_for(email, address)
    if locked > 0:
        audit(session, actor=Actor(email[:100], None, address), action="login.locked")
        return render(request, "auth/login.html", context | {"error": lock_message(locked)}, status_code=429)
    user = await find_user(session, email)
    usable = user is not None and user.disabled_at is None
    stored = user.password_hash if user is not None and usable else None
    ok = await asyncio.to_thread(passwords.verify_password, stored, password)
    if not ok or user is None:
        lock = await guard.failed(email, address)
        audit(
            session,
            actor=Actor(email[:100], user.id if user else None, address),
            action="login.failed",
            reason="disabled" if user is not None and not usable else "credentials",
        )
        message = lock_message(lock) if lock else _("The e-mail address or the password is wrong.")
        return render(
            request, "auth/login.html", context | {"error": message}, status_code=429 if lock else 401
        )
    await guard.succeeded(email)
    assert user.id is not None and user.password_hash is not None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await asyncio.to_thread(passwords.hash_password, password)
    stage = stage_after_password(user)
    when = now()
    opened = await open_session(
        session,
        user_id=user.id,
        stage=stage,
        address=address,
        user_agent=request.headers.get("user-agent", ""),
        absolute=timedelta(hours=settings.session_absolute_hours),
        now=when,
    )
    if stage == "full":
        user.last_login_at = when
    audit(session, actor=Actor(user.email, user.id, address), action="login", stage=stage)
    target = {"mfa": "/login/totp", "enrol": "/account/totp"}.get(stage) or next_path or "/"
    if stage == "mfa" and next_path:
        target += f"?next={next_path}"
    response = redirect(target)
    set_session_cookie(response, opened.token, settings)
    return response


@router.get("/login/totp")
async def totp_page(request: Request, user: CurrentUser, next: str | None = None) -> HTMLResponse:
    return render(request, "auth/totp.html", {"next": safe_next(next, ""), "error": None})


@router.post("/login/totp")
async def totp_check(
    request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Response:
    code = await form_text(request, "code", limit=20)
    next_path = safe_next(await form_text(request, "next"), "")
    address = client_address(request)
    guard = throttle(request)
    locked = await guard.locked_for(user.email, address)
    if locked > 0:
        return render(
            request, "auth/totp.html", {"next": next_path, "error": lock_message(locked)}, status_code=429
        )
    assert user.user_id is not None and user.session_id is not None
    row = await get_user(session, user.user_id)
    when = now()
    if not check_totp(row, code, now=when):
        lock = await guard.failed(user.email, address)
        audit(session, actor=user.actor(address), action="login.totp_failed")
        message = (
            lock_message(lock)
            if lock
            else _("The code is wrong or has expired. Enter the code your app shows now.")
        )
        return render(request, "auth/totp.html", {"next": next_path, "error": message}, status_code=401)
    await guard.succeeded(user.email)
    # a new session id once the second factor is given (no fixation of the half-way session)
    await revoke(session, user.session_id, now=when)
    opened = await open_session(
        session,
        user_id=user.user_id,
        stage="full",
        address=address,
        user_agent=request.headers.get("user-agent", ""),
        absolute=timedelta(hours=settings.session_absolute_hours),
        now=when,
    )
    row.last_login_at = when
    audit(session, actor=user.actor(address), action="login.totp")
    response = redirect(next_path or "/")
    set_session_cookie(response, opened.token, settings)
    return response


@router.post("/logout")
async def logout(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    if user.session_id is not None:
        await revoke(session, user.session_id, now=now())
        audit(session, actor=user.actor(client_address(request)), action="logout")
    response = redirect("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/language")
async def switch_language(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Arabic or English; remembered in a cookie, and on the account of a logged-in user."""
    language = "en" if await form_text(request, "language", limit=2) == "en" else "ar"
    back = safe_next(await form_text(request, "next"), "/")
    principal = await authenticate(request)
    if principal is not None and principal.user_id is not None and principal.language != language:
        row = await get_user(session, principal.user_id)
        row.language = language
        audit(
            session,
            actor=principal.actor(client_address(request)),
            action="user.language",
            target=f"user:{principal.user_id}",
            before={"language": principal.language},
            after={"language": language},
        )
    response = redirect(back)
    response.set_cookie(
        LANGUAGE_COOKIE,
        language,
        max_age=365 * 86400,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )
    return response


@router.get("/invite/{token}")
async def invite_page(request: Request, token: str, session: SessionDep) -> HTMLResponse:
    user = await user_for_invitation(session, token, now=now())
    if user is None:
        return render(request, "auth/invite_invalid.html", status_code=404)
    return render(request, "auth/invite.html", {"token": token, "invited": user, "error": None})


@router.post("/invite/{token}")
async def invite_accept(request: Request, token: str, session: SessionDep) -> Response:
    user = await user_for_invitation(session, token, now=now())
    if user is None:
        return render(request, "auth/invite_invalid.html", status_code=404)
    password = await form_text(request, "password", limit=passwords.MAX_LENGTH + 1)
    confirm = await form_text(request, "confirm", limit=passwords.MAX_LENGTH + 1)
    error = None
    if password != confirm:
        error = _("The two passwords are not the same.")
    else:
        try:
            await asyncio.to_thread(passwords.check_policy, password, email=user.email, name=user.name)
        except passwords.WeakPassword as exc:
            error = _(exc.reason)
    if error is not None:
        return render(
            request, "auth/invite.html", {"token": token, "invited": user, "error": error}, status_code=400
        )
    await set_password(
        session, user, password, actor=Actor(user.email, user.id, client_address(request)), now=now()
    )
    return redirect("/login?set=1")
