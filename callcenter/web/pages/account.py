"""``/account``: password, second factor, language, personal API tokens."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.accounts import passwords, totp
from callcenter.accounts.principal import Principal
from callcenter.accounts.roles import MFA_REQUIRED, ROLE_SCOPES, SCOPES
from callcenter.accounts.service import confirm_totp, get_user, scope_of, set_password
from callcenter.accounts.tokens import TokenScopeError, create_token, revoke_token
from callcenter.audit import audit
from callcenter.web.deps import SessionDep
from callcenter.web.guard import Forbidden, client_address
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentUser, form_list, form_text, now, redirect
from callcenter.web.templating import markup, render

router = APIRouter(include_in_schema=False)
TOTP_PENDING = "totp_pending"  # the secret being enrolled, kept on the page between two posts


async def _context(session: AsyncSession, user: Principal) -> dict[str, Any]:
    assert user.user_id is not None
    tokens = (
        (
            await session.execute(
                select(models.ApiToken)
                .where(models.ApiToken.user_id == user.user_id)  # type: ignore[arg-type]
                .order_by(models.ApiToken.created_at.desc())  # type: ignore[attr-defined]
            )
        )
        .scalars()
        .all()
    )
    ids = await scope_of(session, user.user_id)
    names: list[str] = []
    if ids:
        table = models.table(models.Municipality)
        rows = await session.execute(select(table.c.name_ar, table.c.name_en).where(table.c.id.in_(ids)))
        names = [(en if user.language == "en" and en else ar) for ar, en in rows]
    return {
        "tokens": tokens,
        "grantable": [s for s in SCOPES if s in ROLE_SCOPES[user.role]],
        "municipality_names": names,
        "mfa_required": user.role in MFA_REQUIRED,
        "new_token": None,
        "error": None,
        "notice": None,
        "now": now(),
    }


@router.get("/account")
async def account(
    request: Request, user: CurrentUser, session: SessionDep, done: str | None = None
) -> Response:
    if user.via != "session":
        raise Forbidden("the account page is for people, not tokens")
    if user.stage == "enrol":
        return redirect("/account/totp")
    notices = {"password": _("Your password has been changed."), "totp": _("Two-step login is set up.")}
    return render(
        request, "account/index.html", await _context(session, user) | {"notice": notices.get(done or "")}
    )


@router.post("/account/password")
async def change_password(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    current = await form_text(request, "current", limit=passwords.MAX_LENGTH + 1)
    new = await form_text(request, "password", limit=passwords.MAX_LENGTH + 1)
    confirm = await form_text(request, "confirm", limit=passwords.MAX_LENGTH + 1)
    assert user.user_id is not None
    row = await get_user(session, user.user_id)
    error: str | None = None
    if not await asyncio.to_thread(passwords.verify_password, row.password_hash, current):
        error = _("Your current password is wrong.")
    elif new != confirm:
        error = _("The two passwords are not the same.")
    else:
        try:
            passwords.check_policy(new, email=row.email, name=row.name)
        except passwords.WeakPassword as exc:
            error = _(exc.reason)
    if error is not None:
        context = await _context(session, user) | {"error": error}
        return render(request, "account/index.html", context, status_code=400)
    await set_password(
        session, row, new, actor=user.actor(client_address(request)), now=now(), keep_session=user.session_id
    )
    return redirect("/account?done=password")


@router.post("/account/language")
async def change_language(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    language = "en" if await form_text(request, "language", limit=2) == "en" else "ar"
    assert user.user_id is not None
    row = await get_user(session, user.user_id)
    if row.language != language:
        audit(
            session,
            actor=user.actor(client_address(request)),
            action="user.language",
            target=f"user:{row.id}",
            before={"language": row.language},
            after={"language": language},
        )
        row.language = language
    return redirect("/account")


@router.get("/account/totp")
async def totp_enrol_page(request: Request, user: CurrentUser) -> HTMLResponse:
    return _enrol(request, user, totp.new_secret(), None)


def _enrol(
    request: Request, user: Principal, secret: str, error: str | None, status: int = 200
) -> HTMLResponse:
    uri = totp.provisioning_uri(secret, user.email)
    return render(
        request,
        "account/totp.html",
        {
            "secret": secret,
            "qr": markup(totp.qr_svg(uri)),
            "error": error,
            "required": user.role in MFA_REQUIRED,
            "enrolled": user.totp_enabled,
        },
        status_code=status,
    )


@router.post("/account/totp")
async def totp_enrol(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    secret = (await form_text(request, "secret", limit=64)).strip().upper()
    code = await form_text(request, "code", limit=20)
    if not secret.isalnum() or len(secret) < 16:
        return _enrol(request, user, totp.new_secret(), _("The set-up has expired. Scan the new code."), 400)
    assert user.user_id is not None and user.session_id is not None
    row = await get_user(session, user.user_id)
    if not await confirm_totp(
        session, row, secret, code, actor=user.actor(client_address(request)), now=now()
    ):
        return _enrol(
            request,
            user,
            secret,
            _("The code is wrong or has expired. Enter the code your app shows now."),
            400,
        )
    if user.stage == "enrol":
        from sqlalchemy import update

        from callcenter.accounts.sessions import SESSION

        await session.execute(update(SESSION).where(SESSION.c.id == user.session_id).values(stage="full"))
        row.last_login_at = now()
    return redirect("/account?done=totp")


@router.post("/account/tokens")
async def new_token(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    if user.via != "session":
        raise Forbidden("tokens are made from a browser session")
    assert user.user_id is not None
    name = (await form_text(request, "name", limit=100)).strip()
    scopes = await form_list(request, "scopes")
    days_text = (await form_text(request, "days", limit=4)).strip()
    context = await _context(session, user)
    when = now()
    try:
        days = int(days_text or "90")
        if not 1 <= days <= 365:
            raise ValueError
    except ValueError:
        context["error"] = _("Choose an expiry between 1 and 365 days.")
        return render(request, "account/index.html", context, status_code=400)
    if not name:
        context["error"] = _("Give the token a name, to recognise it later.")
        return render(request, "account/index.html", context, status_code=400)
    try:
        row, token = await create_token(
            session,
            user_id=user.user_id,
            role=user.role,
            name=name,
            scopes=scopes,
            expires_at=when + timedelta(days=days),
            now=when,
        )
    except TokenScopeError:
        context["error"] = _("Choose at least one of the scopes your role may grant.")
        return render(request, "account/index.html", context, status_code=400)
    audit(
        session,
        actor=user.actor(client_address(request)),
        action="token.create",
        target=f"token:{row.id}",
        after={"name": row.name, "prefix": row.prefix, "scopes": row.scopes, "days": days},
    )
    context = await _context(session, user)
    context["new_token"] = token
    return render(request, "account/index.html", context, status_code=201)


@router.post("/account/tokens/{token_id}/revoke")
async def revoke(request: Request, token_id: int, user: CurrentUser, session: SessionDep) -> Response:
    assert user.user_id is not None
    if await revoke_token(session, token_id=token_id, user_id=user.user_id, now=now()):
        audit(
            session,
            actor=user.actor(client_address(request)),
            action="token.revoke",
            target=f"token:{token_id}",
        )
    return redirect("/account")
