"""analysis

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-08

The analysts' workspace: population tables for weighting (``population_margin``) and the
per-inquiry switch of the public results page (``inquiry.results_public``, off by default).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "population_margin",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("variables", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("cell", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("population", sa.Float(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("variables", "cell"),
    )
    # a plain ADD COLUMN, never a batch copy of the table: SQLite would drop and recreate
    # ``inquiry``, which its foreign keys (campaigns, questions, answers) refuse
    op.add_column("inquiry", sa.Column("results_public", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("inquiry", schema=None) as batch_op:
        batch_op.drop_column("results_public")
    op.drop_table("population_margin")
