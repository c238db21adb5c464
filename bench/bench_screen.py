"""Disclosure detector throughput and quality, pinned to one core.

    .venv/bin/python bench/bench_screen.py [--rounds N] [--skip-classify]

Prints:
  - messages/s through stage 1 (rules) on the development-set messages (target >= 5,000/s);
  - messages/s through Detector with both stages, batched (target >= 200/s), when stage 2 is
    installed (`pip install -e '.[semantic]'`);
  - `python main.py classify` end to end on 1,000 lines (target < 30 s with both stages);
  - worst-case stage-1 time on long and hostile messages up to 100,000 characters;
  - recall / precision / urgent recall of each stage alone and together on the dev sets.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.detector import Detector, load_semantic_stage  # noqa: E402
from moderation.evaluate import DEVSET, evaluate, load_devset  # noqa: E402
from moderation.screen import ScreenContext, screen  # noqa: E402

HOLDOUTS = [DEVSET.with_name(f"devset_holdout{n}.jsonl") for n in ("", "2", "3", "4")]

HOSTILE = {
    "100k plain words": "ok so " * 16_667,
    "100k one repeated disclosure": "i want to die " * 7_143,
    "100k family words (many rule tries)": "my dad and my mum " * 5_556,
    "100k spaced letters": "k i l l " * 12_500,
    "100k Cyrillic look-alikes": "кill мysеlf " * 8_334,
    "100k emoji": "💊🔪😭 " * 25_000,
    "100k one letter": "a" * 100_000,
    "100k negations and markers": "not never tonight pills " * 4_167,
}


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} messages/s ({count} in {seconds:.2f} s)"


def bench_stage_1(texts: list[str], rounds: int) -> None:
    screen("warm up")
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        for text in texts:
            screen(text, ScreenContext())
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    count = len(texts) * rounds
    print(f"stage 1 (rules): {rate(count, wall)}; by CPU time {count / cpu:,.0f} messages/s")


def bench_hostile() -> None:
    print("stage 1 on long and hostile messages (one each):")
    for name, text in HOSTILE.items():
        text = text[:100_000]
        start = time.perf_counter()
        screen(text)
        print(f"  {name:<40} {len(text):>7} chars  {1000 * (time.perf_counter() - start):7.0f} ms")


def bench_both(texts: list[str], semantic: object) -> None:
    detector = Detector(semantic)  # type: ignore[arg-type]
    detector.screen_many([("warm up", ScreenContext())])
    items = [(text, ScreenContext()) for text in texts]
    clear = getattr(semantic, "clear_cache", None)
    if clear is not None:
        clear()  # every message new to the embedding cache, as on first sight
    start, cpu = time.perf_counter(), time.process_time()
    for offset in range(0, len(items), 64):
        detector.screen_many(items[offset : offset + 64])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"both stages, batches of 64: {rate(len(items), wall)}; "
        f"by CPU time {len(items) / cpu:,.0f} messages/s"
    )


def bench_classify(texts: list[str], rules_only: bool) -> None:
    lines = [json.dumps({"id": i, "text": texts[i % len(texts)]}) for i in range(1000)]
    args = [sys.executable, str(ROOT / "main.py"), "classify"]
    if rules_only:
        args.append("--rules-only")
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        args, input="\n".join(lines) + "\n", capture_output=True, text=True, cwd=ROOT
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    answered = len(result.stdout.splitlines())
    which = "rules only" if rules_only else "both stages when installed"
    print(
        f"main.py classify, 1,000 lines ({which}): {seconds:.1f} s end to end "
        f"incl. start-up ({cpu:.1f} s CPU, {1000 / cpu:,.0f} lines per CPU second), "
        f"{answered} answers, exit {result.returncode}"
    )


def quality(semantic: object | None) -> None:
    for path in (DEVSET, *HOLDOUTS):
        items = load_devset(path)
        runs = [("stage 1", Detector(None))]
        if semantic is not None:
            runs.append(("stage 2", Detector(semantic, rules=False)))  # type: ignore[arg-type]
            runs.append(("both", Detector(semantic)))  # type: ignore[arg-type]
        for name, detector in runs:
            report = evaluate(detector, items, name)
            o = report.overall
            print(
                f"{path.name:<22} {name:<8} recall {o.recall:.3f}  precision {o.precision:.3f}  "
                f"F1 {o.f1:.3f}  urgent recall {report.urgent_recall:.3f}  "
                f"(FP {o.fp}, FN {o.fn})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--skip-classify", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    texts = [item.text for item in load_devset()]
    print(f"{len(texts)} dev-set messages, mean {sum(map(len, texts)) / len(texts):.0f} chars")
    bench_stage_1(texts, args.rounds)
    bench_hostile()
    semantic = load_semantic_stage()
    if semantic is None:
        print("stage 2 not installed: both-stage figures skipped")
    else:
        bench_both(texts, semantic)
    if not args.skip_classify:
        bench_classify(texts, rules_only=True)
        bench_classify(texts, rules_only=False)
    quality(semantic)


if __name__ == "__main__":
    main()
