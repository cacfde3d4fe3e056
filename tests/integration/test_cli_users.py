"""``callcenter user``: the first admin from the command line, and listing, disabling,
enabling and new links, on the embedded default (SQLite under a data directory)."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from callcenter import cli as cli_module
from callcenter import cli_users
from callcenter.settings import get_settings
from tests.conftest import make_settings
from tests.webapp import running_app, staff_client

PASSWORD = "quiet desert caravan morning"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


def cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env |= {
        "CALLCENTER_DATA_DIR": str(data_dir),
        "CALLCENTER_PUBLIC_BASE_URL": "https://1415.gov.ly",
        "COLUMNS": "250",
    }
    return subprocess.run(
        [sys.executable, "-m", "callcenter.cli", *args],
        env=env,
        cwd=data_dir,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def query(data_dir: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / "1415.db") as db:
        return list(db.execute(sql, params))


async def test_the_first_admin_is_created_from_stdin_and_can_log_in(
    data_dir: Path, redis: aioredis.Redis, redis_db: int
) -> None:
    made = await asyncio.to_thread(
        cli,
        data_dir,
        "user",
        "add",
        "First.Admin@Ministry.gov.ly",
        "--role",
        "admin",
        "--name",
        "المسؤول الأول",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert made.returncode == 0, made.stderr
    assert "first.admin@ministry.gov.ly created (admin)" in made.stdout
    assert PASSWORD not in made.stdout + made.stderr
    [(role, name, hashed)] = query(data_dir, "SELECT role, name, password_hash FROM staff_user")
    assert role == "admin" and name == "المسؤول الأول" and str(hashed).startswith("$argon2id$")
    [(actor, action, after)] = query(data_dir, "SELECT actor, action, after FROM auditlog")
    assert actor == "cli" and action == "user.create" and "password" not in str(after)

    listed = await asyncio.to_thread(cli, data_dir, "user", "list")
    assert listed.returncode == 0 and "first.admin@ministry.gov.ly" in listed.stdout
    assert "active" in listed.stdout and "all" in listed.stdout

    settings = make_settings(data_dir, f"sqlite:///{data_dir / '1415.db'}", redis_db)
    async with running_app(settings) as app, staff_client(app) as browser:
        response = await browser.login("first.admin@ministry.gov.ly", PASSWORD)
        # the password works; an admin must then set up the second factor
        assert response.status_code == 303 and response.headers["location"] == "/account/totp"


def test_the_password_is_never_taken_from_an_argument(data_dir: Path) -> None:
    extra = cli(data_dir, "user", "add", "a@ministry.gov.ly", "--role", "admin", PASSWORD)
    assert extra.returncode == 2
    option = cli(data_dir, "user", "add", "a@ministry.gov.ly", "--role", "admin", "--password", PASSWORD)
    assert option.returncode == 2 and "No such option" in option.stderr
    no_tty = cli(data_dir, "user", "add", "a@ministry.gov.ly", "--role", "admin", stdin=PASSWORD + "\n")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "admin"], "short\n", "at least 12 characters"),
        (["--role", "admin"], "password1234\n", "too common"),
        (["--role", "admin"], "\n", "at least 12 characters"),
        (["--role", "root"], PASSWORD + "\n", "Invalid value for '--role'"),
        (
            ["--role", "officer", "--municipality", "atlantis"],
            PASSWORD + "\n",
            "no municipality with the code",
        ),
        (["--role", "admin", "--language", "fr"], PASSWORD + "\n", "--language is ar or en"),
    ],
    ids=["short", "common", "empty", "role", "municipality", "language"],
)
def test_bad_input_exits_2_with_a_clear_message_and_creates_nobody(
    data_dir: Path, args: list[str], stdin: str, message: str
) -> None:
    result = cli(data_dir, "user", "add", "b@ministry.gov.ly", *args, "--password-stdin", stdin=stdin)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    if (data_dir / "1415.db").exists():
        assert query(data_dir, "SELECT count(*) FROM staff_user") == [(0,)]


def test_an_invalid_or_taken_address_exits_2(data_dir: Path) -> None:
    bad = cli(
        data_dir, "user", "add", "not-an-address", "--role", "agent", "--password-stdin", stdin=PASSWORD
    )
    assert bad.returncode == 2 and "e-mail address" in bad.stderr
    first = cli(
        data_dir, "user", "add", "c@ministry.gov.ly", "--role", "agent", "--password-stdin", stdin=PASSWORD
    )
    assert first.returncode == 0
    again = cli(
        data_dir, "user", "add", "C@ministry.gov.ly", "--role", "agent", "--password-stdin", stdin=PASSWORD
    )
    assert again.returncode == 2 and "exists already" in again.stderr


def test_a_municipality_scope_is_given_by_code(data_dir: Path) -> None:
    assert cli(data_dir, "migrate").returncode == 0
    with sqlite3.connect(data_dir / "1415.db") as db:
        db.execute(
            "INSERT INTO municipality (code, name_ar, name_en) VALUES ('misrata', 'مصراتة', 'Misrata')"
        )
    result = cli(
        data_dir,
        "user",
        "add",
        "officer@misrata.gov.ly",
        "--role",
        "officer",
        "--municipality",
        "misrata",
        "--password-stdin",
        stdin=PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert query(
        data_dir, "SELECT m.code FROM user_municipality um JOIN municipality m ON m.id = um.municipality_id"
    ) == [("misrata",)]
    assert "misrata" in cli(data_dir, "user", "list").stdout


def test_disable_enable_and_reset_are_audited_as_the_cli(data_dir: Path) -> None:
    email = "d@ministry.gov.ly"
    assert (
        cli(data_dir, "user", "add", email, "--role", "agent", "--password-stdin", stdin=PASSWORD).returncode
        == 0
    )
    disabled = cli(data_dir, "user", "disable", email.upper())
    assert disabled.returncode == 0 and f"user {email} disabled" in disabled.stdout
    assert "disabled" in cli(data_dir, "user", "list").stdout
    assert cli(data_dir, "user", "enable", email).returncode == 0
    reset = cli(data_dir, "user", "reset", email)
    assert reset.returncode == 0, reset.stderr
    link = re.search(r"https://1415\.gov\.ly/invite/([A-Za-z0-9_-]{20,})", reset.stdout)
    assert link is not None and "shown once" in reset.stdout
    [(hashed, invite)] = query(data_dir, "SELECT password_hash, invite_hash FROM staff_user")
    assert hashed is None and invite is not None and link.group(1) not in str(invite)  # only its hash
    actions = query(data_dir, "SELECT actor, action FROM auditlog ORDER BY id")
    assert actions == [
        ("cli", "user.create"),
        ("cli", "user.disable"),
        ("cli", "user.enable"),
        ("cli", "user.password_reset"),
    ]
    unknown = cli(data_dir, "user", "disable", "nobody@ministry.gov.ly")
    assert unknown.returncode == 2 and "no user with the e-mail address" in unknown.stderr


@pytest.fixture
def in_process(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for key in [k for k in os.environ if k.startswith("CALLCENTER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CALLCENTER_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CALLCENTER_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_on_a_terminal_the_password_is_asked_twice_hidden(
    in_process: CliRunner, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_users, "_stdin_is_tty", lambda: True)
    args = ["user", "add", "e@ministry.gov.ly", "--role", "admin"]
    result = in_process.invoke(cli_module.app, args, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output and PASSWORD not in result.output
    assert query(data_dir, "SELECT email, role FROM staff_user") == [("e@ministry.gov.ly", "admin")]

    mismatch = in_process.invoke(
        cli_module.app,
        ["user", "add", "f@ministry.gov.ly", "--role", "admin"],
        input=f"{PASSWORD}\nother one\n",
    )
    assert mismatch.exit_code != 0 and "do not match" in mismatch.output
    assert query(data_dir, "SELECT count(*) FROM staff_user") == [(1,)]
