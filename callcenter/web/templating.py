"""Jinja2 for the staff pages: autoescaped, strings through the catalogues, assets by hash.

A page handler calls :func:`render` with a template named after the page (``campaigns/list.html``)
or a fragment (``campaigns/progress.html``); the template gets the principal, the language
and direction, the CSRF token and ``static()`` for asset URLs.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape

from callcenter.accounts.principal import Principal
from callcenter.accounts.roles import LABELS
from callcenter.messages import N_
from callcenter.phones import mask_phone
from callcenter.settings import Settings
from callcenter.web.guard import ANON_CSRF_COOKIE
from callcenter.web.i18n import DIRECTION, current_language, gettext, ngettext, translate
from callcenter.web.policy import POLICIES

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
TEMPLATES = WEB / "templates"
TRIPOLI = ZoneInfo("Africa/Tripoli")


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


def _clock(seconds: float | None) -> str:
    """A duration as a clock: ``4:05``, ``1:02:09``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _percent(share: float | None) -> str:
    """A share 0..1 as a whole percentage (``83%``); ``—`` when unknown."""
    return "—" if share is None else f"{round(share * 100)}%"


def _when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> Markup:
    """A time in Tripoli, isolated left-to-right so an Arabic line keeps date before hour."""
    if value is None:
        return Markup("—")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = escape(value.astimezone(TRIPOLI).strftime(fmt))
    return Markup(f'<bdi dir="ltr">{text}</bdi>')


@jinja2.pass_eval_context
def _template_gettext(eval_ctx: EvalContext, message: str, **variables: Any) -> str:
    """``_()`` and ``gettext()`` in a template: jinja2's "newstyle" gettext (the translation is
    markup, the variables are escaped into it), without its two extra calls through the
    context, and with each translation made markup once (a message without variables, most
    of a page's sixty, formatted once as well)."""
    if not eval_ctx.autoescape:
        return gettext(message) % variables
    if variables:
        return _markup(current_language.get(), message) % variables
    return _formatted(current_language.get(), message)


@lru_cache(maxsize=4096)
def _markup(language: str, message: str) -> Markup:
    return Markup(translate(language, message))


@lru_cache(maxsize=4096)
def _formatted(language: str, message: str) -> Markup:
    return _markup(language, message) % {}


@jinja2.pass_eval_context
def _template_ngettext(eval_ctx: EvalContext, singular: str, plural: str, num: int, **variables: Any) -> str:
    variables.setdefault("num", num)
    text = ngettext(singular, plural, num)
    return (Markup(text) if eval_ctx.autoescape else text) % variables


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
    env.globals.update(_=_template_gettext, gettext=_template_gettext, ngettext=_template_ngettext)
    env.globals["static"] = static_url
    env.globals["role_label"] = lambda role: gettext(LABELS.get(str(role), str(role)))
    env.filters["number"] = _number
    env.filters["when"] = _when
    env.filters["masked"] = mask_phone
    env.filters["clock"] = _clock
    env.filters["percent"] = _percent
    return env


#: The navigation, in order: (path, message id). An item shows when the role's policy allows it.
NAV: tuple[tuple[str, str], ...] = (
    ("/desk", N_("Desk")),
    ("/wallboard", N_("Wallboard")),
    ("/campaigns", N_("Campaigns")),
    ("/inquiries", N_("Inquiries")),
    ("/results", N_("Results")),
    ("/requests", N_("Service requests")),
    ("/prompts", N_("Voice prompts")),
    ("/admin/users", N_("Users")),
    ("/admin/municipalities", N_("Municipalities")),
    ("/admin/margins", N_("Margins")),
    ("/admin/catalogue", N_("Service catalogue")),
    ("/admin/requests/texts", N_("Citizens' SMS texts")),
    ("/admin/requests/holidays", N_("Holidays")),
    ("/admin/audit", N_("Audit log")),
)


@dataclass(frozen=True, slots=True)
class NavItem:
    href: str
    label: str
    current: bool


def nav_for(principal: Principal | None, path: str) -> list[NavItem]:
    if principal is None or principal.stage != "full":
        return []
    items = []
    for target, label in NAV:
        policy = POLICIES.get(("GET", target))
        if policy is not None and policy.allows(principal.role):
            current = path == target or path.startswith(target + "/")
            items.append(NavItem(target, gettext(label), current))
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
