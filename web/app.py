"""The composition root: `create_app(settings)` wires everything; nothing else does.

Resources (database engine, thread pool, background jobs) are opened and
closed by the application's cleanup context, so tests and `main.py run`
start and stop exactly the same thing.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.catalogue import Catalogue
from bot.dispatcher import Dispatcher
from bot.relay import Relay
from bot.scheduler import JobScheduler
from bot.screening_queue import SemanticQueue
from bot.telegram.setup import setup_telegram
from config.settings import Settings
from moderation.screen import screen
from moderation.semantic import SemanticStage
from storage.batching import WriteBatcher
from storage.clock import utcnow
from storage.db import WalCheckpointer, create_db_engine, migrate
from storage.repository import Repository
from storage.retention import run_retention
from web.broadcasts import broadcast_jobs
from web.chat import security_headers_middleware, setup_chat
from web.keys import DISPATCHER, RELAY, SCHEDULER, SETTINGS, WRITES
from web.staff import setup_staff
from web.staff.campaigns import campaign_sweep
from web.tasks import cancel_and_wait

log = logging.getLogger("besafe.app")

WEB_DIR = Path(__file__).resolve().parent
CATALOGUE = web.AppKey("catalogue", Catalogue)
REPOSITORY = web.AppKey("repository", Repository)

# How often open campaigns are re-read, and abandoned surveys marked partial.
CATALOGUE_REFRESH_SECONDS = 60.0
EXPIRY_SWEEP_SECONDS = 600.0
RETENTION_SECONDS = 3600.0  # storage/retention.py: what is kept only for a while
CAMPAIGN_SWEEP_SECONDS = 30.0


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=256 * 1024, middlewares=[security_headers_middleware])
    app[SETTINGS] = settings
    # Before the setups: any of them may declare a scheduled job (bot/scheduler.py).
    app[SCHEDULER] = JobScheduler.for_url(
        settings.effective_database_url, retry_seconds=settings.scheduler_leader_retry_seconds
    )
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app.router.add_static("/static", WEB_DIR / "static")
    app.router.add_get("/healthz", _health)
    app.cleanup_ctx.append(_core)
    setup_chat(app)
    setup_telegram(app)  # after _core: needs its dispatcher and write queue
    app.cleanup_ctx.append(broadcast_jobs)  # after Telegram: sends through its bot
    setup_staff(app)
    # Last: starts once every job is declared, stops before anything a job uses closes.
    app.cleanup_ctx.append(_scheduler)
    return app


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _core(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    url = settings.effective_database_url
    secret = settings.secret_bytes()
    await asyncio.to_thread(migrate, url)
    engine = create_db_engine(url, background_checkpoints=True)
    is_sqlite = engine.dialect.name == "sqlite"
    checkpointer = WalCheckpointer(engine) if is_sqlite else None
    if checkpointer is not None:
        checkpointer.start()
    # Conversation writes go through the group-commit batcher: SQLite has one
    # writer at a time, so one thread; PostgreSQL takes several. The executor
    # is for occasional maintenance work (catalogue, expiry sweep).
    executor = ThreadPoolExecutor(
        max_workers=1 if is_sqlite else 4, thread_name_prefix="besafe-jobs"
    )
    repository = Repository(engine)
    writes = WriteBatcher(repository, workers=1 if is_sqlite else 4)
    catalogue = Catalogue(repository)
    loop = asyncio.get_running_loop()
    report = await loop.run_in_executor(executor, catalogue.load_directory, settings.surveys_dir)
    offers = await loop.run_in_executor(executor, catalogue.refresh, utcnow())
    log.info(
        "surveys loaded",
        extra={
            "loaded": [f"{s.id} v{s.version}" for s in report.loaded],
            "refused_files": len(report.problems),
            "open_offers": [offer.code for offer in offers],
        },
    )
    # Compile the screening rules now: lazily, the first typed message would stall every
    # turn behind it for the seconds that takes.
    await loop.run_in_executor(executor, screen, "warm up the screening rules")
    semantic = await _semantic_queue(settings, loop, executor)
    app[REPOSITORY] = repository
    # Channels register their deliverers for staff replies (bot.relay) at start-up.
    app[RELAY] = Relay(secret)
    app[CATALOGUE] = catalogue
    app[DISPATCHER] = Dispatcher(
        catalogue=catalogue,
        secret=secret,
        writes=writes,
        max_message_chars=settings.max_message_chars,
        max_answer_chars=settings.max_answer_chars,
        semantic=semantic,
    )
    app[WRITES] = writes  # the Telegram channel (setup_telegram) starts after this
    timeout = timedelta(hours=settings.session_timeout_hours)
    # Per process: each process's in-memory offers.
    jobs = [
        _every(
            CATALOGUE_REFRESH_SECONDS,
            "catalogue refresh",
            lambda: loop.run_in_executor(executor, catalogue.refresh, utcnow()),
        ),
    ]
    # Cluster-wide, on the scheduler's leader. Grace of one interval and coalescing: sweeps
    # missed while no server ran are made up by one run at start; each is idempotent.
    scheduler = app[SCHEDULER]
    scheduler.every(
        "expiry-sweep",
        EXPIRY_SWEEP_SECONDS,
        lambda: repository.expire_stale_responses(utcnow() - timeout),
        grace=int(EXPIRY_SWEEP_SECONDS),
        coalesce=True,
    )
    scheduler.every(
        "retention",
        RETENTION_SECONDS,
        lambda: run_retention(repository),
        grace=int(RETENTION_SECONDS),
        coalesce=True,
    )
    # Campaigns open and close on time (issue 6). No grace: the sweep catches up to "now",
    # so running late is always better than skipping. It also refreshes this process's
    # offers at once; the others see the change at their next catalogue refresh.
    scheduler.every(
        "campaign-transitions",
        CAMPAIGN_SWEEP_SECONDS,
        lambda: campaign_sweep(repository, catalogue),
        grace=None,
        coalesce=True,
    )
    tasks = [asyncio.create_task(job) for job in jobs]
    # Everything made at start-up lives as long as the process: move it out of the
    # collector's reach, so full collections under load don't rescan it (tail latency).
    gc.collect()
    gc.freeze()
    log.info("ready", extra={"database": engine.dialect.name})
    try:
        yield
    finally:
        await cancel_and_wait(tasks)
        if semantic is not None:
            semantic.close()  # before the writes: a turn waits for stage 2, then writes
        writes.close()
        executor.shutdown(wait=True)
        if checkpointer is not None:
            checkpointer.stop()
        engine.dispose()
        log.info("stopped cleanly")


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    scheduler = app[SCHEDULER]
    scheduler.bind(app[REPOSITORY].engine)
    scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()


async def _semantic_queue(
    settings: Settings, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor
) -> SemanticQueue | None:
    """Stage 2 of screening when the setting allows and the extra is installed, else None."""
    stage = None
    if settings.semantic:
        try:
            stage = await loop.run_in_executor(executor, SemanticStage.load)
        except Exception:  # a broken model install must not stop the rules from screening
            log.exception("semantic stage failed to load")
    log.info(
        "screening stages",
        extra={"stages": "rules+semantic" if stage is not None else "rules"},
    )
    return SemanticQueue(stage) if stage is not None else None


async def _every(seconds: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            log.exception("background job failed", extra={"job": name})
