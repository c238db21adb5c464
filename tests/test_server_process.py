"""`main.py run` as a real process: starts, serves, survives a bad survey file, stops cleanly."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from config.settings import PROJECT_ROOT, SHIPPED_SURVEYS_DIR
from tests.processes import free_port, server_env


def wait_for(url: str, process: subprocess.Popen[str], seconds: float = 60) -> bytes:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited early: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def test_server_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    surveys = tmp_path / "surveys"
    surveys.mkdir()
    shutil.copy(SHIPPED_SURVEYS_DIR / "bullying.yaml", surveys)
    (surveys / "broken.yaml").write_text("id: broken\nversion: [\n")
    port = free_port()
    env = server_env(
        BESAFE_DATA_DIR=str(tmp_path / "data"),
        BESAFE_PORT=str(port),
        BESAFE_SURVEYS_DIR=str(surveys),
        BESAFE_LOG_FORMAT="json",
    )
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "main.py"), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        health = json.loads(wait_for(f"http://127.0.0.1:{port}/healthz", process))
        assert health == {"status": "ok"}
        page = wait_for(f"http://127.0.0.1:{port}/", process).decode()
        assert "Quick Exit" in page
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert "survey file refused" in messages  # the bad file is named in the log ...
    loaded = next(line for line in lines if line["msg"] == "surveys loaded")
    assert loaded["loaded"] == ["bullying v1"]  # ... and the good one still runs
    assert "no Telegram token configured: web chat only" in messages
    assert messages[-1] == "stopped cleanly"
    assert (tmp_path / "data" / "besafe.db").exists()
    assert (tmp_path / "data" / "secret_key").exists()
