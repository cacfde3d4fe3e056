"""Small dialect bridges so the same Core statements run on PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite


def insert(dialect: str, table: Any) -> Any:
    """An INSERT that knows ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    target: Table = table.__table__ if hasattr(table, "__table__") else table
    if dialect == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)
