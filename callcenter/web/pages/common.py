"""What page handlers share: safe redirects, form values, the principal, cookies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from markupsafe import Markup, escape

from callcenter.accounts.principal import Principal
from callcenter.accounts.roles import HOME
from callcenter.audit import Actor
from callcenter.web.guard import NotAuthenticated, authenticate, client_address


def now() -> datetime:
    return datetime.now(UTC)


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to; anything that could leave the site (``//evil``, ``https:``,
    ``/\\evil``, control characters) becomes ``default``."""
    if not target or len(target) > 2000:
        return default
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 0x20 or ch == "\\" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def home_of(principal: Principal) -> str:
    return HOME[principal.role]


async def current_user(request: Request) -> Principal:
    principal = await authenticate(request)
    if principal is None:
        raise NotAuthenticated("log in first")
    return principal


async def current_actor(request: Request) -> Actor:
    return (await current_user(request)).actor(client_address(request))


CurrentUser = Annotated[Principal, Depends(current_user)]
CurrentActor = Annotated[Actor, Depends(current_actor)]


async def form_text(request: Request, name: str, *, limit: int = 2000) -> str:
    """A text field of the posted form ('' when absent), cut at ``limit`` characters."""
    value = (await request.form()).get(name)
    return value[:limit] if isinstance(value, str) else ""


async def form_list(request: Request, name: str) -> list[str]:
    return [v for v in (await request.form()).getlist(name) if isinstance(v, str)]


def isolated(message: str, values: Mapping[str, str]) -> Markup:
    """A translated message with each value isolated left to right (``<bdi dir="ltr">``): a date
    or a ``{placeholder}`` inside an Arabic sentence keeps its own order."""
    return Markup(escape(message)) % {
        k: Markup('<bdi dir="ltr">{}</bdi>').format(v) for k, v in values.items()
    }
