"""The ``callcenter`` command as a newcomer meets it: the embedded default (SQLite + embedded
Redis under a data directory), every subcommand with --help, clear errors for bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer

from callcenter.cli import app
from callcenter.redis_conn import stop_embedded
from tests.factories import SAMPLE

ROOT = Path(__file__).parents[2]


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_embedded(tmp_path)


def cli(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env |= {"CALLCENTER_DATA_DIR": str(data_dir), "CALLCENTER_QUIET_START": "", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "callcenter.cli", *args],
        env=env,
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def all_commands() -> list[list[str]]:
    root = typer.main.get_command(app)
    found: list[list[str]] = []
    assert hasattr(root, "commands")

    def walk(cmd: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():  # typer groups (its own click)
            walk(sub, [*path, name])

    walk(root, [])
    return found


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p) or "callcenter")
def test_every_subcommand_has_help(path: list[str]) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_a_newcomer_loads_imports_pushes_and_reads_results(data_dir: Path) -> None:
    assert cli(data_dir, "migrate").returncode == 0
    loaded = cli(data_dir, "inquiry", "load", str(SAMPLE))
    assert loaded.returncode == 0 and "return-of-life-roads" in loaded.stdout
    register = data_dir / "register.csv"
    register.write_text(
        "\ufeffالهاتف,البلدية,اللغة\r\n0912345678,طرابلس,عربي\r\n٠٩٢٣٤٥٦٧٨٩,بنغازي,en\r\nabc,سبها,ar\r\n",
        encoding="utf-8",
    )
    starter = Path(__file__).parents[2] / "callcenter" / "samples" / "municipalities.csv"
    assert cli(data_dir, "municipalities", "load", str(starter)).returncode == 0
    errors = data_dir / "errors.csv"
    imported = cli(data_dir, "import-citizens", str(register), "--errors", str(errors))
    assert imported.returncode == 0, imported.stderr
    assert "2 new" in imported.stdout and "1 rejected" in imported.stdout
    assert "4,invalid phone number" in errors.read_text(encoding="utf-8-sig")
    assert "0912345678" not in imported.stdout + imported.stderr  # masked everywhere

    started = cli(data_dir, "campaign", "start", "return-of-life-roads", "--language", "ar")
    assert started.returncode == 0, started.stderr
    assert "1 citizens planned" in started.stdout
    shown = cli(data_dir, "campaign", "show", "1")
    assert json.loads(shown.stdout) == {"pending": 1}
    assert cli(data_dir, "campaign", "cancel", "1").returncode == 0
    assert json.loads(cli(data_dir, "campaign", "show", "1").stdout) == {"cancelled": 1}

    results = cli(data_dir, "results", "return-of-life-roads", "--json")
    assert results.returncode == 0
    data = json.loads(results.stdout)
    assert data["inquiry"] == "return-of-life-roads" and data["funnel"]["planned"] == 1
    table = cli(data_dir, "results", "return-of-life-roads", "--by", "municipality")
    assert "satisfaction" in table.stdout
    out = data_dir / "answers.csv"
    exported = cli(data_dir, "export", "return-of-life-roads", "-o", str(out))
    assert exported.returncode == 0 and out.read_bytes().startswith(b"\xef\xbb\xbfcitizen")


def test_bad_input_gets_a_clear_message_and_exit_code_2(data_dir: Path) -> None:
    broken = data_dir / "broken.yaml"
    broken.write_text(
        "slug: x\ntitle: {ar: س}\nquestions:\n"
        "  - {key: q, kind: rating, next: {'1': nowhere}, text: {ar: س}}\n"
    )
    result = cli(data_dir, "inquiry", "load", str(broken))
    assert result.returncode == 2 and "nowhere" in result.stderr
    header = data_dir / "bad.csv"
    header.write_text("name,age\nx,1\n")
    assert cli(data_dir, "import-citizens", str(header)).returncode == 2
    assert cli(data_dir, "results", "no-such-inquiry").returncode == 2
    assert cli(data_dir, "inquiry", "status", "no-such", "running").returncode == 2


def test_demo_runs_a_whole_inquiry_and_loses_nothing(data_dir: Path) -> None:
    result = cli(data_dir, "demo", "--citizens", "80", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for field in (
        "citizens",
        "messages_sent",
        "replies",
        "answers",
        "completed",
        "opted_out",
        "lost",
        "duplicated",
    ):
        assert field in summary
    assert summary["citizens"] == 80 and summary["lost"] == 0 and summary["duplicated"] == 0
    assert summary["answers"] == summary["intended_answers"] > 0
    assert summary["completed"] > 0 and summary["opted_out"] > 0
    assert summary["voice_answers"] > 0  # the voice part ran on the simulator
    agents = summary["to_agents"]  # callers keyed 0 and 2; the demo's agents took them
    assert agents["lost"] == 0 and agents["connected"] > 0 and agents["agents"] > 0


def test_up_serves_the_api_on_the_embedded_default(data_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env |= {"CALLCENTER_DATA_DIR": str(data_dir), "CALLCENTER_API_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", "up"],
        env=env,
        cwd=data_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        health = None
        for _ in range(150):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health is not None and health.status_code == 200
        assert (data_dir / "1415.db").exists() and (data_dir / "redis.sock").exists()
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode in (0, -15, 143)
    for _ in range(50):  # the embedded Redis stopped with it (it removes its pid file)
        if not (data_dir / "redis.pid").exists():
            break
        time.sleep(0.1)
    else:
        pytest.fail("the embedded redis-server outlived `callcenter up`")


def test_prompts_renders_the_catalogue_and_every_inquiry_question(data_dir: Path) -> None:
    import shutil
    import wave

    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        if os.environ.get("CI") == "true":
            pytest.fail("espeak-ng and sox are required in CI")
        pytest.skip("espeak-ng / sox not installed (apt install espeak-ng sox)")
    assert cli(data_dir, "inquiry", "load", str(SAMPLE)).returncode == 0
    env_dir = data_dir / "prompts"
    result = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "prompts"],
        env={**os.environ, "CALLCENTER_DATA_DIR": str(data_dir), "CALLCENTER_PROMPTS_DIR": str(env_dir)},
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    question = env_dir / "audio" / "ar" / "q-return-of-life-roads-satisfaction.wav"
    with wave.open(str(question)) as audio:
        assert (audio.getframerate(), audio.getnchannels()) == (8000, 1)
    assert (env_dir / "audio" / "en" / "greeting.wav").exists()
