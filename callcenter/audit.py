"""Every state-changing staff action leaves a row in the audit log: who, what, which record,
before and after, when and from which address.

The log is append-only: nothing in the application updates or deletes an ``auditlog`` row
(``tests/unit/test_audit_append_only.py`` reads the code for it, and on PostgreSQL a trigger
refuses it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.models import AuditLog


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a staff member (``id`` set), an API token, the CLI or the engine itself."""

    name: str  # an e-mail address, "api:cc_ab12", "cli", "switch", …
    id: int | None = None
    address: str = ""

    def __str__(self) -> str:
        return self.name


def audit(
    session: AsyncSession,
    *,
    actor: str | Actor,
    action: str,
    target: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    **details: Any,
) -> None:
    """Add an audit row to the caller's transaction (so it commits or rolls back with the action)."""
    who = actor if isinstance(actor, Actor) else Actor(actor)
    session.add(
        AuditLog(
            actor=who.name[:100],
            actor_id=who.id,
            address=who.address[:64],
            action=action,
            target=target[:200],
            before=before,
            after=after,
            details=details,
        )
    )
