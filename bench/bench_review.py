"""The review queue's reads under load: the queue, a flag page, the web chat's poll for
staff replies, the live feed's poll and the alert job's planning.

Generates respondents with messages, a number of open flags (some with a staff
conversation), then times each read many times and prints p50/p99 in ms.

    .venv/bin/python bench/bench_review.py [--respondents N] [--flags N] [--database-url URL]

The chat poll runs for every open web chat page every few seconds, and the live
feed poll once a second per server: both must stay well under a millisecond or two.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from config.settings import Settings
from storage import review as store
from storage.clock import utcnow
from storage.db import create_db_engine, migrate
from storage.pseudonyms import pseudonym
from storage.repository import Repository
from storage.tables import flag_messages, flags, messages, respondents
from web.staff.alerts import AlertJob

SECRET = b"bench-review-secret-0123456789abcdef"
SEVERITIES = ("urgent", "high", "medium")


def populate(repository: Repository, people: int, open_flags: int, rng: random.Random) -> None:
    now = utcnow()
    with repository.engine.begin() as connection:
        connection.execute(
            insert(respondents),
            [
                {
                    "pseudonym": pseudonym(SECRET, "web", f"user-{i}"),
                    "channel": "web",
                    "created_at": now,
                    "last_seen_at": now,
                }
                for i in range(people)
            ],
        )
        rows = []
        for i in range(people):
            for j in range(10):
                rows.append(
                    {
                        "respondent_id": i + 1,
                        "direction": "in",
                        "text": f"message {j} of {i}",
                        "created_at": now - timedelta(minutes=10 - j),
                    }
                )
        connection.execute(insert(messages), rows)
        flag_rows = []
        for _ in range(open_flags):
            person = rng.randrange(people)
            flag_rows.append(
                {
                    "respondent_id": person + 1,
                    "message_id": person * 10 + 5,
                    "severity": rng.choice(SEVERITIES),
                    "categories_json": json.dumps(["physical_abuse"]),
                    "evidence_json": json.dumps([{"category": "x", "start": 0, "end": 7}]),
                    "status": "open",
                    "contact_consent": True,
                    "relay_handle": "sealed",
                    "created_at": now - timedelta(minutes=rng.randrange(600)),
                }
            )
        connection.execute(insert(flags), flag_rows)
        # Half the flags have a staff conversation: a reply and an answer.
        links = []
        for k in range(1, open_flags + 1, 2):
            person = flag_rows[k - 1]["respondent_id"]
            for direction, author in (("out", "staff"), ("in", "young_person")):
                message_id = connection.execute(
                    insert(messages)
                    .values(respondent_id=person, direction=direction, text="x", created_at=now)
                    .returning(messages.c.id)
                ).scalar_one()
                links.append({"flag_id": k, "message_id": message_id, "author": author})
        connection.execute(insert(flag_messages), links)


def timed(name: str, runs: int, work: Callable[[], object]) -> None:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(
        f"{name:<34} p50 {statistics.median(samples):8.2f} ms   p99 {p99:8.2f} ms   ({runs} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--respondents", type=int, default=10_000)
    parser.add_argument("--flags", type=int, default=500)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(url)
        engine = create_db_engine(url)
        repository = Repository(engine)
        rng = random.Random(4)
        started = time.perf_counter()
        populate(repository, args.respondents, args.flags, rng)
        print(
            f"{engine.dialect.name}: {args.respondents:,} respondents, "
            f"{args.respondents * 10:,} messages, {args.flags:,} open flags "
            f"(made in {time.perf_counter() - started:.1f} s)"
        )

        def read(work: Callable) -> object:
            return store.read(repository, work)

        timed("queue (all open flags)", 50, lambda: read(store.open_queue))
        timed(
            "flag page (one flag, all parts)",
            200,
            lambda: read(lambda c: store.flag_detail(c, rng.randrange(1, args.flags + 1))),
        )
        keys = [pseudonym(SECRET, "web", f"user-{i}") for i in range(args.respondents)]
        timed(
            "web chat poll for staff replies",
            2000,
            lambda: read(lambda c: store.staff_replies_for(c, rng.choice(keys), 0)),
        )
        marks = read(store.current_marks)
        timed(
            "live feed poll (nothing new)",
            2000,
            lambda: read(lambda c: store.changes_since(c, marks)),
        )
        settings = Settings(data_dir=Path(folder), database_url=url, secret_key=SECRET.decode())
        job = AlertJob(repository, settings, None)
        timed(
            "alert job planning (steady state)",
            20,
            lambda: repository.run(lambda uow: job._plan(uow, utcnow() - timedelta(days=30))),
        )
        engine.dispose()


if __name__ == "__main__":
    main()
