"""Typed dependencies, declared once (the guards live here, not in each route)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.audit import Actor
from callcenter.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def get_redis(request: Request) -> ArqRedis:
    redis: ArqRedis = request.app.state.redis
    return redis


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session whose transaction commits when the route returns without error."""
    async with AsyncSession(request.app.state.engine, expire_on_commit=False) as session, session.begin():
        yield session


async def get_actor(request: Request) -> Actor:
    """Who is acting (for the audit log): the guard has authenticated the request already."""
    from callcenter.web.guard import NotAuthenticated, authenticate, client_address

    principal = await authenticate(request)
    if principal is None:
        raise NotAuthenticated("a valid bearer token is required")
    return principal.actor(client_address(request))


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
RedisDep = Annotated[ArqRedis, Depends(get_redis)]
# scope="function": the transaction commits when the handler returns, before the answer is sent
# (by default FastAPI closes a yield dependency after the response, so a browser following a
# redirect could read the old state)
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ActorDep = Annotated[Actor, Depends(get_actor)]
