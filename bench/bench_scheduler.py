"""The scheduler's cost on the event loop, and how fast its leader gets through due jobs.

APScheduler's AsyncIOScheduler reads and writes its job store on the event loop, so each
wake-up (every BESAFE_SCHEDULER_LEADER_RETRY_SECONDS, and at every due job) blocks the loop
for one query. This times that query with a realistic store (the app's periodic jobs plus
N one-off jobs in the future, e.g. campaign opens and reminders), then stores M one-off jobs
due now and times how long the leader takes to run them all.

    .venv/bin/python bench/bench_scheduler.py [--future N] [--due M] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.scheduler import JobScheduler
from storage.db import create_db_engine, migrate


async def bench(url: str, future: int, due: int) -> None:
    migrate(url)
    engine = create_db_engine(url)
    scheduler = JobScheduler.for_url(url, retry_seconds=0.05)
    scheduler.bind(engine)
    done = asyncio.Event()
    ran = 0

    async def handler(*_: object) -> None:
        nonlocal ran
        ran += 1
        if ran == due:
            done.set()

    async def periodic() -> None:
        return None

    for name, seconds in (("a", 30), ("b", 600), ("c", 600), ("d", 3600)):
        scheduler.every(name, seconds, periodic, grace=60, coalesce=True)
    scheduler.handle("one-off", handler)
    later = datetime.now(UTC) + timedelta(days=1)
    started = time.perf_counter()
    for i in range(future):
        await scheduler.at(f"future:{i}", later + timedelta(seconds=i), "one-off", i, grace=60)
    stored = time.perf_counter() - started
    print(f"stored {future} one-off jobs: {future / stored:,.0f} jobs/s")

    store = scheduler.store
    wake = []
    for _ in range(200):
        t = time.perf_counter()
        store.get_due_jobs(datetime.now(UTC))
        store.get_next_run_time()
        wake.append((time.perf_counter() - t) * 1000)
    wake.sort()
    print(
        f"one wake-up with nothing due (loop blocked): p50 {statistics.median(wake):.2f} ms, "
        f"p99 {wake[int(len(wake) * 0.99) - 1]:.2f} ms"
    )

    # Due now, stored while no leader runs (as after an outage): timed from the start.
    now = datetime.now(UTC)
    for i in range(due):
        await scheduler.at(f"due:{i}", now, "one-off", i, grace=3600)
    started = time.perf_counter()
    scheduler.start()
    await asyncio.wait_for(done.wait(), timeout=600)
    took = time.perf_counter() - started
    print(f"leader start + {due} due one-off jobs run and removed: {took:.2f} s")
    await scheduler.stop()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--future", type=int, default=2000)
    parser.add_argument("--due", type=int, default=500)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        print(f"database: {url.split(':')[0]}")
        asyncio.run(bench(url, args.future, args.due))


if __name__ == "__main__":
    main()
