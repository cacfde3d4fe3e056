"""The routing event log is append-only in the code: no module under ``callcenter/`` updates or
deletes a ``routing_event`` row (the wallboard and the reports both read it, so a rewritten row
would make them disagree). On PostgreSQL a trigger refuses it too (test_routing_store.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "callcenter"
_RAW_SQL = re.compile(r"\b(?:UPDATE\s+|DELETE\s+FROM\s+|TRUNCATE\s+(?:TABLE\s+)?)[\"`]?routing_event\b", re.I)


def violations(source: str, filename: str = "<source>") -> list[str]:
    tree = ast.parse(source, filename)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _RAW_SQL.search(node.value):
            found.append(f"{filename}:{node.lineno}: raw SQL changes the routing event log")
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            subject = ast.unparse(node.args[0]) if node.args else ast.unparse(func)
            if name in ("update", "delete") and "RoutingEvent" in subject:
                found.append(f"{filename}:{node.lineno}: {name}() of the routing event log")
    return found


def test_no_module_changes_or_removes_routing_events() -> None:
    found = [v for path in sorted(PACKAGE.rglob("*.py")) for v in violations(path.read_text(), str(path))]
    assert found == []


def test_the_scan_finds_each_way_of_changing_the_log() -> None:
    assert violations("update(models.table(models.RoutingEvent))")
    assert violations("delete(RoutingEvent)")
    assert violations("x = 'DELETE FROM routing_event WHERE id = 1'")
    assert not violations("insert(models.table(models.RoutingEvent))")
