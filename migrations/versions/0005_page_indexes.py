"""page indexes

Revision ID: 0005
Revises: 0006
Create Date: 2026-12-05

Indexes for the staff pages that scanned a table:

* the audit log filtered by action ("login" matches login.failed) or by record ("user:3",
  or "user" for every user): ``LIKE 'prefix%'`` cannot use a plain b-tree index under a
  linguistic collation (en_US.UTF-8, C.UTF-8), so on PostgreSQL the action index becomes a
  ``varchar_pattern_ops`` one (it serves equality as well) and the record gets one of its own;
  a rare action is then found through the index instead of a walk over every row;
* the campaigns list, newest first: ``(created_at, id)`` instead of sorting the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PATTERN = {"action": "varchar_pattern_ops", "target": "varchar_pattern_ops"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_auditlog_action", table_name="auditlog")
        op.create_index("ix_auditlog_action", "auditlog", ["action"], postgresql_ops=_PATTERN)
    op.create_index("ix_auditlog_target", "auditlog", ["target"], postgresql_ops=_PATTERN)
    op.create_index("ix_campaign_created", "campaign", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_created", table_name="campaign")
    op.drop_index("ix_auditlog_target", table_name="auditlog")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_auditlog_action", table_name="auditlog")
        op.create_index("ix_auditlog_action", "auditlog", ["action"])
