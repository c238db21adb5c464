"""Stage 1 gives exactly the screenings recorded in stage1_expected.jsonl: every message of
tests/data/*.jsonl, with its severity, categories and evidence spans, and the context rules
as stage-2 evidence sees them. Speed-ups of normalisation and rule matching must not change
one of them. After an intended change to the rules or data files, regenerate the file with
`make stage1-expected` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.moderation.stage1_expected import EXPECTED, reference, texts

REGENERATE = "if the rules or data files changed on purpose, run `make stage1-expected`"


def _expected() -> list[dict[str, object]]:
    return [json.loads(line) for line in EXPECTED.read_text(encoding="utf-8").splitlines()]


def test_reference_covers_every_message_of_the_data_files() -> None:
    recorded = [row["where"] for row in _expected()]
    assert recorded == [where for where, _ in texts()], REGENERATE
    assert len(recorded) > 1800


def test_stage1_screenings_are_unchanged() -> None:
    expected = {row["where"]: row for row in _expected()}
    changed = []
    for where, text in texts():
        row = expected.get(where)
        if row is None:
            pytest.fail(f"{where} is not in {Path(EXPECTED).name}: {REGENERATE}")
        got = reference(where, text)
        if got["sha"] != row["sha"]:
            pytest.fail(f"{where}: the message changed since the file was made: {REGENERATE}")
        if got != row:
            changed.append((where, text, row, got))
    assert not changed, "\n\n".join(
        f"{where} {text!r}\nexpected {row}\ngot      {got}" for where, text, row, got in changed[:5]
    )
