"""The Open311 tables (migration 0009); imported at the end of ``callcenter.models``.

``open311_client`` holds the keys issued to Open311 clients (a FixMyStreet instance, the
ministry's portal): like the staff's API tokens (accounts/tokens.py), a key is shown once and
only its SHA-256 is kept, with a prefix to recognise it, an optional list of the
municipalities (jurisdictions) it may reach, and revocation. ``open311_request`` keeps what a
client sent beside a request that ``service_request`` has no column for (where, a photo's
address, which client), one row per request made through Open311.

The indexes on ``service_request`` below serve ``GET requests``: a jurisdiction's requests,
newest first, and everyone's.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Float, ForeignKey, Index
from sqlmodel import Field, SQLModel

from callcenter.models import _created, _fk, _id, _json, _ts, table
from callcenter.requests.tables import BigId, ServiceRequest  # (mypy: see requests.tables)


class Open311Client(SQLModel, table=True):
    """A client application's key: ``o311_`` and 43 random characters, stored as a SHA-256."""

    __tablename__ = "open311_client"
    id: int | None = _id()
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16)  # the first characters, to recognise the key in lists and logs
    key_hash: str = Field(max_length=64, unique=True)
    jurisdictions: list[str] = _json([])  # municipality codes it may reach; empty: every one
    created_by: str = Field(default="", max_length=100)
    created_at: datetime = _created()
    last_used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()


class Open311Request(SQLModel, table=True):
    """What a client sent with a request: the location and media it named, and who it was."""

    __tablename__ = "open311_request"
    request_id: int = Field(sa_column=Column(BigId, ForeignKey("service_request.id"), primary_key=True))
    client_id: int = _fk("open311_client.id")
    lat: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    long: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    address: str = Field(default="", max_length=250)
    address_id: str = Field(default="", max_length=100)
    media_url: str = Field(default="", max_length=500)


_REQUEST = table(ServiceRequest)
# GET requests: a jurisdiction's newest first, and everyone's newest first
Index("ix_service_request_municipality_created", _REQUEST.c.municipality_id, _REQUEST.c.created_at)
Index("ix_service_request_created", _REQUEST.c.created_at)
