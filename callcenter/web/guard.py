"""The one guard: authenticate the request, then enforce the route's entry in ``web.policy``.

It runs before every route (an application-wide dependency). Pages get a redirect to the
login (or to the second-factor step) and an HTML 403; the JSON API gets 401/403 bodies.
State-changing requests from a browser session must carry the session's CSRF token (form
field ``csrf_token`` or header ``X-CSRF-Token``); anonymous forms (login, invitations) carry
a double-submit token from the ``cc_csrf`` cookie. Token and machine calls need none: they
send no cookies.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from callcenter.accounts.principal import Principal
from callcenter.accounts.roles import Role
from callcenter.accounts.sessions import COOKIE
from callcenter.accounts.sessions import load as load_session
from callcenter.accounts.tokens import load_token
from callcenter.errors import CallCenterError
from callcenter.settings import Settings
from callcenter.web.deps import get_reader
from callcenter.web.i18n import current_language
from callcenter.web.policy import POLICIES, Policy

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANON_CSRF_COOKIE = "cc_csrf"
LANGUAGE_COOKIE = "cc_lang"


class NotAuthenticated(CallCenterError):
    status_code = 401
    error_id = "not_authenticated"


class Forbidden(CallCenterError):
    status_code = 403
    error_id = "forbidden"


class CsrfFailed(Forbidden):
    error_id = "csrf_failed"


class StepRequired(CallCenterError):
    """A session that must give its second factor, or enrol one, first."""

    status_code = 303
    error_id = "step_required"

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def authenticate(request: Request) -> Principal | None:
    """Who sent this request (cached on ``request.state``), or None."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    settings: Settings = request.app.state.settings
    principal: Principal | None = None
    now = datetime.now(UTC)
    authorization = request.headers.get("authorization", "")
    if authorization:
        given = authorization.removeprefix("Bearer ").strip()
        machine = settings.api_token
        if machine is not None and hmac.compare_digest(given.encode(), machine.encode()):
            principal = _machine("api")
        elif given:
            async with (await get_reader(request)).connect() as conn:
                principal = await load_token(conn, given, now=now)
    elif token := request.cookies.get(COOKIE):
        # a connection of its own, given back before the page runs: a page never waits for a
        # second connection while holding this one (pool deadlock); in autocommit, so the
        # lookup is one round trip and the occasional ``last_seen_at`` write is kept at once
        async with (await get_reader(request)).connect() as conn:
            idle = timedelta(minutes=settings.session_idle_minutes)
            principal = await load_session(conn, token, idle=idle, now=now)
    elif is_api(request) and settings.api_token is None and settings.env != "production":
        # development and tests without a machine token: the API is open, as before accounts
        principal = _machine("dev")
    request.state.principal = principal
    if principal is not None and principal.via == "session":
        current_language.set("en" if principal.language == "en" else "ar")
    return principal


def _machine(name: str) -> Principal:
    return Principal(
        user_id=None,
        email=name,
        name=name,
        role=Role.admin,
        municipalities=frozenset(),
        language="en",
        via="machine",
        scopes=frozenset({"admin"}),
    )


def application_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """Every route of the app as (full path, route), included routers expanded (FastAPI ≥ 0.160
    keeps an included router as one entry of ``app.routes``)."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            inner = prefix + str(getattr(getattr(route, "include_context", None), "prefix", "") or "")
            yield from application_routes(original.routes, inner)
        elif isinstance(route, APIRoute):
            yield prefix + route.path_format, route
        else:
            yield prefix + str(getattr(route, "path", "")), route


def route_policy(request: Request) -> Policy | None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return None
    method = "GET" if request.method == "HEAD" else request.method
    return POLICIES.get((method, route.path_format))


async def authorize(request: Request) -> None:
    """Enforce the route's policy (deny when the route has none)."""
    _language_from_cookie(request)
    policy = route_policy(request)
    if policy is None:
        raise Forbidden("this route has no access policy")
    if policy.kind == "webhook":
        return
    if policy.kind == "public":
        # a logged-in user's forms carry the session's token, even on public pages
        principal = await authenticate(request) if request.cookies.get(COOKIE) else None
        if request.method not in SAFE_METHODS:
            if principal is not None and principal.via == "session":
                await _check_csrf(request, principal.csrf_token or "")
            else:
                await _check_anonymous_csrf(request)
        return
    settings: Settings = request.app.state.settings
    if is_api(request) and settings.api_token is None and settings.env == "production":
        raise CallCenterError("set CALLCENTER_API_TOKEN to use the API in production")
    principal = await authenticate(request)
    if principal is None:
        raise NotAuthenticated("log in first")
    if principal.stage not in policy.stages:
        raise StepRequired(principal.stage)
    if not policy.allows(principal.role):
        raise Forbidden("your role may not do this")
    if policy.scope is not None and not principal.has_scope(policy.scope):
        raise Forbidden(f"this token lacks the {policy.scope} scope")
    if principal.via == "session" and request.method not in SAFE_METHODS:
        await _check_csrf(request, principal.csrf_token or "")


def _language_from_cookie(request: Request) -> None:
    current_language.set("en" if request.cookies.get(LANGUAGE_COOKIE) == "en" else "ar")


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


async def _check_csrf(request: Request, expected: str) -> None:
    given = await _submitted_csrf(request)
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfFailed("the form has expired or did not come from this site; reload the page and try again")


async def _check_anonymous_csrf(request: Request) -> None:
    await _check_csrf(request, request.cookies.get(ANON_CSRF_COOKIE, ""))
