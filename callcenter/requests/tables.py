"""The service requests' tables (migration 0008); imported at the end of ``callcenter.models``.

``service_request`` sits beside ``ticket`` rather than replacing it. A ticket is what the voice
line and the desk's wrap-up have always made (a callback asked for, or a service request in
free text with a ``1415-000123`` reference that callers already hold); callbacks still point
at tickets. Migrating those free-text rows into requests would need a category and a body
they do not have, so tickets stay as they are, and a request made by an intake that also
makes a ticket links it (``ticket_id``); the intakes move to requests one by one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Date, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from callcenter.models import _created, _fk, _id, _json, _ts

# models.BigId, restated: mypy cannot type it through the import cycle with callcenter.models
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ResponsibleBody(SQLModel, table=True):
    """Who works a request: a municipality's department (``municipal``; ``municipality_id``
    set when the department is one municipality's) or a national body (``national``)."""

    __tablename__ = "responsible_body"
    id: int | None = _id()
    key: str = Field(max_length=48, unique=True)
    kind: str = Field(max_length=12)  # municipal | national
    municipality_id: int | None = _fk("municipality.id", nullable=True)
    name_ar: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)
    active: bool = True
    created_at: datetime = _created()


class ServiceCategory(SQLModel, table=True):
    """What a citizen can ask for: names, the IVR's keypad code, the questions to ask, the SLA
    targets in working hours, and the body responsible by default."""

    __tablename__ = "service_category"
    id: int | None = _id()
    key: str = Field(max_length=48, unique=True)
    keypad: str = Field(max_length=2, unique=True)
    name_ar: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)
    questions: list[dict[str, Any]] = _json([])  # [{key, ar, en}]
    first_response_hours: float
    resolution_hours: float
    default_body_id: int = _fk("responsible_body.id", index=False)
    active: bool = True
    created_at: datetime = _created()
    updated_at: datetime = _created()


class CategoryBody(SQLModel, table=True):
    """An override: in this municipality, this category goes to another body."""

    __tablename__ = "category_body"
    __table_args__ = (UniqueConstraint("category_id", "municipality_id"),)
    id: int | None = _id()
    category_id: int = _fk("service_category.id", index=False)
    municipality_id: int = _fk("municipality.id", index=False)
    body_id: int = _fk("responsible_body.id", index=False)


class ServiceRequest(SQLModel, table=True):
    """A citizen's request. ``version`` is bumped by every change: a change made against an
    older version is refused (service.StaleRequest), so two officers never overwrite each
    other. SLA due dates and state are stored for the work queue's order and recomputed after
    a calendar change (service.recompute_sla)."""

    __tablename__ = "service_request"
    __table_args__ = (
        # the work queues: a municipality's or a body's open requests by urgency
        Index("ix_service_request_municipality_queue", "municipality_id", "status", "resolution_due_at"),
        Index("ix_service_request_body_queue", "body_id", "status", "resolution_due_at"),
    )
    id: int | None = _id()
    # 1415-BBBB-BBBC (requests.reference), from the id: NULL only inside the creating transaction
    reference: str | None = Field(default=None, max_length=20, unique=True)
    category_id: int = _fk("service_category.id")
    municipality_id: int | None = _fk("municipality.id", nullable=True, index=False)
    body_id: int = _fk("responsible_body.id", index=False)
    phone: str = Field(default="", max_length=20, index=True)  # E.164 of the reporter
    citizen_id: int | None = _fk("citizen.id", nullable=True)
    channel: str = Field(max_length=8)  # desk | ivr | sms | open311
    language: str = Field(default="ar", max_length=2)
    description: str = Field(default="", max_length=2000)
    details: dict[str, str] = _json({})  # the category's questions answered: {neighbourhood: ...}
    recording_path: str | None = Field(default=None, max_length=300)
    # lifecycle.Status: new | sent | acknowledged | in_progress | action_scheduled | reopened
    # | not_responsible (open) | resolved (may reopen) | duplicate | closed (final)
    status: str = Field(default="new", max_length=20, index=True)
    version: int = 1
    duplicate_of: int | None = _fk("service_request.id", nullable=True)
    referrals: int = 0  # refusals by bodies (each an internal referral)
    flagged: bool = False  # bounced too often: the ministry must look
    assigned_to: int | None = _fk("staff_user.id", nullable=True)
    ticket_id: int | None = _fk("ticket.id", nullable=True, index=False)
    first_response_due_at: datetime | None = _ts()
    resolution_due_at: datetime | None = _ts()
    sla_state: str = Field(default="ok", max_length=10)  # sla.SlaState
    paused_seconds: float = 0.0  # working seconds spent waiting on the citizen (finished pauses)
    paused_since: datetime | None = _ts()
    first_response_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts()
    closed_at: datetime | None = _ts()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class RequestEvent(SQLModel, table=True):
    """Append-only: every change of a request with who, when and a note; ``public`` notes
    reach the citizen, internal ones do not. (On PostgreSQL a trigger refuses UPDATE and
    DELETE, as for the audit log.)"""

    __tablename__ = "request_event"
    __table_args__ = (Index("ix_request_event_request", "request_id", "at"),)
    id: int | None = _id()
    request_id: int = _fk("service_request.id", index=False)
    at: datetime = _created()
    # created | status | note | assigned | duplicate | paused | resumed | rerouted
    kind: str = Field(max_length=16)
    actor: str = Field(max_length=100)  # an e-mail, "citizen", "system", "cli"
    actor_id: int | None = Field(default=None, sa_column=Column(BigId, nullable=True))
    role: str = Field(default="", max_length=16)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    note: str = Field(default="", max_length=2000)
    public: bool = False
    data: dict[str, Any] = _json({})


class HolidayCorrection(SQLModel, table=True):
    """The ministry's corrections of the holiday calendar (one per day): ``add`` a day off,
    ``remove`` an estimated one (requests.calendar.HolidayCorrection)."""

    __tablename__ = "holiday_correction"
    id: int | None = _id()
    day: date = Field(sa_column=Column(Date, nullable=False, unique=True))
    action: str = Field(max_length=8)  # add | remove
    name: str = Field(default="", max_length=200)
    created_by: str = Field(default="", max_length=100)
    created_at: datetime = _created()


class RequestText(SQLModel, table=True):
    """A citizen SMS text as an admin edited it in the app (migration 0016): it wins over the
    data directory's ``request_texts.yaml`` and the packaged default (``text_overrides``).
    ``section`` is ``texts`` or ``statuses`` (the status words), ``name`` the text's key;
    removed when the admin restores the default."""

    __tablename__ = "request_text"
    __table_args__ = (UniqueConstraint("section", "name"),)
    id: int | None = _id()
    section: str = Field(max_length=8)
    name: str = Field(max_length=48)
    ar: str = Field(max_length=1000)
    en: str = Field(max_length=1000)
    updated_by: str = Field(default="", max_length=100)
    updated_at: datetime = _created()
