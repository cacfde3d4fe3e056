"""open311

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Open311 GeoReport v2 (callcenter/open311): the keys issued to client applications
(``open311_client``, hashed), what a client sent beside a request (``open311_request``:
location, media, which client), and two indexes for ``GET requests`` (a jurisdiction's
requests newest first, and everyone's).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "open311_client",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("jurisdictions", sa.JSON(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "open311_request",
        sa.Column("request_id", ID, nullable=False),
        sa.Column("client_id", ID, nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("long", sa.Float(), nullable=True),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=250), nullable=False),
        sa.Column("address_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("media_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["open311_client.id"]),
        sa.ForeignKeyConstraint(["request_id"], ["service_request.id"]),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_open311_request_client_id", "open311_request", ["client_id"])
    op.create_index(
        "ix_service_request_municipality_created", "service_request", ["municipality_id", "created_at"]
    )
    op.create_index("ix_service_request_created", "service_request", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_service_request_created", table_name="service_request")
    op.drop_index("ix_service_request_municipality_created", table_name="service_request")
    op.drop_index("ix_open311_request_client_id", table_name="open311_request")
    op.drop_table("open311_request")
    op.drop_table("open311_client")
