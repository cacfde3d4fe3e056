"""One policy table for the whole app: every route is declared, and every route answers every
role (and anonymous, and a token without the scope) exactly as the table says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.routing import Mount, Route

from callcenter.accounts.roles import Role
from callcenter.accounts.sessions import COOKIE, open_session
from callcenter.accounts.tokens import create_token
from callcenter.settings import Settings
from callcenter.web.app import create_app
from callcenter.web.guard import application_routes
from callcenter.web.policy import MOUNTS, POLICIES, Policy
from tests.webapp import make_user, running_app

MACHINE_TOKEN = "machine-token-for-the-policy-test"
# Path parameters that exist nowhere: an allowed role gets 404/422, never 401/403.
PARAMS = {
    "campaign_id": "987654",
    "user_id": "987654",
    "municipality_id": "987654",
    "token_id": "987654",
    "slug": "no-such-inquiry",
    "ref": "no-such-inquiry",
    "token": "no-such-invitation",
    "language": "ar",
    "prompt_id": "no-such-prompt",
    "agent_id": "987654",
    "entry": "no-such-call",
    "job_id": "no-such-export-job",  # an analyst's export job
    "fmt": "json",  # Open311
    "service_code": "no-such-service",
    "service_request_id": "1415-0000-0000",
    "reference": "1415-0000-0000",  # service requests' pages
    "category_id": "987654",
    "body_id": "987654",
    "text_id": "texts.no_such_text",  # the citizens' SMS texts
}
QUERY = {"/live": {"topic": "campaign:987654"}}
# Routes whose handler narrows the route's policy by what is asked for: the live stream of a
# campaign is for those who may read campaigns.
NARROWED = {("GET", "/live"): ("GET", "/campaigns/{campaign_id}")}


def _routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    for path, route in application_routes(app.routes):
        if isinstance(route, APIRoute):
            for method in sorted(route.methods - {"HEAD"}):
                yield method, path


def test_every_route_has_a_declared_policy() -> None:
    app = create_app(Settings(env="test"))
    missing = []
    for path, route in application_routes(app.routes):
        if isinstance(route, APIRoute):
            missing += [(m, path) for m in route.methods - {"HEAD"} if (m, path) not in POLICIES]
        elif isinstance(route, Mount):
            if path not in MOUNTS:
                missing.append(("MOUNT", path))
        elif isinstance(route, Route):
            # FastAPI's own docs pages are not guarded by the dependency: they must be public
            for method in (route.methods or set()) - {"HEAD"}:
                policy = POLICIES.get((method, path))
                if policy is None or policy.kind != "public":
                    missing.append((method, path))
        else:
            missing.append(("?", str(route)))
    assert missing == [], f"routes without an access policy: {missing}"


def test_the_table_names_no_route_that_does_not_exist() -> None:
    app = create_app(Settings(env="test"))
    real = set(_routes(app)) | {
        (m, path)
        for path, r in application_routes(app.routes)
        if isinstance(r, Route) and not isinstance(r, APIRoute)
        for m in r.methods or ()
    }
    assert sorted(set(POLICIES) - real) == []


def _url(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: PARAMS[m.group(1)], path)


def _expected(policy: Policy, who: Role | None, *, api: bool) -> str:
    if policy.kind in ("public", "webhook"):
        return "in"
    if who is None:
        return "login"
    if policy.kind == "pending":
        return "step"  # a full session is not between password and code
    return "in" if policy.allows(who) else "forbidden"


def _outcome(response: httpx.Response, *, api: bool) -> str:
    if response.status_code == 401 or (
        response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    ):
        return "login"  # the guard's answer (a page's own redirect to /login, e.g. after logout, is not)
    if response.headers.get("x-error-id") == "forbidden":
        return "forbidden"
    if response.status_code == 303 and response.headers["location"] in ("/account/totp",):
        return "step"
    assert response.status_code < 500, (response.request.method, response.request.url, response.text[:500])
    return "in"


async def _session_cookie(engine: AsyncEngine, user_id: int, stage: str = "full") -> tuple[str, str]:
    async with AsyncSession(engine) as session, session.begin():
        opened = await open_session(
            session,
            user_id=user_id,
            stage=stage,
            address="203.0.113.9",
            user_agent="policy-test",
            absolute=timedelta(hours=1),
            now=datetime.now(UTC),
        )
    return opened.token, opened.csrf_token


@pytest.fixture
async def app(settings: Settings, redis: object) -> object:
    settings.api_token = MACHINE_TOKEN
    async with running_app(settings) as running:
        yield running


async def test_every_route_answers_every_role_as_the_table_says(app: FastAPI, engine: AsyncEngine) -> None:
    users = {role: await make_user(engine, role) for role in Role}
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    wrong: list[str] = []
    async with httpx.AsyncClient(transport=transport, base_url="https://1415.test") as client:
        for method, path in sorted(_routes(app)):
            policy = POLICIES[NARROWED.get((method, path), (method, path))]
            api = path.startswith("/api/")
            for who in [None, *Role]:
                headers: dict[str, str] = {}
                client.cookies.clear()
                data: dict[str, str] | None = None
                if who is not None:
                    assert users[who].id is not None
                    token, csrf = await _session_cookie(engine, users[who].id)  # type: ignore[arg-type]
                    client.cookies.set(COOKIE, token)
                    headers["X-CSRF-Token"] = csrf
                elif method != "GET":
                    client.cookies.set("cc_csrf", "anon-token")
                    headers["X-CSRF-Token"] = "anon-token"
                if method != "GET":
                    data = {}
                response = await client.request(
                    method,
                    _url(path),
                    headers=headers,
                    params=QUERY.get(path),
                    data=data,
                    follow_redirects=False,
                )
                got, want = _outcome(response, api=api), _expected(policy, who, api=api)
                if got != want and not (policy.kind == "webhook" and got == "forbidden"):
                    wrong.append(
                        f"{method} {path} as {who}: {got}, table says {want} ({response.status_code})"
                    )
    assert wrong == [], "\n".join(wrong)


async def test_tokens_need_the_route_scope(app: FastAPI, engine: AsyncEngine) -> None:
    operator = await make_user(engine, Role.operator)
    assert operator.id is not None
    now = datetime.now(UTC)
    async with AsyncSession(engine) as session, session.begin():
        _, reader = await create_token(
            session, user_id=operator.id, role=Role.operator, name="r", scopes=["inquiries:read"],
            expires_at=now + timedelta(days=1), now=now,
        )  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://1415.test") as client:
        for method, path in sorted(_routes(app)):
            policy = POLICIES[(method, path)]
            if not path.startswith("/api/") or policy.scope is None:
                continue
            response = await client.request(method, _url(path), headers={"Authorization": f"Bearer {reader}"})
            if policy.scope == "inquiries:read" and policy.allows(Role.operator):
                assert response.status_code not in (401, 403), (method, path, response.text)
            else:
                assert response.status_code == 403, (method, path, response.status_code)
        anonymous = await client.get("/api/campaigns/1")
        assert anonymous.status_code == 401
        machine = await client.get(
            "/api/campaigns/987654", headers={"Authorization": f"Bearer {MACHINE_TOKEN}"}
        )
        assert machine.status_code == 404  # admin scope: in, and the campaign does not exist


async def test_the_desk_and_wallboard_live_topics_narrow_the_live_route_like_their_pages(
    app: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    """``GET /live`` lets any staff in; ``wallboard`` is then for those who may open /wallboard,
    and ``desk:<id>`` for that agent alone (never another agent's, never another role)."""
    from callcenter.accounts.principal import Principal
    from callcenter.web.guard import Forbidden
    from callcenter.web.pages.live import _source

    wrong: list[str] = []
    for role in Role:
        user = await make_user(engine, role)
        assert user.id is not None
        who = Principal(user.id, user.email, user.name, role, frozenset(), "en", "session")
        cases = {
            "wallboard": POLICIES[("GET", "/wallboard")].allows(role),
            f"desk:{user.id}": POLICIES[("GET", "/desk")].allows(role),
            f"desk:{user.id + 1000}": False,
        }
        for topic, allowed in cases.items():
            try:
                await _source(engine, app.state.redis, settings, who, topic)
                got = True
            except Forbidden:
                got = False
            if got != allowed:
                wrong.append(f"{topic} as {role}: {'in' if got else 'refused'}")
    assert wrong == [], "\n".join(wrong)
