"""The detector: stage 1 and a stage 2 together (stage 2 faked here; the real one is tested in
test_semantic.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from moderation.detector import Detector, combine
from moderation.screen import ScreenContext, screen


@dataclass(frozen=True)
class Hit:
    category: str
    severity: str
    similarity: float
    example_id: str
    start: int
    end: int


class FakeSemantic:
    """Answers from a table of texts; records every batch it is given."""

    def __init__(self, answers: dict[str, Hit | None], *, broken: bool = False) -> None:
        self.answers = answers
        self.batches: list[list[str]] = []
        self.broken = broken

    def score_many(self, texts: Sequence[str]) -> list[Hit | None]:
        self.batches.append(list(texts))
        if self.broken:
            raise RuntimeError("model fell over")
        return [self.answers.get(text) for text in texts]


PARAPHRASE = "everything would be easier for them if i just wasnt a thing"


def whole(text: str, category: str, severity: str, example: str = "ex1") -> Hit:
    return Hit(category, severity, 0.8, example, 0, len(text))


def test_rules_only_detector_is_stage_1() -> None:
    detector = Detector(None)
    for text in ("i want to die", "this homework is killing me", "my dad hits me"):
        assert detector.screen(text) == screen(text)
    assert detector.stages == "rules"


def test_stage_2_alone_flags_what_no_rule_foresaw() -> None:
    semantic = FakeSemantic({PARAPHRASE: whole(PARAPHRASE, "suicide_self_harm", "high", "ss-7")})
    result = Detector(semantic).screen(PARAPHRASE)
    assert not screen(PARAPHRASE).flagged
    assert result.flagged and result.severity == "high"
    assert result.categories == ("suicide_self_harm",)
    (evidence,) = result.evidence
    assert evidence.pattern == "semantic:ss-7"
    assert (evidence.start, evidence.end) == (0, len(PARAPHRASE))
    assert evidence.matched == PARAPHRASE


def test_both_stages_take_the_higher_severity_and_the_union_of_categories() -> None:
    text = "they call me names at school"
    semantic = FakeSemantic({text: whole(text, "emotional_abuse", "high")})
    result = Detector(semantic).screen(text)
    assert result.severity == "high"
    assert result.categories == ("bullying", "emotional_abuse")
    assert [e.rule for e in result.evidence] == ["bu-names", "semantic"]


def test_stage_2_never_lowers_stage_1() -> None:
    text = "i want to kill myself tonight"
    semantic = FakeSemantic({text: whole(text, "suicide_self_harm", "medium")})
    assert Detector(semantic).screen(text).severity == "urgent"


def test_screen_many_sends_one_batch_and_keeps_order() -> None:
    texts = ["i want to die", "", "hello", PARAPHRASE, "   "]
    semantic = FakeSemantic({PARAPHRASE: whole(PARAPHRASE, "suicide_self_harm", "high")})
    results = Detector(semantic).screen_many([(t, ScreenContext()) for t in texts])
    assert semantic.batches == [["i want to die", "hello", PARAPHRASE]]  # blanks not sent
    assert [r.flagged for r in results] == [True, False, False, True, False]


def test_a_failing_stage_2_leaves_stage_1s_answer() -> None:
    detector = Detector(FakeSemantic({}, broken=True))
    results = detector.screen_many([("i want to die", ScreenContext()), ("hi", ScreenContext())])
    assert [r.flagged for r in results] == [True, False]


@pytest.mark.parametrize(
    "text",
    [
        "this homework is killing me",  # an idiom clears it
        "i have never sent nudes",  # context cleared the same words in stage 1
        "we learned about grooming in PSHE",  # a lesson
        "I used to self-harm but I've had help and I'm fine now",  # the past with support
    ],
)
def test_context_rules_apply_to_stage_2_evidence_too(text: str) -> None:
    semantic = FakeSemantic({text: whole(text, "suicide_self_harm", "high")})
    assert not Detector(semantic).screen(text).flagged


def test_context_lowers_urgent_stage_2_evidence_but_keeps_it() -> None:
    text = "in the film she says goodbye and takes all the pills"
    semantic = FakeSemantic({text: whole(text, "suicide_self_harm", "urgent")})
    result = Detector(semantic).screen(text)
    assert result.flagged and result.severity == "medium"


def test_a_stage_2_span_outside_the_text_is_clamped() -> None:
    text = "short"
    hit = Hit("bullying", "medium", 0.7, "b1", 3, 999)
    result = combine(screen(text), hit, text)
    assert result.evidence[-1].matched == "rt"


def test_load_without_semantic_is_rules_only() -> None:
    assert Detector.load(with_semantic=False).semantic is None


def test_stage_2_evidence_gets_the_urgent_tier_as_a_rule_match_does() -> None:
    """A method, plan or time word beside what stage 2 found means risk now, as it does
    beside a rule's match; a lowered finding (hypothetical, past with support) is not raised."""
    soon = PARAPHRASE + " and tonight is the night"
    lesson = "we watched a film in pshe where a girl said " + PARAPHRASE + " tonight"
    semantic = FakeSemantic(
        {
            PARAPHRASE: whole(PARAPHRASE, "suicide_self_harm", "high"),
            soon: whole(soon, "suicide_self_harm", "high"),
            lesson: whole(lesson, "suicide_self_harm", "high"),
        }
    )
    detector = Detector(semantic)
    assert not screen(soon).flagged  # stage 2 alone found it
    assert detector.screen(PARAPHRASE).severity == "high"
    raised = detector.screen(soon)
    assert raised.severity == "urgent"
    (evidence,) = raised.evidence
    assert evidence.rule == "semantic" and "urgent: tonight" in evidence.note
    assert detector.screen(lesson).severity != "urgent"
