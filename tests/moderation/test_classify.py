"""`python main.py classify`, run as the outside evaluation runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from config.settings import PROJECT_ROOT
from moderation.classify import classify_lines, parse_line
from moderation.detector import Detector


def classify(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BESAFE_")}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "main.py"), "classify", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean,
        timeout=300,
        cwd=PROJECT_ROOT,
    )


def rows(result: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_json_lines_plain_lines_and_a_bad_line() -> None:
    stdin = "\n".join(
        [
            json.dumps({"id": "a1", "text": "i want to kill myself tonight"}),
            "this homework is killing me",
            '{"id": "broken", "text": ',
            json.dumps({"id": 7}),
            json.dumps({"id": "b2", "text": "my dad hits me 😢"}),
            "[1, 2]",
        ]
    )
    result = classify(stdin, "--rules-only")
    assert result.returncode == 0, result.stderr
    out = rows(result)
    assert [row["id"] for row in out] == ["a1", 2, 3, 7, "b2", 6]
    assert out[0]["flagged"] and out[0]["severity"] == "urgent"
    assert out[0]["categories"] == ["suicide_self_harm"]
    evidence = out[0]["evidence"][0]
    assert (
        "i want to kill myself tonight"[evidence["start"] : evidence["end"]] == evidence["matched"]
    )
    assert out[1] == {
        "id": 2,
        "flagged": False,
        "severity": None,
        "categories": [],
        "evidence": [],
    }
    assert "error" in out[2] and "error" in out[3]
    assert out[4]["flagged"] and out[4]["categories"] == ["physical_abuse"]
    assert out[5]["flagged"] is False  # "[1, 2]" is plain text, not a JSON object line


def test_a_thousand_lines_give_a_thousand_answers_in_order() -> None:
    texts = ["i want to die", "my friends are nice", "nobody hits me", "kms"] * 250
    stdin = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    result = classify(stdin)
    assert result.returncode == 0, result.stderr
    out = rows(result)
    assert [row["id"] for row in out] == list(range(1000))
    assert [row["flagged"] for row in out[:4]] == [True, False, False, True]


def test_invalid_utf8_is_read_not_fatal() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "main.py"), "classify", "--rules-only"],
        input=b"i want to die \xff\xfe\n",
        capture_output=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["flagged"] is True


@pytest.mark.parametrize(
    ("line", "ident", "text", "error"),
    [
        ('{"id": "x", "text": "hi"}\n', "x", "hi", False),
        ('{"text": "hi"}', 4, "hi", False),
        ("plain words\r\n", 4, "plain words", False),
        ('{"id": "x", "text": 5}', "x", None, True),
        ("{nope", 4, None, True),
    ],
)
def test_parse_line(line: str, ident: object, text: str | None, error: bool) -> None:
    parsed = parse_line(4, line)
    assert parsed.id == ident and parsed.text == text and (parsed.error is not None) == error


def test_classify_lines_batches_through_screen_many() -> None:
    calls: list[int] = []

    class Counting(Detector):
        def screen_many(self, items):
            calls.append(len(items))
            return super().screen_many(items)

    out = list(classify_lines([f"line {i}" for i in range(10)], Counting(None), batch=4))
    assert len(out) == 10
    assert calls == [4, 4, 2]
