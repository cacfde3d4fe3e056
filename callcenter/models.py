"""Database tables (SQLModel). The database is the source of truth; Redis only carries work.

Status columns say in a comment which values are final and which are retried.
Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT ids.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _id() -> Any:
    return Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index),
    )


def _created() -> Any:
    return Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, default=utcnow),
    )


def _json(default: Any) -> Any:
    def fresh() -> Any:
        return type(default)(default)

    return Field(default_factory=fresh, sa_column=Column(JSON, nullable=False, default=fresh))


def _fk(target: str, *, nullable: bool = False, index: bool = True) -> Any:
    return Field(
        default=None,
        sa_column=Column(BigId, ForeignKey(target), nullable=nullable, index=index),
    )


class Municipality(SQLModel, table=True):
    """The register admins own: one row per municipality, its district (shabiya) beside it."""

    id: int | None = _id()
    code: str = Field(max_length=64, unique=True, index=True)
    name_ar: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)
    district_code: str = Field(default="", max_length=64, index=True)
    district_ar: str = Field(default="", max_length=200)
    district_en: str = Field(default="", max_length=200)


class MunicipalityAlias(SQLModel, table=True):
    """Another spelling of a municipality's name; ``key`` is its folded form (citizens/fields.fold)."""

    __tablename__ = "municipality_alias"
    id: int | None = _id()
    municipality_id: int = _fk("municipality.id")
    alias: str = Field(max_length=200)
    key: str = Field(max_length=200, unique=True)


class Citizen(SQLModel, table=True):
    id: int | None = _id()
    phone: str = Field(max_length=20, unique=True, index=True)  # E.164
    municipality_id: int | None = _fk("municipality.id", nullable=True)
    language: str = Field(default="ar", max_length=2)
    opted_out_at: datetime | None = _ts()
    created_at: datetime = _created()
    # optional profile for weighting (citizens/profile.py): m | f, and 18-29 | 30-44 | 45-59 | 60+
    sex: str | None = Field(default=None, max_length=1)
    age_band: str | None = Field(default=None, max_length=8)


class Inquiry(SQLModel, table=True):
    id: int | None = _id()
    slug: str = Field(max_length=100, unique=True, index=True)
    title_ar: str = Field(max_length=300)
    title_en: str = Field(default="", max_length=300)
    intro_ar: str = Field(default="", max_length=1000)
    intro_en: str = Field(default="", max_length=1000)
    thanks_ar: str = Field(default="", max_length=1000)
    thanks_en: str = Field(default="", max_length=1000)
    # draft -> scheduled -> running <-> paused -> closed (see inquiry.definition.STATUS_MOVES)
    status: str = Field(default="draft", max_length=16, index=True)
    scheduled_at: datetime | None = _ts()
    # mode switch: citizens who have not answered on one channel within N hours get the other
    switch_after_hours: float | None = None
    switch_to: str | None = Field(default=None, max_length=8)  # voice | sms
    max_contacts: int = 3  # per citizen and inquiry: SMS, calls and callbacks together
    results_public: bool = False  # the public results page (aggregated, suppressed, no login)
    randomise_options: bool = False  # each citizen sees options in a keyed order (order effects)
    # days after closing until answers keep only the pseudonym (retention.py); 0 never; None: setting
    retention_days: int | None = None
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Question(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("inquiry_id", "key"),)
    id: int | None = _id()
    inquiry_id: int = _fk("inquiry.id")
    position: int
    key: str = Field(max_length=64)
    kind: str = Field(max_length=16)  # choice | rating | yes_no | number | text
    text_ar: str = Field(max_length=1000)
    text_en: str = Field(default="", max_length=1000)
    options: list[dict[str, Any]] = _json([])
    min_value: int | None = None
    max_value: int | None = None
    retries: int = 2
    next: dict[str, str] = _json({})


class Campaign(SQLModel, table=True):
    __table_args__ = (Index("ix_campaign_created", "created_at", "id"),)  # the list, newest first
    id: int | None = _id()
    inquiry_id: int = _fk("inquiry.id")
    channel: str = Field(default="sms", max_length=8)  # sms | voice
    gateway: str = Field(default="loopback", max_length=16)
    audience: dict[str, Any] = _json({})  # {"municipalities": [...], "languages": [...]}
    # draft -> planning -> running <-> paused -> done | cancelled (final)
    status: str = Field(default="draft", max_length=16, index=True)
    rate_per_s: float | None = None  # None: the gateway's setting
    max_attempts: int = 4
    quiet_start: str | None = Field(default=None, max_length=5)  # "21:00"; None: settings
    quiet_end: str | None = Field(default=None, max_length=5)
    planned: int = 0
    created_at: datetime = _created()
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()


class Delivery(SQLModel, table=True):
    """One citizen in one campaign: the outbox row."""

    __table_args__ = (
        UniqueConstraint("campaign_id", "citizen_id"),
        Index("ix_delivery_campaign_status", "campaign_id", "status"),
    )
    id: int | None = _id()
    campaign_id: int = _fk("campaign.id", index=False)
    citizen_id: int = _fk("citizen.id")
    # pending (waits for a worker; retried) | sending (claimed; reconciled if stuck)
    # | sent | delivered (final, good) | failed (final) | skipped (opted out; final)
    # | cancelled (final)
    status: str = Field(default="pending", max_length=12)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    claimed_at: datetime | None = _ts()
    gateway_id: str | None = Field(default=None, max_length=100, index=True)
    # voice: answered | no_answer | busy | congestion | failed | machine (the last try's outcome)
    outcome: str | None = Field(default=None, max_length=16)
    segments: int | None = None
    encoding: str | None = Field(default=None, max_length=8)
    error: str | None = Field(default=None, max_length=300)
    sent_at: datetime | None = _ts()
    delivered_at: datetime | None = _ts()


class InquirySession(SQLModel, table=True):
    """A citizen's progress through an inquiry, shared by every channel."""

    __tablename__ = "inquiry_session"
    __table_args__ = (UniqueConstraint("inquiry_id", "citizen_id"),)
    id: int | None = _id()
    inquiry_id: int = _fk("inquiry.id", index=False)
    citizen_id: int = _fk("citizen.id")
    channel: str = Field(default="sms", max_length=8)  # channel of the last input
    language: str = Field(default="ar", max_length=2)
    question_key: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    answered: dict[str, str] = _json({})  # question key -> value, answered on any channel
    version: int = 0  # bumped by every step: concurrent inputs retry instead of overwriting
    # active | completed | opted_out (completed is final; opted_out until START)
    status: str = Field(default="active", max_length=12)
    started_at: datetime = _created()
    updated_at: datetime = _created()
    completed_at: datetime | None = _ts()


class Answer(SQLModel, table=True):
    """One answer per (inquiry, question, citizen), whatever the channel."""

    __table_args__ = (UniqueConstraint("inquiry_id", "question_id", "citizen_id"),)
    id: int | None = _id()
    inquiry_id: int = _fk("inquiry.id", index=False)
    question_id: int = _fk("question.id")
    citizen_id: int = _fk("citizen.id")
    session_id: int | None = _fk("inquiry_session.id", nullable=True, index=False)
    channel: str = Field(max_length=8)  # sms | voice
    raw: str = Field(default="", max_length=2000)
    value: str = Field(max_length=1000)
    number: float | None = None
    message_id: int | None = Field(default=None, unique=True)  # the inbound Message
    created_at: datetime = _created()
    option_order: str | None = Field(default=None, max_length=200)  # as shown: "2,1,3"; None: as defined


class Call(SQLModel, table=True):
    """A call record (CDR): one per call, inbound or outbound, for results and the dashboard."""

    id: int | None = _id()
    direction: str = Field(max_length=3)  # in | out
    uniqueid: str | None = Field(default=None, max_length=64, unique=True)  # Asterisk's
    channel: str = Field(default="", max_length=128)
    caller: str = Field(default="", max_length=32)  # E.164 when it is a number
    citizen_id: int | None = _fk("citizen.id", nullable=True)
    campaign_id: int | None = _fk("campaign.id", nullable=True, index=False)
    delivery_id: int | None = _fk("delivery.id", nullable=True, index=False)
    session_id: int | None = _fk("inquiry_session.id", nullable=True, index=False)
    language: str = Field(default="ar", max_length=2)
    # answered | completed | abandoned (hung up mid-way) | no_answer | busy | congestion
    # | failed | machine | callback (asked to be called back) | connected (talked to an agent)
    outcome: str | None = Field(default=None, max_length=16, index=True)
    hangup_cause: str | None = Field(default=None, max_length=64)
    started_at: datetime = _created()
    answered_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()


class Ticket(SQLModel, table=True):
    """A service request or a callback asked for on the voice line; its human reference is
    ``1415-`` and the zero-padded id (``1415-000123``), read out and keyed by callers."""

    id: int | None = _id()
    kind: str = Field(max_length=16)  # service | callback
    citizen_id: int | None = _fk("citizen.id", nullable=True)
    phone: str = Field(default="", max_length=32)  # E.164 when known: to call back
    municipality_id: int | None = _fk("municipality.id", nullable=True, index=False)
    call_id: int | None = _fk("call.id", nullable=True, index=False)
    # open -> with_municipality -> in_progress -> resolved -> closed
    status: str = Field(default="open", max_length=20, index=True)
    callback: bool = False  # the caller asked to be called back
    notes: str = Field(default="", max_length=2000)
    created_at: datetime = _created()
    updated_at: datetime = _created()

    @property
    def reference(self) -> str:
        return f"1415-{self.id or 0:06d}"


class Message(SQLModel, table=True):
    """The SMS log: every inbound message first, and conversational replies."""

    __table_args__ = (UniqueConstraint("gateway", "gateway_id"),)
    id: int | None = _id()
    direction: str = Field(max_length=3)  # in | out
    gateway: str = Field(max_length=16)
    gateway_id: str | None = Field(default=None, max_length=100)
    phone: str = Field(max_length=20, index=True)  # E.164 (or the raw sender if not a number)
    citizen_id: int | None = _fk("citizen.id", nullable=True, index=False)
    session_id: int | None = _fk("inquiry_session.id", nullable=True, index=False)
    body: str = Field(max_length=2000)
    reply: str | None = Field(default=None, max_length=2000)  # our inline answer to an inbound
    encoding: str | None = Field(default=None, max_length=8)
    segments: int | None = None
    # in: received -> processed (final) | failed (retried by the reconciler)
    # out: queued -> sent -> delivered (final) | failed (final)
    status: str = Field(default="received", max_length=12)
    error: str | None = Field(default=None, max_length=300)
    created_at: datetime = _created()
    processed_at: datetime | None = _ts()


class OptOut(SQLModel, table=True):
    """The history of opt-outs and re-joins (Citizen.opted_out_at is the fast check)."""

    id: int | None = _id()
    citizen_id: int = _fk("citizen.id")
    action: str = Field(max_length=8)  # out | in
    channel: str = Field(max_length=8)
    message_id: int | None = None
    created_at: datetime = _created()


class AuditLog(SQLModel, table=True):
    """Append-only: the application has no code path that updates or deletes a row (and on
    PostgreSQL a trigger refuses it)."""

    __table_args__ = (
        Index("ix_auditlog_created", "created_at"),
        # prefix filters (LIKE 'login%'): pattern indexes on PostgreSQL (migration 0005)
        Index("ix_auditlog_action", "action", postgresql_ops={"action": "varchar_pattern_ops"}),
        Index("ix_auditlog_target", "target", postgresql_ops={"target": "varchar_pattern_ops"}),
    )
    id: int | None = _id()
    actor: str = Field(max_length=100)  # the user's e-mail, "api:<token prefix>", "cli", "system"
    actor_id: int | None = Field(default=None, sa_column=Column(BigId, nullable=True, index=True))
    action: str = Field(max_length=64)
    target: str = Field(default="", max_length=200)  # "campaign:12", "user:3"
    details: dict[str, Any] = _json({})
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    address: str = Field(default="", max_length=64)  # the client's IP address
    created_at: datetime = _created()


class User(SQLModel, table=True):
    """A staff account. ``role`` is one of accounts.roles.Role; the municipalities it is scoped
    to are in ``user_municipality`` (none: every municipality)."""

    __tablename__ = "staff_user"
    id: int | None = _id()
    email: str = Field(max_length=254, unique=True, index=True)  # stored lower-case
    name: str = Field(default="", max_length=200)
    role: str = Field(max_length=16)
    password_hash: str | None = Field(default=None, max_length=200)  # None until the invite is used
    #: SHA-256 of a one-time link that sets the password (an invitation or a reset by an admin)
    invite_hash: str | None = Field(default=None, max_length=64, unique=True)
    invite_expires_at: datetime | None = _ts()
    language: str = Field(default="ar", max_length=2)
    totp_secret: str | None = Field(default=None, max_length=64)  # set once enrolment is confirmed
    totp_last_step: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    disabled_at: datetime | None = _ts()
    password_changed_at: datetime | None = _ts()
    last_login_at: datetime | None = _ts()
    created_at: datetime = _created()


class UserMunicipality(SQLModel, table=True):
    __tablename__ = "user_municipality"
    user_id: int = Field(sa_column=Column(BigId, ForeignKey("staff_user.id"), primary_key=True))
    municipality_id: int = Field(
        sa_column=Column(BigId, ForeignKey("municipality.id"), primary_key=True, index=True)
    )


class UserSession(SQLModel, table=True):
    """A server-side login session. ``id`` is the SHA-256 of the cookie's token, so a leaked
    table gives no usable cookie. ``stage``: full | mfa (password given, TOTP code awaited)
    | enrol (the role needs TOTP and it is not set up yet)."""

    __tablename__ = "user_session"
    id: str = Field(primary_key=True, max_length=64)
    user_id: int = _fk("staff_user.id")
    stage: str = Field(default="full", max_length=8)
    csrf_token: str = Field(max_length=64)
    address: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)
    created_at: datetime = _created()
    last_seen_at: datetime = _created()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = _ts()


class ApiToken(SQLModel, table=True):
    """A personal API token: shown once, stored as its SHA-256, with scopes and an expiry."""

    __tablename__ = "api_token"
    id: int | None = _id()
    user_id: int = _fk("staff_user.id")
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16)  # the first characters, to recognise it in lists and logs
    token_hash: str = Field(max_length=64, unique=True)
    scopes: list[str] = _json([])
    expires_at: datetime | None = _ts()
    last_used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()
    created_at: datetime = _created()


class ServiceQueue(SQLModel, table=True):
    """A queue of the ACD: callers waiting for one service (optionally one municipality and
    language). ``config`` holds the routing knobs (steps, max_wait, max_size, callback_after,
    on_max_wait, on_full, selection) and the wallboard's (sl_threshold_s, sl_target,
    short_abandon_s); ``routing.config`` reads and checks it."""

    __tablename__ = "service_queue"
    id: int | None = _id()
    key: str = Field(max_length=32, unique=True)  # the routing core's queue id ("services")
    service: str = Field(max_length=32)
    municipality: str | None = Field(default=None, max_length=32)  # a municipality code
    language: str | None = Field(default=None, max_length=2)
    name_ar: str = Field(default="", max_length=100)
    name_en: str = Field(default="", max_length=100)
    config: dict[str, Any] = _json({})
    active: bool = True
    created_at: datetime = _created()


class AgentProfile(SQLModel, table=True):
    """A staff member who takes calls: the phone (a PJSIP endpoint) that rings and the skills
    the router matches (a list of ``[kind, value, level]``)."""

    __tablename__ = "agent"
    id: int | None = _id()
    user_id: int = Field(sa_column=Column(BigId, ForeignKey("staff_user.id"), nullable=False, unique=True))
    endpoint: str = Field(max_length=64)  # "PJSIP/agent101"
    skills: list[list[Any]] = _json([])
    active: bool = True
    created_at: datetime = _created()


class RoutingEvent(SQLModel, table=True):
    """Append-only: every queue, agent and call event of the ACD, once. The wallboard and the
    interval reports are both computed from this table, so they agree. (On PostgreSQL a
    trigger refuses UPDATE and DELETE, as for the audit log.)"""

    __tablename__ = "routing_event"
    __table_args__ = (
        Index("ix_routing_event_at", "at"),
        Index("ix_routing_event_agent_at", "agent", "at"),
        Index("ix_routing_event_queue_at", "queue", "at"),
        Index("ix_routing_event_entry", "entry"),
    )
    id: int | None = _id()
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    kind: str = Field(max_length=32)  # routing.events.Kind
    agent: str | None = Field(default=None, max_length=32)  # the agent's user id, as text
    entry: str | None = Field(default=None, max_length=64)  # the waiting entry (a call or a callback)
    queue: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = _json({})


class Callback(SQLModel, table=True):
    """A caller's place kept as a callback: one per number and queue while it is pending (a
    second request updates the first). ``enqueued_at`` is the original place (epoch seconds
    on the routing clock), so the callback is served exactly when the caller would have been."""

    __tablename__ = "callback"
    __table_args__ = (
        # one live callback per number and queue: a second request updates the first
        Index(
            "uq_callback_live", "phone", "queue", unique=True,
            postgresql_where=text("status IN ('pending', 'reserved', 'dialling')"),
            sqlite_where=text("status IN ('pending', 'reserved', 'dialling')"),
        ),
    )  # fmt: skip
    id: int | None = _id()
    entry: str = Field(max_length=64, unique=True)
    queue: str = Field(max_length=32)
    phone: str = Field(max_length=32, index=True)  # E.164
    citizen_id: int | None = _fk("citizen.id", nullable=True, index=False)
    language: str = Field(default="ar", max_length=2)
    priority: int = 0
    enqueued_at: float = 0.0
    # pending -> reserved -> dialling -> done (final) | pending again on no answer (retried)
    # | expired | cancelled | opted_out (final)
    status: str = Field(default="pending", max_length=12, index=True)
    attempts: int = 0
    agent: str | None = Field(default=None, max_length=32)
    ticket_id: int | None = _fk("ticket.id", nullable=True, index=False)  # the reference the caller heard
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    next_attempt_at: datetime | None = _ts()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class PopulationMargin(SQLModel, table=True):
    """One cell of a population table admins load for weighting: ``variables`` names the
    table's attributes in order (``municipality``, or ``district,language`` for a full cross), and
    ``cell`` their values joined by a tab. A one-variable table is a margin (raking); a table
    over every weighting variable is the full population table (post-stratification)."""

    __tablename__ = "population_margin"
    __table_args__ = (UniqueConstraint("variables", "cell"),)
    id: int | None = _id()
    variables: str = Field(max_length=200)
    cell: str = Field(max_length=1000)
    population: float
    source: str = Field(default="", max_length=200)  # the uploaded file's name
    created_by: str = Field(default="", max_length=100)
    created_at: datetime = _created()


def table(model: type[SQLModel]) -> Table:
    """The Core table of a model (SQLModel does not type ``__table__``)."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


# -- service requests (issue 10): the tables live in callcenter/requests/tables.py -------------
from callcenter.requests.tables import CategoryBody as CategoryBody  # noqa: E402
from callcenter.requests.tables import HolidayCorrection as HolidayCorrection  # noqa: E402
from callcenter.requests.tables import RequestEvent as RequestEvent  # noqa: E402
from callcenter.requests.tables import RequestText as RequestText  # noqa: E402
from callcenter.requests.tables import ResponsibleBody as ResponsibleBody  # noqa: E402
from callcenter.requests.tables import ServiceCategory as ServiceCategory  # noqa: E402
from callcenter.requests.tables import ServiceRequest as ServiceRequest  # noqa: E402

# isort: split
# -- Open311 (issue 10): client keys and what clients send; see callcenter/open311/tables.py ----
from callcenter.open311.tables import Open311Client as Open311Client  # noqa: E402
from callcenter.open311.tables import Open311Request as Open311Request  # noqa: E402
