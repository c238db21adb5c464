"""The command line, run as a person would run it (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT, SHIPPED_SURVEYS_DIR


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BESAFE_")}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=120,
        cwd=PROJECT_ROOT,
    )


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("run", "migrate", "survey"):
        assert command in result.stdout


def test_validate_accepts_the_shipped_surveys() -> None:
    files = sorted(str(path) for path in SHIPPED_SURVEYS_DIR.glob("*.yaml"))
    assert len(files) == 3
    result = run_cli("survey", "validate", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok: ") == 3


def test_validate_reports_every_problem_with_line_and_question(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\nversion: 1\ntitle: Bad\ntopic: bullying\nintro: hi\nthanks: bye\n"
        "questions:\n"
        "  - id: q1\n    type: dance\n    text: Do you dance?\n    report_label: Dance\n"
        "  - id: q1\n    type: free_text\n    text: Again?\n    report_label: Again\n"
    )
    result = run_cli("survey", "validate", str(bad))
    assert result.returncode == 1
    assert "bad.yaml:9" in result.stdout and "q1" in result.stdout
    assert "dance" in result.stdout
    assert "bad.yaml:12" in result.stdout and "duplicate" in result.stdout.lower()


def test_validate_refuses_malformed_yaml_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: x\nquestions: [\n  - {id: 1\n")
    result = run_cli("survey", "validate", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "broken.yaml:" in result.stdout


def test_migrate_then_survey_list(tmp_path: Path) -> None:
    env = {"BESAFE_DATA_DIR": str(tmp_path)}
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "revision" in migrated.stdout
    listed = run_cli("survey", "list", env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for survey_id in ("bullying", "online_safety", "healthy_relationships"):
        assert survey_id in listed.stdout


@pytest.mark.parametrize("command", [("migrate",), ("run",)])
def test_bad_setting_stops_start_up_naming_it(command: tuple[str, ...]) -> None:
    result = run_cli(*command, env={"BESAFE_PORT": "not-a-port"})
    assert result.returncode == 2
    assert "BESAFE_PORT" in result.stderr
    assert "Traceback" not in result.stderr
