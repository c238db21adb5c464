"""All settings, declared once: environment (BESAFE_*) over an optional TOML file over defaults.

Each field's description is its documentation; a test checks that the README
lists every one of them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SURVEYS_DIR = PROJECT_ROOT / "config" / "surveys"
CONFIG_FILE_ENV = "BESAFE_CONFIG_FILE"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BESAFE_", extra="forbid", frozen=True)

    environment: Literal["development", "production"] = Field(
        "development",
        description="`production` turns on secure cookies and stricter defaults.",
    )
    host: str = Field("127.0.0.1", description="Address the web server listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the web server listens on.")
    data_dir: Path = Field(
        Path("data"), description="Where the SQLite database and the generated secret key live."
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy URL. Empty means SQLite at DATA_DIR/besafe.db; "
        "`postgresql://user:pass@host/db` uses PostgreSQL.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key for pseudonyms and signing. Generated into DATA_DIR/secret_key on first "
        "run when not given. Changing it makes every returning young person look new.",
    )
    telegram_token: SecretStr | None = Field(
        None, description="Telegram bot token. Without it only the web chat runs."
    )
    # ---- the Telegram channel (bot/telegram/)
    telegram_mode: Literal["polling", "webhook"] = Field(
        "polling",
        description="How updates arrive: `polling` (long polling, good for a laptop) or "
        "`webhook` (Telegram posts to TELEGRAM_WEBHOOK_URL; needs a public HTTPS address).",
    )
    telegram_webhook_url: str = Field(
        "",
        description="Public HTTPS address Telegram posts updates to, ending in "
        "TELEGRAM_WEBHOOK_PATH, e.g. `https://besafe.example.org/telegram/<random>`. "
        "Needed in webhook mode.",
    )
    telegram_webhook_path: str = Field(
        "/telegram/webhook",
        description="Path of the webhook route on this server; make it hard to guess.",
    )
    telegram_webhook_secret: SecretStr | None = Field(
        None,
        description="Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (1-256 of "
        "A-Z a-z 0-9 _ -). Default: derived from SECRET_KEY.",
    )
    telegram_api_url: str = Field(
        "https://api.telegram.org/bot",
        description="Bot API base URL (the token is appended). Change it only for a local Bot "
        "API server or tests.",
    )
    telegram_rate_per_second: float = Field(
        30,
        ge=0,
        description="Most messages sent per second over all chats (Telegram allows about 30); "
        "0 means no limit.",
    )
    telegram_chat_rate_per_second: float = Field(
        1,
        ge=0,
        description="Messages per second to one chat, after a short burst; 0 means no limit.",
    )
    telegram_chat_burst: int = Field(
        3,
        ge=1,
        description="Messages one chat may get at once before TELEGRAM_CHAT_RATE_PER_SECOND "
        "applies (a reply is often 2-3 messages).",
    )
    telegram_resend_window_minutes: float = Field(
        60,
        ge=0,
        description="At start-up, conversations whose question was sent this recently get it "
        "again (old buttons stop working after an outage); 0 turns this off.",
    )
    surveys_dir: Path = Field(
        SHIPPED_SURVEYS_DIR, description="Folder of survey YAML files loaded at start-up."
    )
    session_timeout_hours: float = Field(
        72,
        gt=0,
        description="A survey untouched this long counts as abandoned: its answers are kept "
        "and reported as a partial response.",
    )
    max_message_chars: int = Field(
        20000,
        ge=100,
        description="Longest inbound message kept; longer ones are trimmed with a note to the "
        "young person.",
    )
    max_answer_chars: int = Field(
        2000, ge=50, description="Longest free-text survey answer kept (the full message is kept)."
    )
    quick_exit_url: str = Field(
        "https://www.bbc.co.uk/weather",
        description="Neutral page the web chat's Quick Exit button jumps to.",
    )
    cookie_secure: bool | None = Field(
        None,
        description="Send cookies only over HTTPS. Default: on in production, off in development.",
    )
    semantic: bool = Field(
        True,
        description="Screen messages of three words or more with stage 2 (meaning, sentence "
        "embeddings) as well as the rules, when the `semantic` extra is installed.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level of log lines written."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="`json` writes one structured object per line; `text` is for people."
    )
    # ---- the staff app: login, sessions, second factor (web/staff/auth.py)
    require_2fa_for_leads: bool | None = Field(
        None,
        description="Safeguarding leads must use a second factor (TOTP). Default: on in "
        "production, off in development.",
    )
    staff_session_idle_minutes: float = Field(
        30, gt=0, description="A staff session unused this long ends (log in again)."
    )
    staff_session_absolute_hours: float = Field(
        12, gt=0, description="A staff session ends this long after login, however busy."
    )
    login_max_failures: int = Field(
        5, ge=1, description="Failed logins in a row that lock a staff account."
    )
    login_lockout_minutes: float = Field(
        15,
        gt=0,
        description="How long a locked staff account stays locked; also the window for "
        "LOGIN_MAX_FAILURES_PER_ADDRESS.",
    )
    login_max_failures_per_address: int = Field(
        20,
        ge=1,
        description="Failed staff logins from one address within LOGIN_LOCKOUT_MINUTES after "
        "which that address is refused until the window passes.",
    )
    # ---- the safeguarding review queue (web/staff/review.py, web/staff/alerts.py)
    deadline_urgent_minutes: float = Field(
        15, gt=0, description="An urgent flag must be acknowledged within this many minutes."
    )
    deadline_high_hours: float = Field(
        4, gt=0, description="A high flag must be acknowledged within this many hours."
    )
    deadline_medium_working_days: int = Field(
        2,
        ge=1,
        description="A medium flag must be acknowledged within this many working days "
        "(Monday to Friday).",
    )
    staff_alert_chat_id: str | None = Field(
        None,
        description="Telegram chat that gets a short notice (severity, category, link; never "
        "content) for every new urgent or high flag. Needs TELEGRAM_TOKEN.",
    )
    escalation_chat_id: str | None = Field(
        None,
        description="Telegram chat of the second contact, told when a flag's deadline passes "
        "unacknowledged. Needs TELEGRAM_TOKEN.",
    )
    staff_base_url: str = Field(
        "",
        description="Public address of the staff app for links in alerts, e.g. "
        "`https://besafe.example.org`. Empty means http://HOST:PORT.",
    )
    alert_check_seconds: float = Field(
        30,
        gt=0,
        description="How often new flags are alerted and deadlines checked for escalation.",
    )
    report_suppression_threshold: int = Field(
        5,
        ge=3,
        description="Counts below this (and any count that would give one away) are not shown "
        "in board reports; never below 3.",
    )
    report_rounding: bool = Field(
        False,
        description="Round the counts shown in board reports to the nearest 5 (as NHS Digital "
        "does); percentages then use the rounded counts.",
    )
    # ---- campaigns (issue 6): join links and QR codes
    telegram_bot_username: str = Field(
        "",
        pattern=r"^@?([A-Za-z][A-Za-z0-9_]{3,31})?$",
        description="The bot's Telegram username (without @), for campaign deep links "
        "`https://t.me/<username>?start=<code>` and their QR codes. Empty: no Telegram link.",
    )
    public_base_url: str = Field(
        "",
        description="Public address of the web chat for campaign links and QR codes, e.g. "
        "`https://besafe.example.org`. Empty means BESAFE_STAFF_BASE_URL, else http://HOST:PORT.",
    )

    # ---- scheduled jobs (bot/scheduler.py)
    scheduler_leader_retry_seconds: float = Field(
        5,
        gt=0,
        le=300,
        description="How often a server that is not running the scheduled jobs tries to take "
        "over (one server runs them; another takes over when it stops or dies), and how often "
        "the one that runs them checks it still holds the lock.",
    )
    # ---- broadcasts to opted-in young people (bot/broadcasts.py)
    broadcast_rate_per_second: float = Field(
        25,
        gt=0,
        le=30,
        description="Invitations and reminders sent per second at most (Telegram's guidance for "
        "bulk notices; never above 30). Replies to people writing to the bot go first.",
    )
    broadcast_quiet_hours: str = Field(
        "21:00-08:00",
        description="Daily window (local time, BROADCAST_TIME_ZONE) in which no invitation or "
        "reminder is sent; sends due then wait until it ends. Empty means none.",
    )
    broadcast_time_zone: str = Field(
        "Europe/London", description="Time zone of BROADCAST_QUIET_HOURS (IANA name)."
    )
    broadcast_check_seconds: float = Field(
        30, gt=0, description="How often due invitations and reminders are queued."
    )

    @field_validator("broadcast_quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        from surveys.broadcasting import QuietHours, QuietHoursError

        try:
            QuietHours.parse(value)
        except QuietHoursError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("broadcast_time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        from surveys.broadcasting import QuietHours, QuietHoursError

        try:
            QuietHours.parse("", value)
        except QuietHoursError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must be empty, a sqlite:/// URL or a postgresql:// URL")
        return value

    @field_validator("quick_exit_url")
    @classmethod
    def _https_exit(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("telegram_webhook_path")
    @classmethod
    def _webhook_path(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in "{}?# "):
            raise ValueError("must be a plain path starting with /")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        text = value.get_secret_value() if value is not None else ""
        if value is not None and not (
            0 < len(text) <= 256 and all(c.isascii() and (c.isalnum() or c in "_-") for c in text)
        ):
            raise ValueError("must be 1-256 characters of A-Z a-z 0-9 _ -")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    # ------------------------------------------------------------------ derived values

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'besafe.db').resolve()}"

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.environment == "production"

    @property
    def leads_need_2fa(self) -> bool:
        if self.require_2fa_for_leads is not None:
            return self.require_2fa_for_leads
        return self.environment == "production"

    def secret_bytes(self) -> bytes:
        """The configured secret, or the one kept under the data directory (made on first use)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting together must not write two different keys.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(48))
        key = path.read_text().strip()
        if len(key) < 32:
            raise SettingsError(f"secret key file {path} is too short; delete it to regenerate")
        return key.encode()


class SettingsError(Exception):
    """A setting is wrong; the message names it."""


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one message that names each bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            name = ".".join(str(part) for part in problem["loc"]) or "?"
            lines.append(f"setting BESAFE_{name.upper()}: {problem['msg']}")
        raise SettingsError("; ".join(lines)) from None
    except (OSError, ValueError) as error:  # e.g. unreadable or malformed TOML file
        raise SettingsError(f"{CONFIG_FILE_ENV}: {error}") from None
