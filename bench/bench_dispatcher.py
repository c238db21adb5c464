"""Dispatcher + engine + storage under load, no network.

Simulated young people take the shipped bullying survey through the real
dispatcher (screening, engine, repository, SQLite or PostgreSQL). Three runs:

  throughput  N respondents answering back to back (closed loop): answers/s
  latency     500 respondents answering at a human-like pace: p50/p99 per answer
  memory      10,000 conversations left mid-survey: resident memory

    .venv/bin/python bench/bench_dispatcher.py [--database-url URL] [--respondents N]

The process pins itself to one CPU core so the figures are per core.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine

from bot.catalogue import Catalogue
from bot.dispatcher import Dispatcher
from bot.messages import InboundMessage
from config.settings import SHIPPED_SURVEYS_DIR
from moderation.screen import screen
from storage.batching import WriteBatcher
from storage.clock import utcnow
from storage.db import WalCheckpointer, create_db_engine, migrate
from storage.repository import Repository
from surveys.events import Say
from tests.fakes.respondent import SimulatedRespondent, finished

SURVEY_ID = "bullying"


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Timed:
    """Wraps the dispatcher and keeps the latency of every message."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.latencies: list[float] = []

    async def handle(self, inbound: InboundMessage) -> tuple[Say, ...]:
        started = time.perf_counter()
        outputs = await self.dispatcher.handle(inbound)
        self.latencies.append(time.perf_counter() - started)
        return outputs


def answers_sent(people: list[SimulatedRespondent]) -> int:
    # every message after the opening /start answers something
    return sum(person.sent - 1 for person in people)


def build(
    database_url: str, workers: int
) -> tuple[Dispatcher, WriteBatcher, Engine, WalCheckpointer | None]:
    """The dispatcher as web/app.py builds it (SQLite WAL checkpoints in the background)."""
    migrate(database_url)
    engine = create_db_engine(database_url, background_checkpoints=True)
    checkpointer = WalCheckpointer(engine) if engine.dialect.name == "sqlite" else None
    if checkpointer is not None:
        checkpointer.start()
    repository = Repository(engine)
    catalogue = Catalogue(repository)
    catalogue.load_directory(SHIPPED_SURVEYS_DIR)
    catalogue.refresh(utcnow())
    writes = WriteBatcher(repository, workers=workers)
    dispatcher = Dispatcher(catalogue=catalogue, secret=b"b" * 32, writes=writes)
    screen("warm up the screening rules")  # as web/app.py does at start-up
    gc.collect()
    gc.freeze()  # as web/app.py does once started
    return dispatcher, writes, engine, checkpointer


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(label: str, timed: Timed, people: list[SimulatedRespondent], elapsed: float) -> None:
    latencies = timed.latencies
    done = sum(finished(person.last) for person in people)
    answers = answers_sent(people)
    print(
        f"{label}: {len(people)} respondents, {done} completed, {answers:,} answers in "
        f"{elapsed:.2f}s = {answers / elapsed:,.0f} answers/s; per message "
        f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


async def throughput(dispatcher: Dispatcher, respondents: int) -> None:
    timed = Timed(dispatcher)
    people = [
        SimulatedRespondent(timed, f"throughput-{n}", keep_transcript=False)
        for n in range(respondents)
    ]
    started = time.perf_counter()
    await asyncio.gather(*(person.take_survey(SURVEY_ID) for person in people))
    report("throughput (back to back)", timed, people, time.perf_counter() - started)


async def latency(dispatcher: Dispatcher, respondents: int, think: tuple[float, float]) -> None:
    timed = Timed(dispatcher)
    people = [
        SimulatedRespondent(timed, f"latency-{n}", keep_transcript=False)
        for n in range(respondents)
    ]
    started = time.perf_counter()
    await asyncio.gather(*(person.take_survey(SURVEY_ID, think=think) for person in people))
    report(f"latency (think {think[0]}-{think[1]} s)", timed, people, time.perf_counter() - started)


async def memory(dispatcher: Dispatcher, conversations: int) -> None:
    before = rss_mb()
    for batch in range(0, conversations, 500):
        people = [
            SimulatedRespondent(dispatcher, f"memory-{n}", keep_transcript=False)
            for n in range(batch, min(batch + 500, conversations))
        ]
        await asyncio.gather(*(person.take_survey(SURVEY_ID, stop_after=4) for person in people))
    print(
        f"memory: {conversations:,} conversations in progress; resident memory "
        f"{rss_mb():.0f} MB (was {before:.0f} MB before they started); "
        f"respondent locks held afterwards: {len(dispatcher.locks)}"
    )


async def main_async(args: argparse.Namespace) -> None:
    url = args.database_url
    temp = None
    if not url:
        temp = tempfile.TemporaryDirectory()
        url = f"sqlite:///{temp.name}/bench.db"
    workers = 1 if url.startswith("sqlite") else 4  # as web/app.py
    dispatcher, writes, engine, checkpointer = build(url, workers)
    print(f"database: {url.split('@')[-1]}; CPU affinity: {sorted(os.sched_getaffinity(0))}")
    try:
        if "throughput" in args.runs:
            await throughput(dispatcher, args.respondents)
        if "latency" in args.runs:
            await latency(dispatcher, 500, (args.think_min, args.think_max))
        if "memory" in args.runs:
            await memory(dispatcher, args.conversations)
    finally:
        writes.close()
        if checkpointer is not None:
            checkpointer.stop()
        engine.dispose()
        if temp:
            temp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--respondents", type=int, default=500)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--think-min", type=float, default=0.5)
    parser.add_argument("--think-max", type=float, default=1.5)
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["throughput", "latency", "memory"],
        choices=["throughput", "latency", "memory"],
    )
    parser.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    args = parser.parse_args()
    if not args.all_cores:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
