"""request texts

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08

The citizen SMS texts of service requests as admins edit them in the app
(``/admin/requests/texts``): one row per edited text, both languages, who saved it and when. A
row wins over the data directory's ``request_texts.yaml`` and the packaged defaults
(callcenter/requests/text_overrides.py); restoring the default deletes it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "request_text",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("section", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("ar", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("en", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("section", "name"),
    )


def downgrade() -> None:
    op.drop_table("request_text")
