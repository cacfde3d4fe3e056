"""The engine through a real PgBouncer in transaction pooling mode, with fewer server connections
than the engine's client connections: migrations, a citizen import (COPY), an SMS campaign sent by
the worker and the citizens' replies through the webhook all interleave their transactions on two
server connections, and nothing is lost, doubled or refused for a missing prepared statement."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.campaigns.service import Audience, counts, create_campaign
from callcenter.citizens.importer import import_citizens
from callcenter.db import make_engine
from callcenter.jobs import Runtime, run_worker, start_campaign
from callcenter.migrate import upgrade
from callcenter.settings import Settings
from callcenter.sms.gateways.loopback import read_outbox
from callcenter.testing.pgbouncer import PgBouncer, PgBouncerUnavailable, pgbouncer_binary
from callcenter.web.app import create_app
from tests.conftest import PG_ADMIN, make_settings, unavailable
from tests.factories import THREE_QUESTIONS, make_inquiry

POOL = 2  # server connections per database: far fewer than the coroutines below
CITIZENS = 300
PREPARED = "prepared statement"  # "... does not exist" / "... already exists"

M = models.table(models.Message)
A = models.table(models.Answer)


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    try:
        pgbouncer_binary()
    except PgBouncerUnavailable as exc:
        unavailable(str(exc))
    with PgBouncer(pool_size=POOL) as running:
        yield running


@pytest.fixture
async def database(bouncer: PgBouncer) -> AsyncIterator[str]:
    """A fresh, empty database (created directly, as an administrator would), reached through
    the bouncer: the engine's migrations run through it too."""
    name = f"cc_pgb_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield bouncer.url(name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def bounced(database: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(
        Settings(env="test", data_dir=tmp_path, database_url=database, database_pooler="pgbouncer")
    )
    yield engine
    await engine.dispose()


def _csv(path: Path, start: int, n: int) -> Path:
    path.write_text("phone\n" + "".join(f"+21891{start + i:07d}\n" for i in range(n)))
    return path


async def _server_pids(engine: AsyncEngine, coroutines: int) -> set[int]:
    """The PostgreSQL backends that ran ``coroutines`` transactions held open at the same time."""
    pids: set[int] = set()

    async def one() -> None:
        for _ in range(3):
            async with engine.begin() as conn:
                pids.add(int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
                await conn.execute(text("SELECT pg_sleep(0.01)"))

    await asyncio.gather(*(one() for _ in range(coroutines)))
    return pids


async def test_a_campaign_and_its_replies_go_through_pgbouncer_transaction_pooling_exactly_once(
    bouncer: PgBouncer,
    database: str,
    bounced: AsyncEngine,
    redis: aioredis.Redis,
    redis_db: int,
    tmp_path: Path,
) -> None:
    engine = bounced
    settings = make_settings(tmp_path, database, redis_db, database_pooler="pgbouncer", reconcile_after_s=1.0)
    await upgrade(engine)  # the migrations, through the bouncer
    # more client connections than server ones: consecutive transactions of one client
    # connection really do land on different server connections
    assert len(await _server_pids(engine, 12)) <= POOL

    await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    imports = await asyncio.gather(  # two COPY imports side by side, in batches of 50
        import_citizens(engine, _csv(tmp_path / "a.csv", 0, CITIZENS // 2), batch_size=50),
        import_citizens(engine, _csv(tmp_path / "b.csv", CITIZENS // 2, CITIZENS // 2), batch_size=50),
    )
    assert [r.imported for r in imports] == [CITIZENS // 2, CITIZENS // 2]
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        campaign = await create_campaign(session, inquiry="three", audience=Audience(), actor="t")
    assert campaign.id is not None

    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop))  # 4 lanes + the reconciler
    rt = await Runtime.start(settings)
    try:
        await start_campaign(rt, campaign.id, actor="test")
        for _ in range(600):
            if await counts(engine, campaign.id) == {"sent": CITIZENS}:
                break
            await asyncio.sleep(0.1)
        assert await counts(engine, campaign.id) == {"sent": CITIZENS}
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
        await rt.close()

    outbox, _ = await read_outbox(redis, "0", CITIZENS * 2)
    assert sorted(sms.to for _, sms, _ in outbox) == sorted(f"+21891{i:07d}" for i in range(CITIZENS))

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            # 30 at a time; every reply posted twice (a gateway's retry): stored once
            gate = asyncio.Semaphore(30)

            async def reply(i: int, to: str) -> tuple[int, str]:
                async with gate:
                    response = await client.post(
                        "/sms/loopback/inbound", json={"id": f"pgb-{i}", "from": to, "body": "4"}
                    )
                    return response.status_code, response.text

            posts = [reply(i, sms.to) for i, (_, sms, _) in enumerate(outbox)]
            answered = await asyncio.gather(
                *posts, *[reply(i, sms.to) for i, (_, sms, _) in enumerate(outbox)]
            )
            # the pages' reader runs in autocommit: its statements are not in a transaction
            results = await asyncio.gather(*(client.get("/api/inquiries/three/results") for _ in range(10)))

    assert [status for status, _ in answered] == [200] * (2 * CITIZENS), answered[:3]
    assert all(r.status_code == 200 for r in results), results[0].text
    assert results[0].json()["questions"][0]["total"] == CITIZENS
    async with engine.connect() as conn:
        inbound = (await conn.execute(select(func.count()).where(M.c.direction == "in"))).scalar_one()
        answers = (await conn.execute(select(func.count(func.distinct(A.c.citizen_id))))).scalar_one()
        rows = (await conn.execute(select(func.count()).select_from(A))).scalar_one()
    assert (inbound, answers, rows) == (CITIZENS, CITIZENS, CITIZENS)
    assert PREPARED not in bouncer.log


async def test_without_the_pooler_setting_pgbouncer_breaks_asyncpg_s_prepared_statements(
    bouncer: PgBouncer, database: str, tmp_path: Path
) -> None:
    """The control: the same engine with asyncpg's defaults fails through the bouncer, so the
    test above passes because of ``CALLCENTER_DATABASE_POOLER=pgbouncer``, not by luck."""
    plain = make_engine(Settings(env="test", data_dir=tmp_path, database_url=database))
    errors: list[str] = []

    async def one(i: int) -> None:
        for j in range(10):
            try:
                async with plain.connect() as conn:
                    await conn.execute(text("SELECT CAST(:a AS int) + :b"), {"a": i, "b": j})
                    await conn.execute(
                        text("SELECT count(*) FROM pg_class WHERE relname = :n"), {"n": str(j)}
                    )
            except Exception as exc:  # what asyncpg raises varies: the text is what we check
                errors.append(str(exc))

    try:
        # the clash needs two clients' statements to meet on one server connection: a matter
        # of timing, so the burst is repeated (a few at most) until it happens
        for _ in range(30):
            await asyncio.gather(*(one(i) for i in range(12)))
            if any(PREPARED in e for e in errors):
                break
    finally:
        await plain.dispose()
    assert any(PREPARED in e for e in errors)
