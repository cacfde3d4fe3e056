"""The staff web app in tests: users of each role, and a client that logs in and posts forms
with their CSRF token, the way a browser does."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.accounts.passwords import hash_password
from callcenter.accounts.roles import Role
from callcenter.accounts.service import set_scope
from callcenter.settings import Settings
from callcenter.web.app import create_app

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@cache
def password_hash() -> str:
    """One Argon2id hash of PASSWORD for every test user (hashing costs ~60 ms each)."""
    return hash_password(PASSWORD)


async def make_user(
    engine: AsyncEngine,
    role: Role | str,
    *,
    email: str | None = None,
    name: str = "",
    municipalities: Iterable[int] = (),
    totp_secret: str | None = None,
    language: str = "ar",
    disabled: bool = False,
) -> models.User:
    role = Role(role)
    user = models.User(
        email=(email or f"{role.value}-{uuid.uuid4().hex[:8]}@test.1415.ly").casefold(),
        name=name or f"Test {role.value}",
        role=role.value,
        password_hash=password_hash(),
        totp_secret=totp_secret,
        language=language,
        disabled_at=datetime.now(UTC) if disabled else None,
    )
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        session.add(user)
        await session.flush()
        assert user.id is not None
        await set_scope(session, user.id, list(municipalities))
    return user


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


class StaffClient:
    """An httpx client on the app that keeps cookies and the last page's CSRF token."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client
        self.csrf = ""

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        response = await self.http.get(path, **kw)
        if "text/html" in response.headers.get("content-type", "") and (m := _CSRF.search(response.text)):
            self.csrf = m.group(1)
        return response

    async def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kw: Any
    ) -> httpx.Response:
        if csrf and not self.csrf:
            await self.get("/login")
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        response = await self.http.post(path, data=form, **kw)
        if "text/html" in response.headers.get("content-type", "") and (m := _CSRF.search(response.text)):
            self.csrf = m.group(1)
        return response

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        await self.get("/login")
        response = await self.post("/login", {"email": email, "password": password})
        if response.status_code == 303:  # land where a browser would, to hold the session's token
            await self.get(response.headers["location"], follow_redirects=True)
        return response


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def staff_client(app: FastAPI) -> AsyncIterator[StaffClient]:
    """A fresh browser-like client (own cookies) on a running app. https, so Secure cookies flow."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://1415.test") as client:
        yield StaffClient(client)


async def logged_in(
    app: FastAPI, engine: AsyncEngine, role: Role | str, **user: Any
) -> tuple[StaffClient, models.User]:
    """Not a context manager: for tests that hold several clients; close with ``aclose``."""
    row = await make_user(engine, role, **user)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    client = StaffClient(httpx.AsyncClient(transport=transport, base_url="https://1415.test"))
    response = await client.login(row.email)
    assert response.status_code == 303, response.text
    return client, row
