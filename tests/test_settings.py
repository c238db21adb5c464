"""Settings: declared once, documented, and a bad one stops start-up naming itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT, Settings, SettingsError, load_settings

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BESAFE_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_readme_documents_every_setting(name: str) -> None:
    assert f"`BESAFE_{name.upper()}`" in README


def test_every_setting_has_help_text() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BESAFE_PORT", "8181")
    monkeypatch.setenv("BESAFE_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.port == 8181
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve() / 'besafe.db'}"


def test_toml_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "besafe.toml"
    config.write_text('port = 9001\nlog_format = "text"\n')
    monkeypatch.setenv("BESAFE_CONFIG_FILE", str(config))
    assert load_settings().port == 9001
    assert load_settings().log_format == "text"
    monkeypatch.setenv("BESAFE_PORT", "9002")
    assert load_settings().port == 9002


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("BESAFE_PORT", "eighty", "BESAFE_PORT"),
        ("BESAFE_PORT", "70000", "BESAFE_PORT"),
        ("BESAFE_DATABASE_URL", "mysql://x", "BESAFE_DATABASE_URL"),
        ("BESAFE_LOG_LEVEL", "LOUD", "BESAFE_LOG_LEVEL"),
        ("BESAFE_QUICK_EXIT_URL", "javascript:alert(1)", "BESAFE_QUICK_EXIT_URL"),
        ("BESAFE_SESSION_TIMEOUT_HOURS", "-1", "BESAFE_SESSION_TIMEOUT_HOURS"),
    ],
)
def test_bad_setting_names_itself(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_unknown_key_in_toml_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "besafe.toml"
    config.write_text("prot = 1\n")
    monkeypatch.setenv("BESAFE_CONFIG_FILE", str(config))
    with pytest.raises(SettingsError, match="BESAFE_PROT"):
        load_settings()


def test_malformed_toml_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "besafe.toml"
    config.write_text("port = [\n")
    monkeypatch.setenv("BESAFE_CONFIG_FILE", str(config))
    with pytest.raises(SettingsError, match="BESAFE_CONFIG_FILE"):
        load_settings()


def test_secret_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    first = settings.secret_bytes()
    assert len(first) >= 32
    assert load_settings(data_dir=tmp_path).secret_bytes() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_given_secret_key_is_used(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, secret_key="x" * 40)
    assert settings.secret_bytes() == b"x" * 40
    assert not (tmp_path / "secret_key").exists()


def test_secure_cookies_follow_environment() -> None:
    assert load_settings(environment="production").secure_cookies is True
    assert load_settings().secure_cookies is False
    assert load_settings(environment="production", cookie_secure=False).secure_cookies is False
