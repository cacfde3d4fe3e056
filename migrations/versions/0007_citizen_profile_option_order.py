"""citizen profile and option order

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-06

Weighting beyond municipality and order effects:

* ``citizen.sex`` (``m`` | ``f``) and ``citizen.age_band`` (``18-29`` … ``60+``), optional,
  filled by the importer when the register carries them, so raking can use them as margins;
* ``inquiry.randomise_options``: each citizen sees a question's options in an order drawn
  from a keyed hash, so a first-position advantage can be measured (off by default);
* ``answer.option_order``: the order that citizen was shown (``"2,1,3"``), kept with the
  answer because the order effects are computed from it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMNs, never a batch copy: SQLite would drop and recreate the tables, which
    # their foreign-key children (deliveries, sessions, answers) refuse
    op.add_column("citizen", sa.Column("sex", sqlmodel.sql.sqltypes.AutoString(length=1), nullable=True))
    op.add_column("citizen", sa.Column("age_band", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
    op.add_column(
        "inquiry", sa.Column("randomise_options", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(
        "answer", sa.Column("option_order", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
    )


def downgrade() -> None:
    # SQLite (3.35+) drops a column in place, without recreating the table
    op.drop_column("answer", "option_order")
    op.drop_column("inquiry", "randomise_options")
    op.drop_column("citizen", "age_band")
    op.drop_column("citizen", "sex")
