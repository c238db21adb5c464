"""`python main.py broadcast status CODE [--follow]`: a campaign's broadcasts as progress bars."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from storage.broadcasts import BroadcastCounts

BAR_WIDTH = 30


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """`[#######-------]` filled to done/total (empty when there is nothing to do)."""
    filled = 0 if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def lines(code: str, progress: list[BroadcastCounts]) -> list[str]:
    if not progress:
        return [f"{code}: nothing queued yet (the invitation is queued when the campaign opens)"]
    found = []
    for item in progress:
        name = "invitation" if item.kind == "invitation" else f"reminder {item.seq}"
        c = item.counts
        percent = 100 * item.done // item.total if item.total else 100
        waiting = c["queued"] + c["sending"]
        text = (
            f"{name:<12} {bar(item.done, item.total)} {percent:>3}%  {item.done}/{item.total}"
            f"  sent {c['sent']} · waiting {waiting} · failed {c['failed']}"
            f" · blocked {c['blocked']} · cancelled {c['cancelled']}"
        )
        if waiting and item.next_at is not None:
            text += f" · next {item.next_at:%Y-%m-%d %H:%M} UTC"
        found.append(text)
    return found


def finished(progress: list[BroadcastCounts]) -> bool:
    return bool(progress) and all(item.done == item.total for item in progress)


def show(
    code: str,
    read: Callable[[], list[BroadcastCounts] | None],
    *,
    follow: bool,
    interval: float = 2.0,
    out: TextIO = sys.stdout,
) -> int:
    """Print the bars once, or (follow) redraw them until every send reached an end."""
    drawn = 0
    while True:
        progress = read()
        if progress is None:
            print(f"broadcast status: no campaign has the code {code!r}", file=sys.stderr)
            return 1
        text = lines(code, progress)
        if follow and drawn and out.isatty():
            out.write(f"\x1b[{drawn}F\x1b[J")  # back over the previous bars, then redraw
        out.write("\n".join(text) + "\n")
        out.flush()
        drawn = len(text)
        if not follow or finished(progress):
            return 0
        time.sleep(interval)
