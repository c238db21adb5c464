"""Write tests/moderation/stage1_expected.jsonl: stage 1's screening of every message in
tests/data/*.jsonl (plus a few long and hostile texts), as the reference that
test_stage1_golden.py holds the optimised screening to.

    PYTHONPATH=. .venv/bin/python tests/moderation/stage1_expected.py   (or: make stage1-expected)

Regenerate it on purpose only, after a change to the rules or the data files that is meant to
change what stage 1 finds; a speed-up must leave the file unchanged.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from moderation.screen import context_severity, screen  # noqa: E402
from moderation.semantic import sentence_spans  # noqa: E402

DATA = ROOT / "tests" / "data"
EXPECTED = Path(__file__).with_name("stage1_expected.jsonl")
# Long and hostile texts, cut to a size that keeps the file small.
EXTRA = {
    "plain words": "ok so " * 400,
    "one repeated disclosure": "i want to die " * 200,
    "family words": "my dad and my mum " * 150,
    "spaced letters": "k i l l m y s e l f " * 50,
    "cyrillic look-alikes": "кill мysеlf " * 100,
    "emoji": "💊🔪😭 " * 300,
    "one letter": "a" * 3000,
    "negations and markers": "not never tonight pills " * 100,
    "mixed": "I'm not being bullied. My dad hits me!!! kms lol, tonight. we learned about "
    "grooming in PSHE... he said he'd send my n00dz unless i pay £50 " * 20,
}


def texts() -> Iterator[tuple[str, str]]:
    """(where, text) for every message the reference covers, in a stable order."""
    for path in sorted(DATA.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                yield f"{path.name}:{number}", json.loads(line)["text"]
    for name, text in EXTRA.items():
        yield f"extra:{name}", text


def reference(where: str, text: str) -> dict[str, Any]:
    """Stage 1's screening of `text`, and the context rules applied to spans of it as they
    are for stage-2 evidence (whole text and each sentence)."""
    result = screen(text)
    spans = [(0, len(text)), *sentence_spans(text)[:20]]
    return {
        "where": where,
        "sha": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16],
        "flagged": result.flagged,
        "severity": result.severity,
        "categories": list(result.categories),
        "evidence": result.evidence_dicts(),
        "context": [
            [s, e, *context_severity(text, s, e, "suicide_self_harm", "high")] for s, e in spans
        ],
    }


def main() -> None:
    with EXPECTED.open("w", encoding="utf-8") as out:
        for where, text in texts():
            out.write(json.dumps(reference(where, text), ensure_ascii=False) + "\n")
    print(f"wrote {EXPECTED}")


if __name__ == "__main__":
    main()
