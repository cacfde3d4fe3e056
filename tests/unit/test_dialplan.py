"""The dialplan and the engine agree on names: contexts, AGI scripts, globals, AMI user.

The engine names contexts in Originate and AGI scripts in its FastAGI registry
(callcenter/telephony/names.py); a typo on either side is a call that goes nowhere, found here
instead of on the phone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callcenter.settings import Settings
from callcenter.telephony import names
from callcenter.testing.asterisk import DIALPLANS_DIR, parse_conf

EXTENSIONS = DIALPLANS_DIR / "extensions.conf"
AGI_CALL = re.compile(r"\bAGI\(\s*agi://([^/,)]+)/([^,)?\s]+)")
LOCAL_CHANNEL = re.compile(r"Local/[^@\s]+@([A-Za-z0-9_-]+)")


@dataclass
class Dialplan:
    """Contexts → extensions → applications (``Answer()``, priorities and labels dropped),
    from extensions.conf and its includes."""

    contexts: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [line for exts in self.contexts.values() for ls in exts.values() for line in ls]

    def agi_calls(self) -> list[tuple[str, str]]:
        """(host:port, script) of every ``AGI(agi://...)``."""
        return [(m[1], m[2]) for line in self.lines() for m in AGI_CALL.finditer(line)]


def parse_dialplan(path: Path) -> Dialplan:
    plan = Dialplan()
    for section in parse_conf(path):
        if section.name == "general":
            continue
        if section.name == "globals":
            plan.globals.update(section.items)
            continue
        context = plan.contexts.setdefault(section.name, {})
        current: str | None = None
        for key, value in section.items:
            if key == "exten":
                current, _, rest = value.partition(",")
                context.setdefault(current, []).append(rest.partition(",")[2])
            elif key == "same":
                assert current is not None, f"[{section.name}]: 'same' before any 'exten'"
                context[current].append(value.partition(",")[2])
    return plan


@pytest.fixture(scope="module")
def dialplan() -> Dialplan:
    return parse_dialplan(EXTENSIONS)


def test_every_context_the_engine_names_exists(dialplan: Dialplan) -> None:
    missing = names.CONTEXTS - dialplan.contexts.keys()
    assert not missing, f"contexts used by the engine but not in extensions.conf: {missing}"


def test_agi_scripts_match_both_ways(dialplan: Dialplan) -> None:
    used = {script for _, script in dialplan.agi_calls()}
    assert used <= names.AGI_SCRIPTS, f"unknown AGI scripts: {used - names.AGI_SCRIPTS}"
    assert used >= names.AGI_SCRIPTS, f"AGI scripts no call reaches: {names.AGI_SCRIPTS - used}"


def test_agi_goes_to_the_globals_host_and_port(dialplan: Dialplan) -> None:
    assert dialplan.agi_calls()
    for address, script in dialplan.agi_calls():
        assert address == "${AGI_HOST}:${AGI_PORT}", f"AGI {script!r} hard-codes {address}"


def test_globals_default_to_the_engine_defaults(dialplan: Dialplan) -> None:
    defaults = Settings.model_fields
    assert dialplan.globals["AGI_HOST"] == defaults["agi_host"].default
    assert dialplan.globals["AGI_PORT"] == str(defaults["agi_port"].default)
    assert dialplan.globals["AMD_ENABLED"] in {"0", "1"}


def test_entry_points(dialplan: Dialplan) -> None:
    inbound = dialplan.contexts[names.CTX_INBOUND]
    assert "1415" in inbound
    assert any(line.startswith("Answer(") for line in inbound["1415"][:3])
    assert "s" in dialplan.contexts[names.CTX_OUTBOUND]
    assert any(ext.startswith("_") for ext in dialplan.contexts[names.CTX_AGENTS])


def test_the_agent_answered_gosub_tells_the_engine_and_returns(dialplan: Dialplan) -> None:
    """Dial's U() runs it on the agent's channel: the call is bridged only after Return()."""
    steps = dialplan.contexts[names.CTX_AGENT_ANSWERED]["s"]
    assert any(f"/{names.AGI_AGENT_ANSWERED},${{ARG1}},${{ARG2}})" in line for line in steps), steps
    assert steps[-1].startswith("Return(")


def test_outbound_campaign_runs_amd_only_when_enabled(dialplan: Dialplan) -> None:
    steps = dialplan.contexts[names.CTX_OUTBOUND]["s"]
    amd = next(i for i, line in enumerate(steps) if line.startswith("AMD("))
    gate = next(i for i, line in enumerate(steps) if "AMD_ENABLED" in line)
    agi = next(i for i, line in enumerate(steps) if "AGI(" in line)
    assert gate < amd < agi
    assert any("MACHINE" in line for line in steps[amd:agi])


def test_local_channels_point_at_existing_contexts(dialplan: Dialplan) -> None:
    """Comments document Originate channels (Local/<n>@campaign-dial): they must exist."""
    text = EXTENSIONS.read_text(encoding="utf-8")
    referenced = set(LOCAL_CHANNEL.findall(text))
    assert referenced, "the dialplan documents no Local channel"
    assert referenced <= dialplan.contexts.keys(), referenced - dialplan.contexts.keys()


def test_pjsip_endpoints_land_in_existing_contexts(dialplan: Dialplan) -> None:
    endpoints = [s for s in parse_conf(DIALPLANS_DIR / "pjsip.conf") if s.get("context")]
    assert {s.name for s in endpoints} >= {"trunk", "citizen", "agent-phone"}
    for section in endpoints:
        assert section.get("context") in dialplan.contexts, section.name
        assert section.get("dtmf_mode") == "rfc4733", section.name


def test_manager_user_matches_the_engine_settings() -> None:
    sections = {s.name: s for s in parse_conf(DIALPLANS_DIR / "manager.conf")}
    defaults = Settings.model_fields
    general = sections["general"]
    assert general.get("bindaddr") == "127.0.0.1"
    assert general.get("port") == str(defaults["ami_port"].default)
    user = sections[defaults["ami_username"].default]
    assert user.get("secret") == defaults["ami_secret"].default
    read = set((user.get("read") or "").split(","))
    write = set((user.get("write") or "").split(","))
    assert {"call", "agent", "dtmf", "reporting", "system", "user"} <= read
    assert {"call", "originate", "agent", "reporting", "system"} <= write


def test_modules_conf_loads_only_listed_modules() -> None:
    modules = next(s for s in parse_conf(DIALPLANS_DIR / "modules.conf") if s.name == "modules")
    assert modules.get("autoload") == "no"
    loaded = set(modules.get_all("load"))
    for needed in (
        "chan_pjsip.so",
        "res_agi.so",
        "app_dial.so",
        "app_stack.so",
        "app_amd.so",
        "pbx_config.so",
    ):
        assert needed in loaded


def test_robots_come_in_through_an_include(tmp_path: Path) -> None:
    """Tests #include dialplans/test/robots.conf; production never sees [robot-citizens]."""
    assert "robot-citizens" not in parse_dialplan(EXTENSIONS).contexts
    (tmp_path / "extensions.conf").write_text(
        EXTENSIONS.read_text(encoding="utf-8")
        + f'\n#include "{DIALPLANS_DIR / "test" / "robots.conf"}"\n#tryinclude "absent.conf"\n'
    )
    plan = parse_dialplan(tmp_path / "extensions.conf")
    robot = plan.contexts["robot-citizens"]
    [steps] = robot.values()
    assert any("SendDTMF(${ROBOT_KEYS}" in line for line in steps)
    assert plan.contexts.keys() >= names.CONTEXTS
