"""The rules file checks itself: every example fires its own rule; bad rules are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from moderation.rules import CONTEXT_FILE, RulesError, load_rules
from moderation.screen import screen

RULES = load_rules()
ISSUE_CATEGORIES = [
    "suicide_self_harm",
    "physical_abuse",
    "sexual_abuse",
    "emotional_abuse",
    "neglect",
    "exploitation_grooming",
    "domestic_abuse",
    "relationship_abuse",
    "bullying",
    "immediate_danger",
    "other",
]


def test_categories_are_exactly_those_of_the_issue_each_with_a_label() -> None:
    assert list(RULES.categories) == ISSUE_CATEGORIES
    for category in RULES.categories.values():
        assert category.label and category.label != category.id


def test_every_category_has_rules() -> None:
    assert {rule.category for rule in RULES.rules} == set(ISSUE_CATEGORIES)


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda rule: rule.id)
def test_every_example_fires_its_own_rule(rule) -> None:
    result = screen(rule.example)
    assert result.flagged, rule.example
    assert rule.id in {item.rule for item in result.evidence}, result.evidence
    assert rule.category in result.categories


@pytest.mark.parametrize("marker", sorted(RULES.markers))
def test_every_marker_example_is_urgent(marker: str) -> None:
    result = screen(RULES.marker_examples[marker])
    assert result.severity == "urgent"
    assert any(item.note.startswith("urgent:") for item in result.evidence)


def _rules_file(tmp_path: Path, rule: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "categories:\n  bullying: {label: Bullying, raised_by: []}\n"
        "markers: {}\nlists: {}\nrules:\n" + rule,
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "  - {id: a, category: nope, weight: high, example: x, patterns: [x]}\n",
            "unknown category",
        ),
        (
            "  - {id: a, category: bullying, weight: severe, example: x, patterns: [x]}\n",
            "weight",
        ),
        ("  - {id: a, category: bullying, weight: high, patterns: [x]}\n", "example"),
        (
            "  - {id: a, category: bullying, weight: high, example: x, patterns: ['{nope} x']}\n",
            "unknown list",
        ),
        (
            "  - {id: a, category: bullying, weight: high, example: x, patterns: ['(x']}\n",
            "rule a",
        ),
        (
            "  - {id: a, category: bullying, weight: high, example: x, patterns: ['(a+)+']}\n",
            "backtrack",
        ),
    ],
)
def test_a_bad_rule_is_refused_with_its_name(tmp_path: Path, rule: str, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        load_rules.__wrapped__(_rules_file(tmp_path, rule), CONTEXT_FILE)


def test_patterns_match_whole_words_only() -> None:
    assert not screen("the skills test was fine").flagged  # "kil" inside "skills"
    assert screen("kms").flagged
    assert not screen("bullyingly").flagged
