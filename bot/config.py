"""Settings: one class, read from the environment and `.env`, validated at start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from crm.sending import Caps, QuietHours, SendingError, parse_quiet_hours
from crm.working_hours import WorkingHours, WorkingHoursError, parse_working_hours

TELEGRAM_API_DEFAULT = "https://api.telegram.org"
SUPPORTED_LOCALES = ("zh_CN", "en")


class SettingsError(RuntimeError):
    """A setting is missing or wrong; the message names the variable."""


class Settings(BaseSettings):
    # An empty value (`EVENTS_SECRET=` as in .env.example) means unset, never an empty secret.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_base: str = TELEGRAM_API_DEFAULT
    database_url: str = "sqlite+aiosqlite:///data/touchpoint.db"
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    team_timezone: str = "Asia/Shanghai"
    default_locale: str = "zh_CN"
    touchpoint_config: Path = Path("config")

    # Lifecycle: days since the latest purchase (DOMAIN.md: 90 / 180 / 360).
    lifecycle_active_days: int = Field(90, ge=1)
    lifecycle_silent_days: int = Field(180, ge=1)
    lifecycle_sleeping_days: int = Field(360, ge=1)
    # "fixed" uses the thresholds above; "learned" cuts the shop's recency 3:3:3:1.
    lifecycle_mode: str = "fixed"

    # Outbound pacing (Telegram's limits, a little under them).
    send_per_chat_per_second: float = Field(1.0, gt=0)
    send_chat_burst: int = Field(3, ge=1)
    send_per_group_per_minute: int = Field(20, ge=1)
    send_global_per_second: int = Field(30, ge=1)
    send_max_retries: int = Field(5, ge=0)

    # Follow-ups: the team's working hours (team time zone); a reminder due outside them waits for
    # the next shift, and the start-of-shift summary goes out when the shift starts.
    working_hours: str = "09:00-23:00"
    working_days: str = "mon-sun"
    # An unanswered reminder is re-posted after this long, and escalated to the lead after as long again.
    reminder_grace_minutes: int = Field(10, ge=1, le=1440)
    # How often the timer engine looks for due rows besides its exact wake-ups (other processes'
    # timers, a lapsed claim); and how long a claim holds before another process may take the row.
    timer_sweep_seconds: float = Field(5.0, gt=0, le=300)
    timer_lease_seconds: int = Field(300, ge=10, le=3600)

    # Shop events API (bot/web.py): off until EVENTS_SECRET is set.
    events_secret: SecretStr | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)

    # Care messages (crm/sending.py): quiet hours in the customer's zone (the team's when unknown),
    # per-customer caps, how often a failed delivery is tried, the channel's own pace.
    care_quiet_hours: str = "21:00-09:00"
    care_cap_per_day: int = Field(1, ge=1, le=20)
    care_cap_per_week: int = Field(3, ge=1, le=50)
    care_send_per_second: float = Field(20.0, gt=0, le=1000)
    shop_name: str | None = None
    # The webhook channel (an SMS gateway or the shop platform's adapter): JSON POST, HMAC-signed.
    care_webhook_url: str | None = None
    care_webhook_secret: SecretStr | None = None
    # The e-mail channel.
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "care@localhost"
    smtp_starttls: bool = False

    # Webhook mode (instead of long polling): Telegram posts updates to WEBHOOK_URL, which a reverse
    # proxy forwards to HTTP_HOST:HTTP_PORT (the path is WEBHOOK_URL's). WEBHOOK_SECRET is the
    # secret_token Telegram sends back in every call.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_max_connections: int = Field(40, ge=1, le=100)
    # Several replicas: conversation state, the update ledger and the scheduled-job locks in Redis.
    redis_url: SecretStr | None = None
    # SIGTERM: how long in-flight handlers and sends get to finish.
    shutdown_timeout_seconds: float = Field(20.0, gt=0, le=600)

    sandbox_port: int = Field(8090, ge=1, le=65535)
    # Sandbox and tests only: a file holding seconds to add to the clock, so timers can be fast-forwarded.
    sandbox_clock_file: Path | None = None
    log_level: str = "INFO"

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError as exc:
                raise ValueError("must be comma-separated Telegram user ids, e.g. 12345,67890") from exc
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("team_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}, e.g. Asia/Shanghai") from exc
        return value

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in SUPPORTED_LOCALES:
            raise ValueError(f"must be one of {', '.join(SUPPORTED_LOCALES)}")
        return value

    @field_validator("lifecycle_mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in ("fixed", "learned"):
            raise ValueError("must be 'fixed' or 'learned'")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @model_validator(mode="after")
    def _valid_working_hours(self) -> Settings:
        try:
            _ = self.hours
        except WorkingHoursError as exc:
            raise ValueError(f"WORKING_HOURS / WORKING_DAYS: {exc}") from None
        return self

    @model_validator(mode="after")
    def _valid_care_settings(self) -> Settings:
        try:
            _ = self.quiet_hours, self.caps
        except SendingError as exc:
            raise ValueError(f"CARE_QUIET_HOURS / CARE_CAP_PER_DAY / CARE_CAP_PER_WEEK: {exc}") from None
        return self

    @field_validator("webhook_url")
    @classmethod
    def _https_or_local(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be the public https:// address Telegram posts updates to")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret_alphabet(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram accepts 1-256 characters of A-Z, a-z, 0-9, _ and -.
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("WEBHOOK_SECRET must be set with WEBHOOK_URL, so only Telegram can post updates")
        return self

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> Settings:
        if not self.lifecycle_active_days < self.lifecycle_silent_days < self.lifecycle_sleeping_days:
            raise ValueError(
                "LIFECYCLE_ACTIVE_DAYS < LIFECYCLE_SILENT_DAYS < LIFECYCLE_SLEEPING_DAYS must hold"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.team_timezone)

    @property
    def hours(self) -> WorkingHours:
        return parse_working_hours(self.working_hours, self.working_days, self.zone)

    @property
    def quiet_hours(self) -> QuietHours:
        return parse_quiet_hours(self.care_quiet_hours)

    @property
    def caps(self) -> Caps:
        return Caps(self.care_cap_per_day, self.care_cap_per_week)

    @property
    def webhook_path(self) -> str:
        return urlsplit(self.webhook_url).path or "/" if self.webhook_url else "/"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    """Build Settings or raise SettingsError with one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(f"Setting {name}: {first['msg']}") from None
