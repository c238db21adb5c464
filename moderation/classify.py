"""`python main.py classify`: screen lines of text, one JSON answer per line.

Input, one message a line: a JSON object `{"id": ..., "text": ...}` or plain text (its id is its
line number, from 1). Output, one JSON object a line, in the same order:
`{"id", "flagged", "severity", "categories", "evidence"}`, or `{"id", "error"}` for a line that
cannot be read (processing carries on). Lines are screened in batches through
`Detector.screen_many`, so stage 2 (when installed) embeds a batch at a time.

This is a stable interface: the detector is measured with it against messages kept outside the
project. Pure apart from the streams it is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from moderation.detector import Detector
from moderation.screen import ScreenContext, Screening

BATCH = 64


@dataclass(frozen=True)
class _Line:
    id: Any
    text: str | None
    error: str | None = None


def parse_line(number: int, raw: str) -> _Line:
    """One input line: JSON object with `text` (and optionally `id`), or plain text."""
    line = raw.rstrip("\r\n")
    if not line.lstrip().startswith("{"):
        return _Line(number, line)
    try:
        row = json.loads(line)
    except ValueError as error:
        return _Line(number, None, f"not valid JSON: {error}")
    if not isinstance(row, dict):
        return _Line(number, None, "a JSON line must be an object with a text")
    ident = row.get("id", number)
    if not isinstance(ident, (str, int, float)) or isinstance(ident, bool):
        ident = json.dumps(ident)
    text = row.get("text")
    if not isinstance(text, str):
        return _Line(ident, None, 'a JSON line needs "text" as a string')
    return _Line(ident, text)


def answer(ident: Any, result: Screening) -> dict[str, Any]:
    return {
        "id": ident,
        "flagged": result.flagged,
        "severity": result.severity,
        "categories": list(result.categories),
        "evidence": result.evidence_dicts(),
    }


def classify_lines(
    lines: Iterable[str], detector: Detector, batch: int = BATCH
) -> Iterator[dict[str, Any]]:
    """One answer per line, in order, screening `batch` lines at a time."""
    pending: list[_Line] = []

    def flush() -> Iterator[dict[str, Any]]:
        readable = [item for item in pending if item.error is None]
        results = iter(
            detector.screen_many([(item.text or "", ScreenContext()) for item in readable])
        )
        for item in pending:
            if item.error is not None:
                yield {"id": item.id, "error": item.error}
            else:
                yield answer(item.id, next(results))
        pending.clear()

    for number, raw in enumerate(lines, start=1):
        pending.append(parse_line(number, raw))
        if len(pending) >= batch:
            yield from flush()
    yield from flush()


def run(stdin: IO[bytes], stdout: IO[bytes], detector: Detector, batch: int = BATCH) -> int:
    decoded = (raw.decode("utf-8", errors="replace") for raw in stdin)
    for row in classify_lines(decoded, detector, batch):
        stdout.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        if len(row) == 2:  # an error line: make it visible at once
            stdout.flush()
    stdout.flush()
    return 0
