"""The systemd units in deploy/systemd: each role runs as the dedicated user, reads the
environment file, restarts on failure with a delay, is hardened, and writes only where it must
(serve: its spool); ``systemd-analyze verify`` finds nothing to say about them."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).parents[2] / "deploy" / "systemd"
ROLES = ("serve", "worker", "agi")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  (systemd keys are CamelCase)
    parser.read_string((UNITS / name).read_text())
    return parser


@pytest.mark.parametrize("role", ROLES)
def test_each_role_s_unit_runs_hardened_as_the_dedicated_user_and_restarts_on_failure(role: str) -> None:
    parsed = unit(f"1415-{role}.service")
    service = parsed["Service"]
    assert service["ExecStart"].split()[-1] == role
    assert (service["User"], service["Group"]) == ("callcenter", "callcenter")
    assert service["EnvironmentFile"] == "/etc/1415/1415.env"
    assert service["Restart"] == "on-failure" and service["RestartSec"].rstrip("s") != "0"
    assert int(parsed["Unit"]["StartLimitBurst"]) > 1
    hardening = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }
    assert {key: service.get(key) for key in hardening} == hardening
    assert int(service["LimitNOFILE"]) >= 65536
    assert parsed["Unit"]["PartOf"] == "1415.target" and parsed["Install"]["WantedBy"] == "1415.target"


def test_serve_may_write_its_spool_and_the_spool_is_created_for_its_user() -> None:
    service = unit("1415-serve.service")["Service"]
    spool = service["Environment"].removeprefix("CALLCENTER_SMS_SPOOL_DIR=")
    assert spool in service["ReadWritePaths"].split()
    created = [line.split() for line in (UNITS / "1415.tmpfiles.conf").read_text().splitlines()]
    assert ["d", spool, "0750", "callcenter", "callcenter", "-"] in created
    users = (UNITS / "1415.sysusers.conf").read_text()
    assert any(line.startswith("u callcenter ") for line in users.splitlines())


def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the keys are checked above)")
    # verify needs an ExecStart that exists: the units point at /opt/1415, this machine has
    # the same command elsewhere
    executable = shutil.which("true") or "/bin/true"
    names = [*(f"1415-{role}.service" for role in ROLES), "1415.target"]
    for name in names:
        text = (UNITS / name).read_text().replace("/opt/1415/.venv/bin/callcenter", executable)
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / name) for name in names)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
