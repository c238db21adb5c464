"""The staff platform's costs: Argon2, a whole login, an authenticated page, the audit log.

- Argon2id hash and check (argon2-cffi defaults; deliberately slow);
- a login through the real app (login page, POST, home page) and an authenticated
  `GET /staff/` (the middleware's one session read), p50/p99 in ms;
- `append_audit` with N entries already in the log (entries per second, one per
  transaction as in the app), and `verify_audit` over the N entries.

    .venv/bin/python bench/bench_staff.py [--entries N] [--requests N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import insert

from config.settings import Settings
from storage.audit import GENESIS_HASH, append_audit, entry_hash, verify_audit
from storage.clock import utcnow
from storage.db import create_db_engine, migrate
from storage.repository import Repository
from storage.staff import add_user
from storage.tables_staff import audit_log
from web.app import create_app
from web.staff.passwords import hash_password, verify_password

PASSWORD = "correct horse battery staple"
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


def timed(work: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return samples


def fill_audit(repository: Repository, count: int) -> None:
    """`count` valid chained entries, written in bulk (the app writes one at a time)."""
    prev = GENESIS_HASH
    rows = []
    for number in range(1, count + 1):
        row = {
            "id": number,
            "created_at": utcnow(),
            "actor_id": None,
            "action": "bench.fill",
            "target": f"flag:{number}",
            "address": "127.0.0.1",
            "details_json": "{}",
            "prev_hash": prev,
        }
        row["hash"] = prev = entry_hash(**row)  # type: ignore[arg-type]
        rows.append(row)
    with repository.engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            connection.execute(insert(audit_log), rows[start : start + 5000])


async def http_figures(settings: Settings, username: str, requests: int) -> None:
    server = TestServer(create_app(settings))
    await server.start_server()
    try:
        logins: list[float] = []
        pages: list[float] = []
        for round_ in range(max(3, requests // 50)):
            jar = aiohttp.CookieJar(unsafe=True)  # the server is at an IP address
            async with aiohttp.ClientSession(str(server.make_url("/")), cookie_jar=jar) as client:
                start = time.perf_counter()
                html = await (await client.get("/staff/login")).text()
                token = _META_CSRF.search(html).group(1)  # type: ignore[union-attr]
                response = await client.post(
                    "/staff/login",
                    data={"csrf_token": token, "username": username, "password": PASSWORD},
                )
                assert response.status == 200 and response.url.path == "/staff/", response.url
                logins.append(time.perf_counter() - start)
                if round_ == 0:
                    for _ in range(requests):
                        start = time.perf_counter()
                        response = await client.get("/staff/")
                        await response.read()
                        pages.append(time.perf_counter() - start)
                        assert response.status == 200
        print(f"  login (page, POST, home), {len(logins)} times: {percentiles(logins)}")
        print(f"  authenticated GET /staff/, {len(pages)} times: {percentiles(pages)}")
    finally:
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    hashed = hash_password(PASSWORD)
    print("Argon2id (argon2-cffi defaults):")
    print(f"  hash:  {percentiles(timed(lambda: hash_password(PASSWORD), 10))}")
    print(f"  check: {percentiles(timed(lambda: verify_password(hashed, PASSWORD), 10))}")

    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{folder}/bench.db"
        migrate(url)
        engine = create_db_engine(url)
        repository = Repository(engine)
        settings = Settings(
            data_dir=Path(folder),
            database_url=url,
            secret_key="bench-staff-secret-0123456789abcdefghijkl",  # type: ignore[arg-type]
            log_level="WARNING",
        )
        try:
            repository.run(
                lambda uow: add_user(
                    uow.connection,
                    username="bench-admin",
                    role="admin",
                    password_hash=hashed,
                    actor_id=None,
                    address="bench",
                    now=uow.now,
                )
            )
            print(f"{engine.dialect.name}, through the app:")
            asyncio.run(http_figures(settings, "bench-admin", args.requests))

            with repository.engine.begin() as connection:
                connection.execute(audit_log.delete())
            fill_audit(repository, args.entries)
            print(f"{engine.dialect.name}, audit log of {args.entries:,} entries:")
            appends = 500
            start = time.perf_counter()
            for number in range(appends):
                repository.run(
                    lambda uow, n=number: append_audit(
                        uow.connection,
                        actor_id=1,
                        action="bench.append",
                        target=f"flag:{n}",
                        address="127.0.0.1",
                        details={"n": n},
                    )
                )
            elapsed = time.perf_counter() - start
            print(
                f"  append (one transaction each): {appends / elapsed:,.0f} entries/s "
                f"({elapsed / appends * 1000:.2f} ms each)"
            )
            start = time.perf_counter()
            broken = repository.run(lambda uow: verify_audit(uow.connection))
            elapsed = time.perf_counter() - start
            assert broken is None, broken
            total = args.entries + appends
            print(
                f"  verify: {total:,} entries in {elapsed:.2f} s ({total / elapsed:,.0f} entries/s)"
            )
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
