"""Typed dependencies, declared once (the guards live here, not in each route)."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

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


def get_actor(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """Who is acting (for the audit log). With ``api_token`` set, a bearer token is required."""
    settings: Settings = request.app.state.settings
    token = settings.api_token
    if token is None:
        if settings.env == "production":
            raise HTTPException(503, "set CALLCENTER_API_TOKEN to use the API in production")
        return "dev"
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "a valid bearer token is required")
    return "api"


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
RedisDep = Annotated[ArqRedis, Depends(get_redis)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ActorDep = Annotated[str, Depends(get_actor)]
