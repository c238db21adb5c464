"""A campaign's live progress (the page polls it every 10 s): SQL counts + suppression.

Generates one campaign with about N answers (bench_reports' generator: the shipped
bullying survey, about one in ten respondents stopping part-way), then times
`storage.campaign_progress.progress_counts` (every GROUP BY, the drop-out window
function) and `surveys.progress.build_progress` several times and prints the figures.

    .venv/bin/python bench/bench_campaign_progress.py [--answers N]
                     [--backend sqlite|postgresql|both] [--runs R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_reports import CODE, database, generate
from storage.campaign_progress import progress_counts
from storage.db import create_db_engine, migrate
from storage.repository import Repository
from storage.review import read
from surveys.progress import build_progress


def time_progress(url: str, runs: int) -> tuple[list[float], list[float], dict]:
    engine = create_db_engine(url)
    repository = Repository(engine)
    counts_times, total_times = [], []
    shown: dict = {}
    try:
        for _ in range(runs):
            started = time.perf_counter()
            counts = read(repository, lambda c: progress_counts(c, CODE))
            counted = time.perf_counter()
            shown = build_progress(counts, threshold=5)
            done = time.perf_counter()
            counts_times.append(counted - started)
            total_times.append(done - started)
    finally:
        engine.dispose()
    return counts_times, total_times, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        with database(backend, None) as url:
            migrate(url)
            made = generate(url, args.answers)
            counts_times, total_times, shown = time_progress(url, args.runs)
            print(
                f"{backend}: {made:,} answers, {shown['started']:,} started, "
                f"{shown['completed']:,} completed; progress counts median "
                f"{statistics.median(counts_times):.3f} s (min {min(counts_times):.3f}, max "
                f"{max(counts_times):.3f}); with suppression median "
                f"{statistics.median(total_times):.3f} s over {args.runs} runs; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
