"""A broadcast to 100,000 subscribers through the durable outbox and a fake Bot API.

This process is the sender (`bot.broadcasts.BroadcastSender`: claim rows, send through
python-telegram-bot, record outcomes; the database thread too), pinned to ONE CPU core.
The fake Bot API runs in a child process on another core when there is one.

(a) At the default limit (25 messages/s) for a minute: the achieved rate over the 60
    seconds after the first send (target: within 2% of 25/s).
(b) With the limit lifted, the rest of the broadcast: messages/s overall and in the
    slowest 10-second window (target: at least 1,000/s on one core).

    .venv/bin/python bench/bench_broadcast.py [--subscribers 100000] [--limited-seconds 60]
        [--postgres | --database-url URL]

Also printed: the time to queue the 100,000 invitations (`enqueue_due_broadcasts`), and
CPU seconds of this process (on a shared, busy machine CPU time is the better guess at
what an idle core would do; wall-clock rates are what the figures above are).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from bot.broadcasts import BroadcastSender, enqueue_due_broadcasts  # noqa: E402
from bot.relay import seal_handle  # noqa: E402
from bot.telegram.sender import TokenBucket  # noqa: E402
from bot.telegram.setup import build_application  # noqa: E402
from config.settings import Settings  # noqa: E402
from storage.batching import WriteBatcher  # noqa: E402
from storage.clock import utcnow  # noqa: E402
from storage.db import create_db_engine, migrate  # noqa: E402
from storage.pseudonyms import pseudonym  # noqa: E402
from storage.repository import Repository  # noqa: E402
from storage.tables import campaigns, respondents  # noqa: E402
from storage.tables_broadcasts import broadcast_sends, subscribers  # noqa: E402
from surveys.broadcasting import QuietHours  # noqa: E402
from tests.telegram.fake_bot_api import BOT_USERNAME, TOKEN  # noqa: E402

SECRET = b"bench-broadcast-secret-0123456789abcdefghij"
FIRST_CHAT = 500_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_fake(port: int) -> None:
    """Child process: the fake Bot API until killed (keeps no chat history: 100k chats)."""
    from tests.telegram.fake_bot_api import FakeBotApi

    class LeanFake(FakeBotApi):
        def _send_message(self, params: dict) -> dict:  # type: ignore[override]
            self.calls.clear()  # the bench counts in the sender; don't grow without end
            return {"message_id": 1, "date": 0, "chat": {"id": int(params["chat_id"])}}

    async def main() -> None:
        await LeanFake().start(port)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_fake(port: int, core: int | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--serve-fake", str(port)],
        preexec_fn=(lambda: os.sched_setaffinity(0, {core})) if core is not None else None,
    )


def populate(repository: Repository, count: int) -> None:
    """`count` opted-in subscribers (sealed addresses) and an open campaign."""
    now = utcnow()
    batch = 5000

    def campaign(uow) -> None:  # type: ignore[no-untyped-def]
        uow.connection.execute(
            insert(campaigns).values(
                code="bench-broadcast",
                survey_id="bullying",
                survey_version=1,
                title="Bench",
                status="open",
                opens_at=now - timedelta(minutes=1),
                created_at=now,
                audience_json="{}",
                invitation_text="A new survey is open: tell us what you think.",
                reminder_times_json="[]",
                send_spread_minutes=0,
                updated_at=now,
            )
        )

    repository.run(campaign)
    for start in range(0, count, batch):
        chats = range(FIRST_CHAT + start, FIRST_CHAT + min(count, start + batch))

        def work(uow, chats=chats) -> None:  # type: ignore[no-untyped-def]
            ids = uow.connection.execute(
                insert(respondents).returning(respondents.c.id),
                [
                    {
                        "pseudonym": pseudonym(SECRET, "telegram", str(chat)),
                        "channel": "telegram",
                        "created_at": now,
                        "last_seen_at": now,
                    }
                    for chat in chats
                ],
            ).scalars()
            uow.connection.execute(
                insert(subscribers),
                [
                    {
                        "respondent_id": rid,
                        "channel": "telegram",
                        "address": seal_handle(SECRET, "telegram", str(chat)),
                        "subscribed_at": now,
                        "unsubscribed_at": None,
                    }
                    for rid, chat in zip(ids, chats, strict=True)
                ],
            )

        repository.run(work)


class Recorder:
    """Wraps `Bot._post` to note when each send was answered."""

    def __init__(self, bot) -> None:  # type: ignore[no-untyped-def]
        self.times: list[float] = []
        original = bot._post

        async def post(endpoint: str, data=None, *args, **kwargs):  # type: ignore[no-untyped-def]
            result = await original(endpoint, data, *args, **kwargs)
            if endpoint == "sendMessage":
                self.times.append(time.monotonic())
            return result

        bot._post = post


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu() -> float:
    times = os.times()
    return times.user + times.system


async def run(args: argparse.Namespace, url: str) -> None:
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[0]})
    port = free_port()
    fake = start_fake(port, cores[1] if len(cores) > 1 else None)
    engine = create_db_engine(url)
    repository = Repository(engine)
    writes = WriteBatcher(repository, workers=1 if engine.dialect.name == "sqlite" else 4)
    application = build_application(
        Settings(  # type: ignore[call-arg]
            telegram_token=TOKEN, telegram_api_url=f"http://127.0.0.1:{port}/bot"
        )
    )
    try:
        print(f"database: {engine.dialect.name}; sender pinned to core {cores[0]}")
        started = time.perf_counter()
        await asyncio.to_thread(populate, repository, args.subscribers)
        print(f"{args.subscribers:,} subscribers made in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        report = await asyncio.to_thread(
            enqueue_due_broadcasts,
            repository,
            utcnow(),
            Settings(broadcast_quiet_hours="", secret_key="x" * 40),  # type: ignore[call-arg]
        )
        print(
            f"queued {report.invitations:,} invitations in "
            f"{time.perf_counter() - started:.1f} s (enqueue_due_broadcasts)"
        )
        for _ in range(100):
            try:
                await application.initialize()
                break
            except Exception:
                await asyncio.sleep(0.1)
        recorder = Recorder(application.bot)
        quiet = QuietHours.parse("", "Europe/London")

        # (a) the default limit, for a minute
        limited = BroadcastSender(
            application.bot,
            writes,
            secret=SECRET,
            rate=25.0,
            quiet=quiet,
            budget=TokenBucket(30.0, 30.0),  # the replies' bucket it shares
            bot_username=BOT_USERNAME,
        )
        task = asyncio.create_task(limited.run())
        while not recorder.times:
            await asyncio.sleep(0.01)
        first = recorder.times[0]
        await asyncio.sleep(max(0.0, first + args.limited_seconds + 0.5 - time.monotonic()))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        window = [t for t in recorder.times if first <= t < first + args.limited_seconds]
        rate = len(window) / args.limited_seconds
        print(
            f"(a) limit 25/s: {len(window)} sent in {args.limited_seconds:.0f} s = {rate:.2f}/s "
            f"({100 * (rate - 25) / 25:+.2f}% of the limit; target within 2%)"
        )

        # (b) no limit: the rest of the broadcast
        recorder.times.clear()
        unlimited = BroadcastSender(
            application.bot,
            writes,
            secret=SECRET,
            rate=None,
            quiet=quiet,
            bot_username=BOT_USERNAME,
        )

        def queued(uow):  # type: ignore[no-untyped-def]
            return uow.connection.execute(
                select(func.count())
                .select_from(broadcast_sends)
                .where(broadcast_sends.c.status == "queued")
            ).scalar_one()

        target = repository.run(queued)
        cpu_before, wall_before = cpu(), time.perf_counter()
        task = asyncio.create_task(unlimited.run())
        while len(recorder.times) < target and not task.done():
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        wall = time.perf_counter() - wall_before
        used = cpu() - cpu_before
        sent = len(recorder.times)
        worst = slowest_window(recorder.times, 10.0)
        print(
            f"(b) no limit: {sent:,} sent in {wall:.1f} s = {sent / wall:,.0f}/s overall; "
            f"slowest 10 s window {worst:,.0f}/s; CPU {used:.1f} s = "
            f"{sent / used if used else 0:,.0f} messages per CPU second (target 1,000/s)"
        )

        def counts(uow):  # type: ignore[no-untyped-def]
            return dict(
                uow.connection.execute(
                    select(broadcast_sends.c.status, func.count()).group_by(
                        broadcast_sends.c.status
                    )
                ).all()
            )

        print(f"rows by status: {repository.run(counts)}")
        print(f"fake Bot API process: {process_cpu(fake.pid):.1f} CPU s in all")
        print("(the machine is shared with other work: wall-clock figures are noisy)")
    finally:
        fake.kill()
        fake.wait()
        writes.close()
        await application.shutdown()
        engine.dispose()


def slowest_window(times: list[float], seconds: float) -> float:
    """The lowest rate over any full `seconds` window between the first and last send."""
    if not times or times[-1] - times[0] < seconds:
        return len(times) / max(times[-1] - times[0], 1e-9) if len(times) > 1 else 0.0
    worst = float("inf")
    end = 0
    for start, at in enumerate(times):
        if at + seconds > times[-1]:
            break
        while end < len(times) and times[end] < at + seconds:
            end += 1
        worst = min(worst, (end - start) / seconds)
    return worst


@contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    if args.database_url:
        migrate(args.database_url)
        yield args.database_url
        return
    if args.postgres:
        from tests.db_fixtures import _postgres_bindir, _throwaway_cluster

        bindir = _postgres_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL server binaries found")
        with _throwaway_cluster(bindir) as server:
            url = server.create_database("besafe_bench_broadcast")
            migrate(url)
            yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="besafe-bench-broadcast-"))
    try:
        url = f"sqlite:///{folder / 'besafe.db'}"
        migrate(url)
        yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-fake":
        serve_fake(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--limited-seconds", type=float, default=60.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL")
    args = parser.parse_args()
    with database(args) as url:
        asyncio.run(run(args, url))


if __name__ == "__main__":
    main()
