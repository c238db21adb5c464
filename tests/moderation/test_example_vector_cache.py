"""The examples' vectors are kept on disk between runs, and never trusted when stale."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from moderation.semantic import example_vectors

np = pytest.importorskip("numpy")


class CountingEncoder:
    """Stands in for MiniLMEncoder: vectors that depend on the texts, and a call count."""

    dimension = 4

    def __init__(self, fingerprint: str = "model-files-v1") -> None:
        self.fingerprint = fingerprint
        self.calls = 0

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> object:
        self.calls += 1
        return np.array(
            [[len(t), t.count("e"), t.count(" "), i] for i, t in enumerate(texts)],
            dtype=np.float32,
        )


TEXTS = ["my dad hits me", "nobody would miss me", "this homework is killing me"]


def test_second_start_reads_the_vectors_instead_of_computing_them(tmp_path: Path) -> None:
    first, second = CountingEncoder(), CountingEncoder()
    computed = example_vectors(first, TEXTS, 32, tmp_path)  # type: ignore[arg-type]
    read = example_vectors(second, TEXTS, 32, tmp_path)  # type: ignore[arg-type]
    assert (first.calls, second.calls) == (1, 0)
    assert np.array_equal(computed, read) and read.dtype == np.float32
    assert len(list(tmp_path.glob("examples-*.npy"))) == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda texts, encoder: ([*texts, "he said its our secret"], encoder),
        lambda texts, encoder: (texts, CountingEncoder("model-files-v2")),
    ],
    ids=["examples edited", "model reinstalled"],
)
def test_edited_examples_or_another_model_are_computed_again(tmp_path: Path, change) -> None:
    example_vectors(CountingEncoder(), TEXTS, 32, tmp_path)  # type: ignore[arg-type]
    texts, encoder = change(TEXTS, CountingEncoder())
    vectors = example_vectors(encoder, texts, 32, tmp_path)
    assert encoder.calls == 1
    assert np.array_equal(vectors, encoder.encode(texts))
    assert len(list(tmp_path.glob("examples-*.npy"))) == 1  # the stale file is gone


@pytest.mark.parametrize(
    "damage",
    [b"not a numpy file", None],
    ids=["garbage", "wrong shape"],
)
def test_a_damaged_cache_file_is_recomputed_and_replaced(
    tmp_path: Path, damage: bytes | None
) -> None:
    example_vectors(CountingEncoder(), TEXTS, 32, tmp_path)  # type: ignore[arg-type]
    (path,) = tmp_path.glob("examples-*.npy")
    if damage is None:
        np.save(path, np.zeros((2, 4), dtype=np.float32))
    else:
        path.write_bytes(damage)
    encoder = CountingEncoder()
    vectors = example_vectors(encoder, TEXTS, 32, tmp_path)  # type: ignore[arg-type]
    assert encoder.calls == 1
    assert np.array_equal(vectors, encoder.encode(TEXTS))
    assert np.array_equal(np.load(path), vectors)


def test_a_cache_that_cannot_be_written_only_costs_the_computation(tmp_path: Path) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the directory should be")
    encoder = CountingEncoder()
    vectors = example_vectors(encoder, TEXTS, 32, blocked)  # type: ignore[arg-type]
    assert encoder.calls == 1 and vectors.shape == (3, 4)


def test_weights_not_loaded_from_files_are_never_cached(tmp_path: Path) -> None:
    encoder = CountingEncoder(fingerprint="")
    example_vectors(encoder, TEXTS, 32, tmp_path)  # type: ignore[arg-type]
    example_vectors(encoder, TEXTS, 32, tmp_path)  # type: ignore[arg-type]
    assert encoder.calls == 2 and not list(tmp_path.iterdir())
