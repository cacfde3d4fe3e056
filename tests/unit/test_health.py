"""Readiness checks run together under a timeout and name what failed; the probes' access rule
(networks, a bearer token) as the settings say."""

from __future__ import annotations

import asyncio
import re

import pytest

from callcenter.health import ReadinessProbe, ami_check, check_all, ops_allowed
from callcenter.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def ok() -> None:
    return None


async def refused() -> None:
    raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 1)")


async def hangs() -> None:
    await asyncio.sleep(60)


async def test_readiness_names_each_failed_check_and_only_the_kind_of_error() -> None:
    ready = await check_all({"database": ok, "redis": refused, "ami": hangs}, timeout_s=0.05)
    assert not ready.ready
    assert ready.failed == ("redis", "ami")
    assert ready.to_json() == {
        "status": "unready",
        "failed": ["redis", "ami"],
        "checks": {"database": "ok", "redis": "ConnectionRefusedError", "ami": "timeout after 0.05s"},
    }


async def test_all_checks_passing_is_ready() -> None:
    ready = await check_all({"database": ok, "redis": ok})
    assert ready.ready and ready.to_json()["status"] == "ready"


async def test_the_checks_run_at_once_so_a_probe_waits_for_the_slowest_only() -> None:
    started = asyncio.get_running_loop().time()
    await check_all({"a": hangs, "b": hangs, "c": hangs}, timeout_s=0.2)
    assert asyncio.get_running_loop().time() - started < 0.5


async def test_a_probe_reuses_its_last_answer_for_a_second() -> None:
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1

    probe = ReadinessProbe({"database": counted})
    await probe()
    await probe()
    assert calls == 1


async def test_the_ami_check_fails_while_the_session_is_down() -> None:
    up = False
    ready = await check_all({"ami": ami_check(lambda: up)})
    assert ready.failed == ("ami",) and ready.checks["ami"] == "AmiDisconnected"
    up = True
    assert (await check_all({"ami": ami_check(lambda: up)})).ready


def test_probes_are_open_to_everyone_by_default() -> None:
    assert ops_allowed(settings(), client="198.51.100.4", authorization=None)


def test_allowed_networks_narrow_the_probes() -> None:
    narrow = settings(ops_allow_networks=["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"])
    assert ops_allowed(narrow, client="10.1.2.3", authorization=None)
    assert ops_allowed(narrow, client="fd00::1", authorization=None)
    assert not ops_allowed(narrow, client="198.51.100.4", authorization=None)
    assert not ops_allowed(narrow, client=None, authorization=None)
    assert not ops_allowed(narrow, client="not-an-address", authorization=None)


def test_a_token_must_be_presented_when_one_is_set() -> None:
    guarded = settings(ops_token="scrape-secret")
    assert ops_allowed(guarded, client="198.51.100.4", authorization="Bearer scrape-secret")
    assert not ops_allowed(guarded, client="198.51.100.4", authorization="Bearer wrong")
    assert not ops_allowed(guarded, client="198.51.100.4", authorization=None)


def test_with_both_set_both_must_hold() -> None:
    both = settings(ops_token="scrape-secret", ops_allow_networks=["10.0.0.0/8"])
    assert ops_allowed(both, client="10.0.0.5", authorization="Bearer scrape-secret")
    assert not ops_allowed(both, client="10.0.0.5", authorization=None)
    assert not ops_allowed(both, client="192.0.2.1", authorization="Bearer scrape-secret")


def test_a_malformed_network_is_refused_at_start_with_its_name() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0/33' is not a network")):
        settings(ops_allow_networks=["10.0.0/33"])


def test_an_empty_token_or_port_means_none() -> None:
    assert settings(ops_token="", metrics_port="").ops_token is None
    with pytest.raises(ValueError):
        settings(metrics_port=70000)
