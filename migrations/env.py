"""Alembic environment: the URL comes from Settings (or ``-x url=...``), never from alembic.ini."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import callcenter.models  # noqa: F401  (registers the tables)
from callcenter.db import pooler_connect_args
from callcenter.settings import get_settings

target_metadata = SQLModel.metadata


def _url() -> str:
    given = context.get_x_argument(as_dictionary=True).get("url")
    url = context.config.attributes.get("url") or given
    return str(url) if url else get_settings().sqlalchemy_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_async_engine(
        _url(), poolclass=pool.NullPool, connect_args=pooler_connect_args(get_settings())
    )
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_online())
