"""Jinja2 for the staff pages: autoescaped, strings through the catalogues, assets by hash.

A page handler calls :func:`render` with a template named after the page (``campaigns/list.html``)
or a fragment (``campaigns/progress.html``); the template gets the principal, the language
and direction, the CSRF token and ``static()`` for asset URLs.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from callcenter.accounts.principal import Principal
from callcenter.accounts.roles import LABELS
from callcenter.messages import N_
from callcenter.phones import mask_phone
from callcenter.settings import Settings
from callcenter.web.guard import ANON_CSRF_COOKIE
from callcenter.web.i18n import DIRECTION, current_language, gettext, ngettext
from callcenter.web.policy import POLICIES

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
TEMPLATES = WEB / "templates"


@cache
def _asset_version(name: str) -> str:
    try:
        return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]
    except OSError:
        return "0"


def static_url(name: str) -> str:
    return f"/static/{name}?v={_asset_version(name)}"


def _number(value: Any) -> str:
    """Digits as the ministry writes them: Western digits, thousands grouped."""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> Markup:
    """A time in Tripoli, isolated left-to-right so an Arabic line keeps date before hour."""
    if value is None:
        return Markup("—")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(ZoneInfo("Africa/Tripoli")).strftime(fmt)
    return Markup('<bdi dir="ltr">{}</bdi>').format(text)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["static"] = static_url
    env.globals["role_label"] = lambda role: gettext(LABELS.get(str(role), str(role)))
    env.filters["number"] = _number
    env.filters["when"] = _when
    env.filters["masked"] = mask_phone
    return env


#: The navigation, in order: (path, message id). An item shows when the role's policy allows it.
NAV: tuple[tuple[str, str], ...] = (
    ("/campaigns", N_("Campaigns")),
    ("/inquiries", N_("Inquiries")),
    ("/prompts", N_("Voice prompts")),
    ("/admin/users", N_("Users")),
    ("/admin/municipalities", N_("Municipalities")),
    ("/admin/audit", N_("Audit log")),
)


def nav_for(principal: Principal | None, path: str) -> list[dict[str, Any]]:
    if principal is None or principal.stage != "full":
        return []
    items = []
    for target, label in NAV:
        policy = POLICIES.get(("GET", target))
        if policy is not None and policy.allows(principal.role):
            current = path == target or path.startswith(target + "/")
            items.append({"href": target, "label": gettext(label), "current": current})
    return items


def csrf_token(request: Request) -> str:
    """The session's CSRF token, or for an anonymous form the double-submit cookie's value."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.csrf_token:
        return str(principal.csrf_token)
    token = request.cookies.get(ANON_CSRF_COOKIE) or getattr(request.state, "new_anon_csrf", None)
    if token is None:
        token = secrets.token_urlsafe(32)
        request.state.new_anon_csrf = token
    return str(token)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    language = current_language.get()
    settings: Settings = request.app.state.settings
    values: dict[str, Any] = {
        "request": request,
        "user": getattr(request.state, "principal", None),
        "lang": language,
        "dir": DIRECTION[language],
        "csrf_token": csrf_token(request),
        "path": request.url.path,
        "env": settings.env,
    }
    values["nav"] = nav_for(values["user"], request.url.path)
    values.update(context or {})
    html = environment().get_template(template).render(values)
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    new = getattr(request.state, "new_anon_csrf", None)
    if new is not None:
        response.set_cookie(
            ANON_CSRF_COOKIE, new, httponly=True, samesite="strict", secure=settings.secure_cookies, path="/"
        )
    return response


def markup(html: str) -> Markup:
    """Trusted HTML made by the app itself (e.g. the TOTP QR code's SVG)."""
    return Markup(html)
