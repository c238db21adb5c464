"""The development sets: their shape, and the stage-1 targets of issue 3 on them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from moderation.detector import Detector
from moderation.evaluate import DEVSET, evaluate, load_devset
from moderation.rules import SEVERITY_RANK, load_rules

HOLDOUT = Path(DEVSET).with_name("devset_holdout.jsonl")
HOLDOUT2 = Path(DEVSET).with_name("devset_holdout2.jsonl")
HOLDOUT3 = Path(DEVSET).with_name("devset_holdout3.jsonl")
HOLDOUT4 = Path(DEVSET).with_name("devset_holdout4.jsonl")
# Fresh batches kept as honest "unseen" measurements (figures in tests/data/holdout_figures.md):
# only their shape is tested, not the stage-1 targets, so they stay a measurement, not a goal.
FRESH = [Path(DEVSET).with_name(f"devset_holdout{n}.jsonl") for n in (5, 6, 7, 8)]


@pytest.mark.parametrize(
    "path", [DEVSET, HOLDOUT, HOLDOUT2, HOLDOUT3, HOLDOUT4, *FRESH], ids=lambda p: p.name
)
def test_every_line_is_a_labelled_message(path: Path) -> None:
    categories = set(load_rules().categories)
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert set(row) == {"id", "text", "flagged", "severity", "categories"}
        assert row["id"] not in ids
        ids.add(row["id"])
        assert row["text"].strip()
        if row["flagged"]:
            assert row["severity"] in SEVERITY_RANK
            assert row["categories"] and set(row["categories"]) <= categories
        else:
            assert row["severity"] is None and row["categories"] == []


def test_the_devset_is_big_enough_half_benign_and_covers_every_category() -> None:
    items = load_devset()
    assert len(items) >= 450
    assert sum(not i.flagged for i in items) >= len(items) / 2
    per_category = Counter(c for i in items for c in i.categories)
    assert set(per_category) == set(load_rules().categories)
    assert all(n >= 10 for n in per_category.values()), per_category
    assert {i.severity for i in items if i.flagged} == set(SEVERITY_RANK)


@pytest.mark.parametrize(
    "path", [DEVSET, HOLDOUT, HOLDOUT2, HOLDOUT3, HOLDOUT4], ids=lambda p: p.name
)
def test_stage_1_meets_the_targets(path: Path) -> None:
    report = evaluate(Detector(None), load_devset(path), "rules")
    assert report.overall.recall >= 0.97, report.false_negatives
    assert report.overall.precision >= 0.85, report.false_positives
    if path == DEVSET:
        assert report.urgent_recall >= 0.99, report.urgent_missed
