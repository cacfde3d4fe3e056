"""inquiry retention

Revision ID: 0015
Revises: 0009
Create Date: 2026-12-07

Retention (callcenter/retention.py): ``inquiry.retention_days`` overrides
``CALLCENTER_ANSWER_RETENTION_DAYS`` for one inquiry — so many days after the inquiry closes,
its answers, sessions, deliveries, messages and calls keep only the keyed pseudonym (0: never;
NULL: the setting). When it closed is ``updated_at``: nothing changes a closed inquiry.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plain ADD COLUMN, never a batch copy: the inquiry table has foreign-key children
    op.add_column("inquiry", sa.Column("retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("inquiry", "retention_days")
