"""Every admin and analyst action leaves a row in the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.models import AuditLog


def audit(session: AsyncSession, *, actor: str, action: str, target: str = "", **details: Any) -> None:
    """Add an audit row to the caller's transaction (so it commits or rolls back with the action)."""
    session.add(AuditLog(actor=actor, action=action, target=target, details=details))
