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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level of log lines written."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="`json` writes one structured object per line; `text` is for people."
    )

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
