"""Telegram webhook end to end: HTTP in, engine, storage, replies sent to a fake Bot API.

The server is the real thing (`python main.py run`, webhook mode, python-telegram-bot
sending to a fake Bot API on localhost), pinned to ONE CPU core. This process plays
Telegram: N simulated young people (default 200) take the shipped bullying survey
concurrently, each posting an update to the webhook and acting on the bot's replies
as they arrive at the fake Bot API (tap or type, as a person would), then starting
over as a new person when done. This process runs on another core when there is one.

Figures: updates/s acknowledged by the webhook over the measured window, and per
update the time from posting it until (a) the webhook answered, (b) the first reply
reached the fake API, (c) the last reply of that turn did: p50 and p99.

    .venv/bin/python bench/bench_telegram.py [--users 200] [--seconds 20] [--postgres]
        [--database-url URL] [--log-level INFO] [--rate UPDATES_PER_S] [--rules-only]

Rate limits are off (Telegram's 30 messages/s would cap the figure at ~15 updates/s):
this measures the server, not Telegram's allowance.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from tests.telegram.fake_bot_api import (  # noqa: E402
    TOKEN,
    Call,
    FakeBotApi,
    callback_update,
    message_update,
)
from tests.telegram.harness import FREE_TEXT_ANSWER, NON_ANSWERS, THANKS, parse_button  # noqa: E402

HOOK_PATH = "/telegram/bench-hook"
HOOK_SECRET = "bench_secret_0123456789"
SURVEY_ID = "bullying"
QUIET = 1.0  # seconds without a new message that end a turn with no buttons
# BENCH_PROFILE=out.prof runs the server under cProfile (figures are then meaningless).
PROFILE = (
    ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if "BENCH_PROFILE" in os.environ else []
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a process."""
    found: dict[str, float] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = "main" if task == str(pid) else f"thread {task}"
        fields = text.rpartition(")")[2].split()
        found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf(
            "SC_CLK_TCK"
        )
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


@dataclass
class Shown:
    text: str
    buttons: list[dict]
    at: float


@dataclass
class Stats:
    measuring: bool = False
    acked: int = 0
    failed: int = 0
    completed: int = 0
    ack: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)


class Person:
    """One simulated young person in a private chat, posting to the webhook."""

    ids = itertools.count(700_000_000)
    message_ids = itertools.count(1)

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.new_chat()

    def new_chat(self) -> None:
        # The last chat's late replies (the menu, the news offer after the thanks) must not
        # land in the new chat: tapping them there is refused (their buttons are signed for
        # the old chat), which stalled that person until the turn timed out.
        if hasattr(self, "chat_id"):
            self.bench.people.pop(self.chat_id, None)
        self.chat_id = next(self.ids)
        self.shown: list[Shown] = []
        self.arrived = asyncio.Event()
        self.bench.people[self.chat_id] = self

    def receive(self, call: Call) -> None:
        params = call.params
        markup = params.get("reply_markup") or {}
        buttons = [b for row in markup.get("inline_keyboard", []) for b in row]
        self.shown.append(Shown(str(params.get("text", "")), buttons, time.perf_counter()))
        self.arrived.set()

    async def turn(self, update: dict, limit: float = 10.0) -> None:
        bench, stats = self.bench, self.bench.stats
        before = len(self.shown)
        measuring = stats.measuring
        started = time.perf_counter()
        update = {"update_id": next(bench.update_ids), **update}
        async with bench.session.post(
            bench.hook_url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET}
        ) as response:
            await response.read()
            ok = response.status == 200
        acked = time.perf_counter()
        if not ok:
            stats.failed += 1
            await asyncio.sleep(0.1)
            return
        # The turn is over at a message with buttons, or once replies stop coming.
        while True:
            if len(self.shown) > before and self.shown[-1].buttons:
                break
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), bench.quiet)
            except TimeoutError:
                if len(self.shown) > before:
                    break
                if time.perf_counter() - started > limit:
                    stats.failed += 1
                    return
        if measuring and stats.measuring:
            stats.acked += 1
            stats.ack.append(acked - started)
            stats.first.append(self.shown[before].at - started)
            stats.last.append(self.shown[-1].at - started)

    async def pause(self) -> None:
        """With --rate: a person's pause before each message (exponential, so messages
        arrive as a Poisson stream of about `rate` per second from all users together)."""
        if self.bench.rate:
            await asyncio.sleep(random.expovariate(self.bench.rate / self.bench.users))

    async def run(self, stop: asyncio.Event) -> None:
        previous: str | None = None
        await self.pause()
        await self.turn(message_update(self.chat_id, text=f"/start {SURVEY_ID}-v1"))
        while not stop.is_set():
            await self.pause()
            if any(THANKS[SURVEY_ID] in shown.text for shown in self.shown[-3:]):
                self.bench.stats.completed += 1
                self.new_chat()
                previous = None
                await self.turn(message_update(self.chat_id, text=f"/start {SURVEY_ID}-v1"))
                continue
            last = self.shown[-1] if self.shown else Shown("", [], 0)
            update = self.next_update(last, previous)
            previous = last.text
            await self.turn(update)

    def next_update(self, last: Shown, previous: str | None) -> dict:
        buttons = [(b, *parse_button(b)) for b in last.buttons]
        answers = [(b, q, v) for b, q, v in buttons if v not in NON_ANSWERS]
        text: str | None = None
        tap: dict | None = None
        if any(v == "__done__" for _, _, v in buttons):
            text = "1 and 2"
        elif answers:
            pick = next((b for b, q, v in answers if q == "school_year" and v == "y8"), None)
            tap = pick or answers[0][0]
        elif previous is not None and last.text == previous:
            text = "2"
        else:
            text = FREE_TEXT_ANSWER
        if tap is not None:
            from tests.telegram.fake_bot_api import Shown as FakeShown

            markup = {"inline_keyboard": [[b] for b in last.buttons]}
            shown = FakeShown(len(self.shown), last.text, markup)
            return callback_update(self.chat_id, shown, str(tap["callback_data"]))
        return message_update(self.chat_id, text=text, message_id=next(self.message_ids))


@dataclass
class Bench:
    hook_url: str
    session: aiohttp.ClientSession
    stats: Stats = field(default_factory=Stats)
    people: dict[int, Person] = field(default_factory=dict)
    update_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    rate: float = 0.0  # offered updates/s from all users together; 0: no pauses (saturation)
    users: int = 1
    # Seconds without a new message that end a turn with no buttons. Under saturation replies
    # come late: too short a wait ends turns early and people answer stale questions (typed
    # text to a choice, refused and asked again), which inflates updates/s with cheap turns.
    quiet: float = QUIET

    def on_call(self, call: Call) -> None:
        if call.method == "sendMessage":
            person = self.people.get(int(call.params.get("chat_id", 0)))
            if person is not None:
                person.receive(call)


def start_server(
    data_dir: Path,
    api: FakeBotApi,
    port: int,
    database_url: str,
    core: int,
    log_level: str,
    rules_only: bool = False,
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BESAFE_")}
    env.update(
        BESAFE_DATA_DIR=str(data_dir),
        BESAFE_DATABASE_URL=database_url,
        BESAFE_PORT=str(port),
        BESAFE_SECRET_KEY="bench-secret-key-0123456789abcdefghijklmnop",
        BESAFE_TELEGRAM_TOKEN=TOKEN,
        BESAFE_TELEGRAM_API_URL=api.base_url,
        BESAFE_TELEGRAM_MODE="webhook",
        BESAFE_TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}{HOOK_PATH}",
        BESAFE_TELEGRAM_WEBHOOK_PATH=HOOK_PATH,
        BESAFE_TELEGRAM_WEBHOOK_SECRET=HOOK_SECRET,
        BESAFE_TELEGRAM_RATE_PER_SECOND="0",
        BESAFE_TELEGRAM_CHAT_RATE_PER_SECOND="0",
        BESAFE_LOG_LEVEL=log_level,
        BESAFE_SEMANTIC="0" if rules_only else "1",
    )
    log = (data_dir / "server.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            *PROFILE,
            str(ROOT / "main.py"),
            "run",
        ],
        env=env,
        stdout=log,
        stderr=log,
        cwd=data_dir,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )


async def run(args: argparse.Namespace, database_url: str, data_dir: Path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    server_core = cores[0]
    driver_cores = set(cores[1:]) or {server_core}
    os.sched_setaffinity(0, driver_cores)
    api = await FakeBotApi().start()
    port = free_port()
    server = start_server(
        data_dir, api, port, database_url, server_core, args.log_level, args.rules_only
    )
    try:
        await api.wait_until(lambda: api.calls_to("setWebhook"), timeout=120, what="start-up")
        connector = aiohttp.TCPConnector(limit=args.users + 10)
        async with aiohttp.ClientSession(connector=connector) as session:
            bench = Bench(
                f"http://127.0.0.1:{port}{HOOK_PATH}",
                session,
                rate=args.rate,
                users=args.users,
                quiet=args.quiet,
            )
            api.listeners.append(bench.on_call)
            # The route answers 503 until the channel is ready (an empty update is ignored).
            for _ in range(1200):
                async with session.post(
                    bench.hook_url,
                    json={"update_id": 0},
                    headers={"X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET},
                ) as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise SystemExit("the webhook never became ready")
            # One typed message first: the screening rules load on the first one (seconds of
            # CPU on the database thread), which is start-up, not the steady state measured.
            warm = Person(bench)
            await warm.turn(message_update(warm.chat_id, text="hello, is anyone there?"), 120)
            if not warm.shown:
                raise SystemExit("the server never answered the warm-up message")
            bench.people.pop(warm.chat_id, None)
            stop = asyncio.Event()
            people = [Person(bench) for _ in range(args.users)]
            tasks = [asyncio.create_task(person.run(stop)) for person in people]
            await asyncio.sleep(args.warmup)
            api.calls.clear()
            bench.stats.measuring = True
            started = time.perf_counter()
            cpu_before = cpu_seconds(server.pid)
            driver_before = cpu_seconds(os.getpid())
            threads_before = thread_cpu(server.pid)
            await asyncio.sleep(args.seconds)
            bench.stats.measuring = False
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(server.pid) - cpu_before
            driver_cpu = cpu_seconds(os.getpid()) - driver_before
            threads = {
                name: seconds - threads_before.get(name, 0.0)
                for name, seconds in thread_cpu(server.pid).items()
            }
            stop.set()
            await asyncio.wait(tasks, timeout=15)
            for task in tasks:
                task.cancel()
            stats = bench.stats
            sends = sum(1 for call in api.calls if call.method == "sendMessage")
            print(
                f"database: {database_url.split('@')[-1] or 'sqlite (default)'}; server on core "
                f"{server_core}, driver and fake Bot API on {sorted(driver_cores)}; "
                f"{args.users} users; log level {args.log_level}; "
                + (f"offered about {args.rate:g} updates/s" if args.rate else "no pauses")
            )
            print(
                f"  driver (simulated users + fake Bot API) CPU {driver_cpu / elapsed:.0%} of a "
                "core: near 100% means the driver, not the server, sets the pace"
            )
            print(
                f"  {stats.acked:,} updates in {elapsed:.1f}s = {stats.acked / elapsed:,.0f} "
                f"updates/s ({sends / elapsed:,.0f} sendMessage/s); {stats.completed} surveys "
                f"completed ({stats.acked / max(1, stats.completed):.0f} updates each); "
                f"{stats.failed} failed or timed out; server CPU "
                f"{cpu / elapsed:.0%} of its core, {cpu / max(1, stats.acked) * 1000:.2f} ms "
                f"per update"
            )
            busy = sorted(threads.items(), key=lambda item: -item[1])[:4]
            print(
                "  server CPU by thread: "
                + ", ".join(
                    f"{name} {seconds / max(1, stats.acked) * 1000:.2f} ms/update"
                    for name, seconds in busy
                )
            )
            for label, values in (
                ("webhook answered", stats.ack),
                ("first reply at the API", stats.first),
                ("last reply at the API", stats.last),
            ):
                print(
                    f"  {label:<24} p50 {percentile(values, 0.5) * 1000:6.1f} ms   "
                    f"p99 {percentile(values, 0.99) * 1000:6.1f} ms"
                )
    finally:
        server.send_signal(2)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        await api.close()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    from tests.db_fixtures import _postgres_bindir, _throwaway_cluster

    bindir = _postgres_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL server binaries found")
    with _throwaway_cluster(bindir) as server:
        yield server.create_database("besafe_bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--quiet",
        type=float,
        default=QUIET,
        help="seconds of silence that end a turn with no buttons (raise it under saturation)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offered updates/s from all users together (each pauses between messages); "
        "default 0: nobody pauses, so the server is saturated and latency follows throughput",
    )
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL")
    parser.add_argument("--log-level", default="WARNING", choices=["INFO", "WARNING"])
    parser.add_argument(
        "--rules-only", action="store_true", help="screen without stage 2 (BESAFE_SEMANTIC=0)"
    )
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="besafe-bench-tg-"))
    try:
        if args.postgres:
            with throwaway_postgres() as url:
                asyncio.run(run(args, url, data_dir))
        else:
            asyncio.run(run(args, args.database_url, data_dir))
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"kept {data_dir}")


if __name__ == "__main__":
    main()
