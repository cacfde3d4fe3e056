"""Shared helpers for the benchmarks in scripts/bench: arguments, a scratch database, output.

Every benchmark runs against a throw-away PostgreSQL database (``cc_bench_<random>``) created
on the server named by ``--database-url``, migrated, and dropped at the end (``--keep`` keeps
it for a look afterwards), and prints exactly one JSON object on stdout so a script or CI can
compare runs. Progress and diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing the package

import asyncpg  # type: ignore[import-untyped]  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from callcenter.db import make_engine  # noqa: E402
from callcenter.migrate import upgrade  # noqa: E402
from callcenter.settings import Settings  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"


def parse_args(
    description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The common options (``--database-url``, ``--redis-url``, ``--keep``) plus ``extra``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="a PostgreSQL server (its database is only used to create the scratch one)",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch database (and files) afterwards"
    )
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def _asyncpg_url(url: str) -> str:
    """asyncpg wants ``postgresql://``; accept SQLAlchemy's ``postgresql+asyncpg://`` too."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(server_url: str, name: str) -> str:
    """``server_url`` pointed at the database ``name``."""
    parsed = make_url(_asyncpg_url(server_url))
    return parsed.set(database=name).render_as_string(hide_password=False)


async def connect(url: str) -> Any:
    """A plain asyncpg connection (for COPY baselines and admin statements)."""
    return await asyncpg.connect(_asyncpg_url(url))


@asynccontextmanager
async def scratch_database(server_url: str, *, keep: bool = False) -> AsyncIterator[str]:
    """A fresh, migrated ``cc_bench_<random>`` database; yields its URL, drops it after."""
    name = f"cc_bench_{uuid.uuid4().hex[:10]}"
    admin = await connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url(server_url, name)
    try:
        engine = make_engine(Settings(env="test", database_url=url))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        yield url
    finally:
        if keep:
            note(f"kept database {name}")
        else:
            admin = await connect(server_url)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


@asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(Settings(env="test", database_url=url))
    try:
        yield engine
    finally:
        await engine.dispose()


async def wait_healthy(http: Any, base: str, *, tries: int = 300) -> None:
    """Until the ``serve`` at ``base`` answers ``/health`` (tried every 0.1 s)."""
    import asyncio

    import aiohttp

    for _ in range(tries):
        try:
            async with http.get(base + "/health") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)


def note(message: str) -> None:
    """Diagnostics for a human: stderr, so stdout stays one JSON object."""
    print(message, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """The benchmark's result: exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(result, ensure_ascii=False, sort_keys=False) + "\n")
    sys.stdout.flush()
