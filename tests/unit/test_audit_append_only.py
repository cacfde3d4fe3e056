"""The audit log is append-only in the code too: no module under ``callcenter/`` updates or
deletes an ``auditlog`` row, through the ORM, SQLAlchemy Core or raw SQL. (On PostgreSQL a
trigger refuses it as well: tests/integration/test_admin_audit.py.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "callcenter"
_RAW_SQL = re.compile(
    r"\b(?:UPDATE\s+(?:ONLY\s+)?|DELETE\s+FROM\s+(?:ONLY\s+)?|TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?)"
    r"[\"`]?(?:public\.)?auditlog\b",
    re.IGNORECASE,
)
_TABLE_NAME = re.compile(r"audit", re.IGNORECASE)


def _is_audit_model(node: ast.expr) -> bool:
    """``AuditLog``, ``models.AuditLog``, ``models.table(AuditLog)``, ``AuditLog.__table__``."""
    if isinstance(node, ast.Name):
        return node.id == "AuditLog"
    if isinstance(node, ast.Attribute):
        return node.attr == "AuditLog" or (node.attr == "__table__" and _is_audit_model(node.value))
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name == "table" and _is_audit_model(node.args[0])
    return False


def _names_of_audit_table(tree: ast.Module) -> set[str]:
    """Module-level names bound to the audit table or model (``AUDIT = table(AuditLog)``)."""
    names = {"AuditLog"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_audit_model(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif (
            isinstance(node, ast.AnnAssign)
            and node.value is not None
            and _is_audit_model(node.value)
            and isinstance(node.target, ast.Name)
        ):
            names.add(node.target.id)
    return names


def _refers_to_audit(node: ast.expr, names: set[str]) -> bool:
    if _is_audit_model(node):
        return True
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Attribute):
        return node.attr in names
    return False


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Where ``source`` changes or removes audit rows (empty: append-only)."""
    tree = ast.parse(source, filename)
    names = _names_of_audit_table(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _RAW_SQL.search(node.value):
            found.append(f"{filename}:{node.lineno}: raw SQL changes the audit log")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name not in ("update", "delete"):
            continue
        # update(AuditLog) / delete(AUDIT) / sqlalchemy.delete(models.AuditLog)
        if node.args and _refers_to_audit(node.args[0], names):
            found.append(f"{filename}:{node.lineno}: {name}() of the audit log")
        # AUDIT.update() / AuditLog.__table__.delete()
        if isinstance(func, ast.Attribute) and _refers_to_audit(func.value, names):
            found.append(f"{filename}:{node.lineno}: .{name}() on the audit table")
        # session.delete(audit_row) / session.delete(AuditLog(...))
        if name == "delete" and isinstance(func, ast.Attribute) and node.args:
            arg = node.args[0]
            label = ast.unparse(arg)
            if isinstance(arg, ast.Call) and _is_audit_model(arg.func):
                found.append(f"{filename}:{node.lineno}: session.delete() of an AuditLog")
            elif isinstance(arg, ast.Name | ast.Attribute) and _TABLE_NAME.search(label):
                found.append(f"{filename}:{node.lineno}: delete({label}) looks like an audit row")
    return found


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_updates_or_deletes_audit_rows() -> None:
    files = sources()
    assert PACKAGE / "audit.py" in files and len(files) > 30
    found = [v for path in files for v in violations(path.read_text("utf-8"), str(path.relative_to(PACKAGE)))]
    assert found == []


@pytest.mark.parametrize(
    "snippet",
    [
        "from sqlalchemy import update\nupdate(AuditLog).values(action='x')",
        "import sqlalchemy as sa\nsa.delete(models.AuditLog)",
        "AUDIT = models.table(models.AuditLog)\nAUDIT.update().values(actor='x')",
        "AUDIT_TABLE: Table = table(AuditLog)\nAUDIT_TABLE.delete()",
        "models.AuditLog.__table__.delete()",
        "delete(models.table(models.AuditLog))",
        "await session.delete(audit_row)",
        "session.delete(AuditLog(actor='x', action='y'))",
        "await conn.execute(text('UPDATE auditlog SET actor = 1'))",
        "await conn.execute(text('delete from \"auditlog\" where id = 1'))",
        "SQL = '''\n  TRUNCATE TABLE auditlog\n'''",
    ],
)
def test_the_check_catches_each_way_of_changing_the_log(snippet: str) -> None:
    assert violations(snippet) != []


@pytest.mark.parametrize(
    "snippet",
    [
        "session.add(AuditLog(actor='cli', action='x'))",
        "select(AuditLog).where(AuditLog.id < 5)",
        "AUDIT = models.table(models.AuditLog)\nselect(AUDIT.c.id)",
        "update(models.User).values(name='x')",
        "await session.delete(user)",
        "'INSERT INTO auditlog (actor) VALUES (1)'",
        "'nothing updates or deletes an auditlog row'",
    ],
)
def test_the_check_lets_reading_and_appending_through(snippet: str) -> None:
    assert violations(snippet) == []
