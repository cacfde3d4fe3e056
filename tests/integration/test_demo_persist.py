"""The newcomer's path: ``callcenter demo`` keeps what it ran in the embedded database under
the data directory, can run again, and leaves a demo operator to log in with (development
only) and the demo's agents with their day on the wallboard; ``--scratch`` keeps nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.accounts.passwords import verify_password
from callcenter.db import make_engine
from callcenter.demo import DEMO_EMAIL, DemoRefused, ensure_demo_account, run_demo
from callcenter.demo_agents import AGENTS, demo_email
from callcenter.settings import Settings
from tests.conftest import REDIS_URL
from tests.webapp import running_app, staff_client

SLUG = "return-of-life-roads"


def dev_settings(root: Path, **extra: object) -> Settings:
    """What a newcomer has: nothing configured but the data directory."""
    values: dict[str, object] = {
        "env": "development",
        "data_dir": root / "data",
        "database_url": None,
        "redis_url": None,
        "api_token": None,
        "quiet_start": None,
        "quiet_end": None,
        "prompts_dir": root / "prompts",
    }
    return Settings(**(values | extra))  # type: ignore[arg-type]


@pytest.fixture
async def kept(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The database the demo keeps its runs in, opened as ``callcenter up`` would."""
    engine = make_engine(Settings(env="test", database_url=f"sqlite:///{tmp_path / 'data' / '1415.db'}"))
    yield engine
    await engine.dispose()


async def test_two_demo_runs_are_kept_and_the_demo_operator_logs_in(
    tmp_path: Path, kept: AsyncEngine, redis: object, redis_db: int
) -> None:
    settings = dev_settings(tmp_path)
    first, _ = await run_demo(settings, citizens=30, progress=False)
    second, results = await run_demo(settings, citizens=30, progress=False)

    database = tmp_path.resolve() / "data" / "1415.db"
    assert first["database"] == second["database"] == str(database) and database.is_file()
    assert (first["inquiry"], second["inquiry"]) == (SLUG, f"{SLUG}-2")  # a suffix, not a clash
    for summary in (first, second):
        assert summary["lost"] == 0 and summary["duplicated"] == 0
        assert summary["answers"] == summary["intended_answers"] > 0
        assert summary["demo_account"] == DEMO_EMAIL
        agents = summary["to_agents"]
        assert agents["agents"] == AGENTS and agents["lost"] == 0 and agents["connected"] > 0
        assert agents["callers"] == sum(
            agents[k] for k in ("connected", "abandoned", "called_back", "told_message")
        )
    assert results.inquiry == f"{SLUG}-2"

    async with AsyncSession(kept) as session:
        inquiry, audit = models.table(models.Inquiry), models.table(models.AuditLog)
        inquiries = {
            slug: status for slug, status in await session.execute(select(inquiry.c.slug, inquiry.c.status))
        }
        assert inquiries == {SLUG: "closed", f"{SLUG}-2": "running"}  # callers reach the newest
        campaigns = (await session.execute(select(func.count()).select_from(models.Campaign))).scalar_one()
        assert campaigns == 2
        everyone = list((await session.execute(select(models.User).order_by(models.User.id))).scalars())
        users = [u for u in everyone if u.role != "agent"]
        assert [(u.email, u.role, u.disabled_at) for u in users] == [(DEMO_EMAIL, "operator", None)]
        # the demo's agents, once however many runs; no password: nobody logs in as them
        assert [(u.email, u.password_hash) for u in everyone if u.role == "agent"] == [
            (demo_email(n), None) for n in range(AGENTS)
        ]
        handled = (
            await session.execute(
                select(func.count())
                .select_from(models.RoutingEvent)
                .where(models.RoutingEvent.kind == "entry.ended")
            )
        ).scalar_one()
        assert handled >= 2  # both runs' calls are in the log the wallboard reads
        mine = audit.c.target == f"user:{users[0].id}"
        actions = list(
            (await session.execute(select(audit.c.action).where(mine).order_by(audit.c.id))).scalars()
        )
        assert actions == ["user.create", "user.password_change"]  # created once, then reset

    web = settings.model_copy(
        update={"database_url": f"sqlite:///{database}", "redis_url": f"{REDIS_URL}/{redis_db}"}
    )
    async with running_app(web) as app, staff_client(app) as client:
        response = await client.login(DEMO_EMAIL, settings.demo_password)
        assert response.status_code == 303
        assert (await client.get("/")).headers["location"] == "/campaigns"  # an operator's home
        prompts = await client.get("/prompts", params={"q": f"q-{SLUG}-2-"})
        assert prompts.status_code == 200 and f"q-{SLUG}-2-" in prompts.text
        assert (await client.get("/admin/users")).status_code == 403  # an operator, not an admin


async def test_outside_development_the_demo_keeps_nothing_and_makes_no_account(tmp_path: Path) -> None:
    settings = dev_settings(tmp_path, env="test")
    with pytest.raises(DemoRefused, match="--scratch"):
        await run_demo(settings, citizens=5, progress=False)
    assert not (tmp_path / "data" / "1415.db").exists()

    summary, _ = await run_demo(settings, citizens=20, progress=False, scratch=True)
    assert summary["database"] is None and summary["demo_account"] is None and summary["lost"] == 0
    assert not (tmp_path / "data" / "1415.db").exists()


@pytest.mark.parametrize("env", ["test", "production"])
async def test_the_demo_account_is_never_created_outside_development(engine: AsyncEngine, env: str) -> None:
    secrets = {"secret_key": "s" * 32, "pseudonym_key": "p" * 32, "kannel_secret": "k" * 32}
    settings = Settings(env=env, **(secrets if env == "production" else {}))  # type: ignore[arg-type]
    assert await ensure_demo_account(engine, settings) is None
    async with AsyncSession(engine) as session:
        assert (await session.execute(select(func.count()).select_from(models.User))).scalar_one() == 0


async def test_a_second_run_resets_the_demo_account_to_a_working_operator(engine: AsyncEngine) -> None:
    settings = Settings(env="development", demo_password="the demo password 1415")
    user_id = await ensure_demo_account(engine, settings)
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        user = await session.get(models.User, user_id)
        assert user is not None
        user.role, user.password_hash, user.disabled_at = "admin", None, models.utcnow()
    assert await ensure_demo_account(engine, settings) == user_id
    async with AsyncSession(engine) as session:
        user = await session.get(models.User, user_id)
        assert user is not None and user.role == "operator" and user.disabled_at is None
        assert verify_password(user.password_hash, "the demo password 1415")


def test_the_command_keeps_nothing_with_scratch(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env |= {"CALLCENTER_DATA_DIR": str(tmp_path / "data"), "CALLCENTER_QUIET_START": ""}

    def demo(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "callcenter.cli", "demo", "--citizens", "20", *args],
            env=env | more,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    scratch = demo("--scratch", "--json")
    assert scratch.returncode == 0, scratch.stderr
    assert not (tmp_path / "data" / "1415.db").exists()
    refused = demo(CALLCENTER_ENV="test")
    assert refused.returncode == 2 and "--scratch" in refused.stderr and "Traceback" not in refused.stderr
    kept = demo()
    assert kept.returncode == 0, kept.stderr
    assert "demo@1415.local" in kept.stdout and (tmp_path / "data" / "1415.db").is_file()
