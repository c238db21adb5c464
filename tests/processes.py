"""`python main.py run` in a process of its own, for tests that kill, restart or pair servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from config.settings import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(**settings: str) -> dict[str, str]:
    """This process's environment without any BESAFE_* setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BESAFE_")}
    env.update(settings)
    return env


def start_server(cwd: Path, log_path: Path, **settings: str) -> subprocess.Popen[bytes]:
    """`main.py run` with only the given BESAFE_* settings; its output appended to log_path."""
    with log_path.open("ab") as log:  # the child keeps its own handle
        return subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "main.py"), "run"],
            env=server_env(**settings),
            stdout=log,
            stderr=log,
            cwd=cwd,
        )
