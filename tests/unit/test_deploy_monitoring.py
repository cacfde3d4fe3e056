"""The sample alert rules and the Grafana dashboard under deploy/ are valid and speak of metrics
the engine really exports (a renamed metric would otherwise silence an alert for good)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

from callcenter.health import Readiness
from callcenter.metrics import LiveState
from callcenter.sms.spool import SpoolStats

DEPLOY = Path(__file__).parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "1415-operations.json"
METRIC = re.compile(r"\bcallcenter_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


@dataclass(eq=False)
class _Spool:
    max_bytes: int = 100
    stats: SpoolStats = field(default_factory=SpoolStats)

    def depth(self) -> int:
        return 0


@dataclass(eq=False)
class _Ami:
    connected: bool = True
    reconnects: int = 0


@dataclass(eq=False)
class _Server:
    active_calls: int = 0


@dataclass(eq=False)
class _Book:
    in_progress: int = 0


@dataclass(eq=False)
class _Dialer:
    book: _Book = field(default_factory=_Book)


def exported() -> set[str]:
    """Every sample name the engine can export: the defined metrics, and what the scrape-time
    collector reports once a spool, an AMI session, calls and the outbox are there."""
    live = LiveState()
    held: list[Any] = [_Spool(), _Ami(), _Server(), _Dialer()]
    live.spools.add(held[0])
    live.amis.add(held[1])
    live.agi_servers.add(held[2])
    live.dialers.add(held[3])
    live.outbox, live.outbox_read_at = {(1, "running"): 3}, time.monotonic()
    live.readiness = Readiness({"database": "ok"})
    registry = CollectorRegistry()
    registry.register(live)
    names = set()
    for family in [*REGISTRY.collect(), *registry.collect()]:
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_the_alert_rules_are_yaml_in_prometheus_shape() -> None:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert set(data) == {"groups"}
    for group in data["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_the_alerts_an_operator_needs_are_there() -> None:
    names = {rule["alert"] for rule in rules()}
    assert {"SpoolFilling", "OutboxStuck", "AmiDown", "WebhookP99High", "ReadinessFailing"} <= names


def test_every_metric_an_alert_or_panel_uses_is_exported() -> None:
    known = exported()
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [rule["expr"] for rule in rules()] + [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used - known == set()
    assert len(used) >= 15  # the dashboard covers SMS, spool, outbox, voice and routing


def test_the_dashboard_is_grafana_json_with_distinct_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "callcenter-1415" and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["refId"] and target["expr"], panel["title"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
