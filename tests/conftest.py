"""Fixtures on the real thing: a fresh PostgreSQL database per test session, a scratch SQLite
file, and a dedicated Redis database, each migrated or flushed, and cleaned up afterwards."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn

import asyncpg
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.db import make_engine, make_sessionmaker
from callcenter.migrate import upgrade
from callcenter.settings import Settings
from callcenter.testing.asterisk import Toolchain

PG_ADMIN = os.environ.get("TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
# Tables in the order they can be emptied (children first).
TABLES = (
    "request_text",
    "open311_request",
    "open311_client",
    "request_event",
    "service_request",
    "category_body",
    "service_category",
    "responsible_body",
    "holiday_correction",
    "population_margin",
    "routing_event",
    "callback",
    "agent",
    "service_queue",
    "api_token",
    "user_session",
    "user_municipality",
    "staff_user",
    "municipality_alias",
    "ticket",
    "call",
    "answer",
    "optout",
    "message",
    "delivery",
    "inquiry_session",
    "campaign",
    "question",
    "inquiry",
    "citizen",
    "municipality",
    "auditlog",
)


@pytest.fixture(scope="session")
async def pg_database() -> AsyncIterator[str]:
    """A throw-away PostgreSQL database for this test session."""
    name = f"cc_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    # a test database needs no durability: commits need not wait for the WAL's fsync
    await admin(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    """A Redis database (1..15) no other test session is using: claimed in database 0 with
    SET NX, so test runs side by side (a developer's and a helper's) never flush each other."""
    import redis as sync_redis

    admin = sync_redis.Redis.from_url(f"{REDIS_URL}/0")
    for db in itertools.chain(range(1 + os.getpid() % 15, 16), range(1, 16)):
        if admin.set(f"cc-test-claim:{db}", os.getpid(), nx=True, ex=6 * 3600):
            break
    else:
        pytest.fail("all 15 test Redis databases are claimed (stale claims expire after 6 h)")
    try:
        yield db
    finally:
        admin.delete(f"cc-test-claim:{db}")
        admin.close()


def make_settings(tmp: Path, database_url: str, redis_db: int, **extra: object) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp,
        database_url=database_url,
        redis_url=f"{REDIS_URL}/{redis_db}",
        quiet_start=None,
        quiet_end=None,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
async def pg_engine(pg_database: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(Settings(env="test", database_url=pg_database))
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    path = tmp_path_factory.mktemp("sqlite") / "test.db"
    engine = make_engine(Settings(env="test", database_url=f"sqlite:///{path}"))
    await upgrade(engine)
    yield engine
    await engine.dispose()


# which tables hold rows: a test writes to a few, and TRUNCATE costs per table (a new file each)
_DIRTY = " UNION ALL ".join(f"SELECT '{t}' FROM (SELECT 1 FROM {t} LIMIT 1) AS {t}_" for t in TABLES)
# every sequence a test moved, truncated table or not (an insert rolled back moves it too)
_RESTART = (
    "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, 1, false) "
    "FROM pg_sequences WHERE last_value IS NOT NULL"
)


async def truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            dirty = list((await conn.execute(text(_DIRTY))).scalars())
            if dirty:
                await conn.execute(text(f"TRUNCATE {', '.join(dirty)} RESTART IDENTITY CASCADE"))
            await conn.execute(text(_RESTART))
        else:
            for table in TABLES:
                await conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=["postgresql", "sqlite"])
async def engine(
    request: pytest.FixtureRequest, pg_engine: AsyncEngine, sqlite_engine: AsyncEngine
) -> AsyncIterator[AsyncEngine]:
    """The test runs once on PostgreSQL and once on SQLite, on empty tables."""
    eng = pg_engine if request.param == "postgresql" else sqlite_engine
    await truncate(eng)
    yield eng


@pytest.fixture
async def pg(pg_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """PostgreSQL only (COPY, concurrency), on empty tables."""
    await truncate(pg_engine)
    yield pg_engine


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
async def redis(redis_db: int) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(f"{REDIS_URL}/{redis_db}")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def settings(tmp_path: Path, engine: AsyncEngine, redis_db: int) -> Settings:
    return make_settings(tmp_path, engine.url.render_as_string(hide_password=False), redis_db)


@pytest.fixture
async def inbox(engine: AsyncEngine, settings: Settings) -> AsyncIterator[object]:
    """The SMS inbox on the test's database (its connection pool closed afterwards)."""
    from callcenter.sms.inbox import Inbox

    box = Inbox(engine, settings)
    yield box
    await box.aclose()


def unavailable(reason: str) -> NoReturn:
    """Skip with the reason on a newcomer's machine; in CI the real part must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: it must be there)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tools() -> Toolchain:
    """The real Asterisk 22 and SIPp builds (from ../shared/asterisk)."""
    from callcenter.testing.asterisk import AsteriskUnavailable, toolchain

    try:
        return toolchain()
    except AsteriskUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture
async def web(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[object]:
    """The staff web app on the test's databases (see tests/webapp.py for logging in)."""
    from tests.webapp import running_app

    async with running_app(settings) as app:
        yield app


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Commands run in-process (typer's CliRunner) install the engine's logging on the root
    logger; put it back, so one test's handlers (and their phone-masking filter, which rewrites
    records) do not change what the next test's caplog sees."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers  # basicConfig(force=True) removed pytest's own as well
    root.setLevel(level)
