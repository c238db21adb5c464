"""Screening stage 2 (meaning) on one core: load time, memory, messages per second.

    .venv/bin/python bench/bench_semantic.py [--messages 2000] [--devset tests/data/devset.jsonl]

Pinned to one core with the BLAS runtime on one thread. Messages are a synthetic mix shaped
like survey traffic: short answers (which repeat, and so hit the embedding cache), one-sentence
free text and a few longer messages, generated so the free text is nearly all distinct.
With --devset, also prints what stage 2 ALONE scores on a labelled JSON-lines file.
"""

from __future__ import annotations

import os

# Before NumPy is imported: one BLAS thread, one core.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHORT = ["yes", "no", "idk", "sometimes", "not really", "maybe", "3", "a bit", "never", "ok"]
OPENERS = ["honestly", "tbh", "idk but", "so basically", "um", "well", "", "", ""]
SUBJECTS = ["my mum", "my dad", "my friend", "people at school", "my brother", "my teacher", "i"]
MIDDLES = [
    "keeps going on about",
    "doesn't really get",
    "was annoying about",
    "talked to me about",
    "won't stop texting me about",
    "made a joke about",
    "is always stressed about",
]
OBJECTS = [
    "my phone",
    "homework",
    "the football on saturday",
    "what happened at lunch",
    "my grades",
    "the group chat",
    "going out at the weekend",
    "the new game",
    "my hair",
    "moving house",
]
TAILS = ["lol", "and it's annoying", "which is fine i guess", "", "", "tbh", "😂", "..."]


def sentence(rng: random.Random) -> str:
    words = [
        rng.choice(OPENERS),
        rng.choice(SUBJECTS),
        rng.choice(MIDDLES),
        rng.choice(OBJECTS),
        rng.choice(TAILS),
        str(rng.randint(1, 99)) if rng.random() < 0.3 else "",
    ]
    return " ".join(w for w in words if w)


def messages(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.4:
            out.append(rng.choice(SHORT))
        elif roll < 0.85:
            out.append(sentence(rng))
        else:
            out.append(". ".join(sentence(rng) for _ in range(rng.randint(2, 4))) + ".")
    return out


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(stage: object, texts: list[str], batch: int) -> str:
    """Messages per second of wall time and per second of CPU time (the second one is what
    one core would do on a machine that other processes are also using)."""
    started, cpu = time.perf_counter(), time.process_time()
    for first in range(0, len(texts), batch):
        stage.score_many(texts[first : first + batch])  # type: ignore[attr-defined]
    wall_rate = len(texts) / (time.perf_counter() - started)
    cpu_rate = len(texts) / max(1e-9, time.process_time() - cpu)
    return f"{wall_rate:.0f} msg/s ({cpu_rate:.0f} per CPU second)"


async def through_queue(stage: object, texts: list[str]) -> float:
    from bot.screening_queue import SemanticQueue

    queue = SemanticQueue(stage)  # type: ignore[arg-type]
    started = time.perf_counter()
    try:
        await asyncio.gather(*(queue.score(text) for text in texts))
    finally:
        queue.close()
    return len(texts) / (time.perf_counter() - started)


def devset_figures(stage: object, path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    hits = stage.score_many([row["text"] for row in rows])  # type: ignore[attr-defined]
    flagged = [row["flagged"] for row in rows]
    predicted = [hit is not None for hit in hits]
    tp = sum(p and g for p, g in zip(predicted, flagged, strict=True))
    urgent = [row.get("severity") == "urgent" for row in rows]
    urgent_tp = sum(p and u for p, u in zip(predicted, urgent, strict=True))
    right_category = sum(
        1
        for hit, row in zip(hits, rows, strict=True)
        if hit is not None and row["flagged"] and hit.category in row.get("categories", [])
    )
    recall = tp / max(1, sum(flagged))
    precision = tp / max(1, sum(predicted))
    print(f"stage 2 alone on {path} ({len(rows)} messages, {sum(flagged)} disclosures):")
    print(f"  recall {recall:.3f}  precision {precision:.3f}  ", end="")
    print(f"F1 {2 * precision * recall / max(1e-9, precision + recall):.3f}")
    print(f"  urgent recall {urgent_tp / max(1, sum(urgent)):.3f}  ", end="")
    print(f"right category among true hits {right_category / max(1, tp):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--devset", type=Path)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})

    before = rss_mb()
    started = time.perf_counter()
    from moderation.semantic import SemanticStage

    stage = SemanticStage.load()
    if stage is None:
        sys.exit("the semantic extra is not installed: pip install -e '.[semantic]'")
    load_seconds = time.perf_counter() - started
    print(f"load (imports, weights, {stage.example_count} examples): {load_seconds:.2f} s")
    print(f"resident memory: {before:.0f} MB before, {rss_mb():.0f} MB after load")

    texts = messages(args.messages)
    stage.clear_cache()
    print(f"survey mix, batches of {args.batch}: {timed(stage, texts, args.batch)}")
    free = messages(args.messages, seed=11)
    free = [text for text in free if text not in SHORT]
    stage.clear_cache()
    print(f"free text only (no repeats): {timed(stage, free, args.batch)}")
    stage.clear_cache()
    rate = asyncio.run(through_queue(stage, texts))
    print(f"survey mix through SemanticQueue, all at once: {rate:.0f} msg/s")
    print(f"resident memory after the runs: {rss_mb():.0f} MB")
    # The synthetic mix is everyday chatter: every hit on it is a false alarm.
    chatter = [text for text in texts if len(text.split()) >= 3]
    alarms = [hit for hit in stage.score_many(chatter) if hit is not None]
    print(f"hits on everyday chatter of 3+ words (false alarms): {len(alarms)} of {len(chatter)}")
    if args.devset:
        devset_figures(stage, args.devset)


if __name__ == "__main__":
    main()
