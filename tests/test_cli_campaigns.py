"""`python main.py campaign ...` run as a person would run it (real subprocesses, SQLite)."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import run_cli


def test_campaign_create_list_open_status_close(tmp_path: Path) -> None:
    env = {"BESAFE_DATA_DIR": str(tmp_path)}
    created = run_cli(
        "campaign", "create",
        "--code", "abw-2031",
        "--title", "Anti-Bullying Week",
        "--survey", "bullying",
        "--opens", "2031-07-14 09:00",
        "--closes", "2031-07-18 16:00",
        "--reminder", "2031-07-16 12:00",
        "--reminder-text", "Still time to finish!",
        "--target", "100",
        "--year", "7",
        env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    # London summer time in and out.
    assert "Mon 14 Jul 2031, 09:00 BST" in created.stdout
    assert "Year 7" in created.stdout and "draft" in created.stdout.lower()

    listed = run_cli("campaign", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith("abw-2031"))
    assert "Draft" in line and "Fri 18 Jul 2031, 16:00 BST" in line
    assert "bullying-v1" in listed.stdout  # the shipped survey's default campaign

    opened = run_cli("campaign", "open", "abw-2031", env=env)
    assert opened.returncode == 0, opened.stderr
    assert "now open" in opened.stdout

    status = run_cli("campaign", "status", "abw-2031", env=env)
    assert status.returncode == 0, status.stderr
    for words in ("Open", "started:    0", "0 of 100", "flags:      0 raised"):
        assert words in status.stdout, words

    again = run_cli("campaign", "open", "abw-2031", env=env)
    assert again.returncode == 1 and "already open" in again.stderr

    closed = run_cli("campaign", "close", "abw-2031", env=env)
    assert closed.returncode == 0 and "now closed" in closed.stdout
    archived = run_cli("campaign", "archive", "abw-2031", env=env)
    assert archived.returncode == 0, archived.stderr


def test_campaign_errors_are_clear_and_change_nothing(tmp_path: Path) -> None:
    env = {"BESAFE_DATA_DIR": str(tmp_path)}
    base = ("campaign", "create", "--title", "T", "--survey", "bullying")
    cases = [
        (("--code", "Bad Code"), "lowercase"),
        (("--code", "spring", "--opens", "2031-03-30 01:30"), "does not exist in London"),
        (("--code", "autumn", "--opens", "2031-10-26 01:30"), "happens twice in London"),
        (("--code", "when", "--opens", "tomorrow"), "YYYY-MM-DD HH:MM"),
        (("--code", "years", "--year", "14"), "unknown school year"),
        (("--code", "nosurvey", "--survey", "cooking"), "no stored survey 'cooking'"),
    ]
    for extra, message in cases:
        result = run_cli(*base, *extra, env=env)
        assert result.returncode == 1, (extra, result.stdout)
        assert message in result.stderr, (extra, result.stderr)
        assert "Traceback" not in result.stderr
    missing = run_cli("campaign", "status", "nope", env=env)
    assert missing.returncode == 1 and "no campaign has the code 'nope'" in missing.stderr
    listed = run_cli("campaign", "list", env=env)
    assert "spring" not in listed.stdout and "autumn" not in listed.stdout


def test_campaign_edit_changes_only_what_is_given_and_respects_the_state(tmp_path: Path) -> None:
    env = {"BESAFE_DATA_DIR": str(tmp_path)}
    created = run_cli(
        "campaign", "create", "--code", "sid-2031", "--title", "Safer Internet Day",
        "--survey", "bullying", "--opens", "2031-02-10 09:00", "--closes", "2031-02-14 16:00",
        "--year", "9", "--target", "50",
        env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr

    edited = run_cli(
        "campaign", "edit", "sid-2031", "--closes", "2031-02-21 16:00", "--target", "80",
        env=env,
    )  # fmt: skip
    assert edited.returncode == 0, edited.stderr
    assert "changed closes_at, target_responses" in edited.stdout
    assert "Fri 21 Feb 2031, 16:00 GMT" in edited.stdout
    assert "Safer Internet Day" in edited.stdout and "Year 9" in edited.stdout  # kept
    status = run_cli("campaign", "status", "sid-2031", env=env)
    assert "0 of 80" in status.stdout

    same = run_cli("campaign", "edit", "sid-2031", env=env)
    assert same.returncode == 0 and "nothing changed" in same.stdout

    everyone = run_cli("campaign", "edit", "sid-2031", "--everyone", env=env)
    assert everyone.returncode == 0 and "changed audience" in everyone.stdout

    bad = run_cli("campaign", "edit", "sid-2031", "--closes", "2031-02-01 09:00", env=env)
    assert bad.returncode == 1 and "closing time must be after" in bad.stderr

    assert run_cli("campaign", "open", "sid-2031", env=env).returncode == 0
    opens = run_cli("campaign", "edit", "sid-2031", "--opens", "2031-02-11 09:00", env=env)
    assert opens.returncode == 1 and "cannot change while the campaign is open" in opens.stderr
    assert "Traceback" not in opens.stderr
    missing = run_cli("campaign", "edit", "nope", "--title", "X", env=env)
    assert missing.returncode == 1 and "no campaign has the code 'nope'" in missing.stderr
    kept = run_cli("campaign", "status", "sid-2031", env=env)
    # Opening set the opening time to now; the refused edit left it so.
    assert "11 Feb 2031" not in kept.stdout and "0 of 80" in kept.stdout
