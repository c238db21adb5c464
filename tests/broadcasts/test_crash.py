"""Killed in the middle of a broadcast: `python main.py run` as a real process, SIGKILLed.

150 opted-in young people, an open campaign with an invitation, a 25/s broadcast rate.
The server is killed once about 40 invitations have reached the fake Bot API, then
started again: every young person gets the invitation, and nobody gets it twice except
the few whose send was in flight (sent, not yet recorded) at the kill.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, insert, select

from bot.relay import seal_handle
from storage.clock import utcnow
from storage.db import migrate
from storage.pseudonyms import pseudonym
from storage.tables import campaigns, respondents
from storage.tables_broadcasts import broadcast_sends, subscribers
from tests.processes import free_port, start_server
from tests.telegram.fake_bot_api import TOKEN, FakeBotApi
from tests.telegram.harness import SECRET_KEY

PEOPLE = 150
FIRST_CHAT = 7_000_001
IN_FLIGHT_AT_MOST = 10  # calls in flight plus those sent in the last outcome write (0.1 s)


def run_server(tmp_path: Path, api: FakeBotApi, port: int, url: str) -> subprocess.Popen[bytes]:
    return start_server(
        tmp_path,
        tmp_path / f"server-{port}.log",
        BESAFE_DATA_DIR=str(tmp_path / "data"),
        BESAFE_DATABASE_URL=url,
        BESAFE_PORT=str(port),
        BESAFE_SECRET_KEY=SECRET_KEY,
        BESAFE_TELEGRAM_TOKEN=TOKEN,
        BESAFE_TELEGRAM_API_URL=api.base_url,
        BESAFE_TELEGRAM_MODE="polling",
        BESAFE_BROADCAST_RATE_PER_SECOND="25",
        BESAFE_BROADCAST_QUIET_HOURS="",  # whatever the time of day the test runs
        BESAFE_BROADCAST_CHECK_SECONDS="0.5",
        BESAFE_LOG_FORMAT="json",
    )


def prepare(url: str) -> None:
    """The schema, an open campaign with an invitation, and PEOPLE opted-in subscribers."""
    migrate(url)
    secret = SECRET_KEY.encode()
    engine = create_engine(url)
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            insert(campaigns).values(
                code="abw-crash",
                survey_id="bullying",
                survey_version=1,
                title="Anti-Bullying Week",
                status="open",
                opens_at=now,
                created_at=now,
                audience_json="{}",
                invitation_text="Anti-Bullying Week: tell us what it's like at your school.",
                reminder_times_json="[]",
                send_spread_minutes=0,
                updated_at=now,
            )
        )
        for chat in range(FIRST_CHAT, FIRST_CHAT + PEOPLE):
            rid = connection.execute(
                insert(respondents)
                .values(
                    pseudonym=pseudonym(secret, "telegram", str(chat)),
                    channel="telegram",
                    created_at=now,
                    last_seen_at=now,
                )
                .returning(respondents.c.id)
            ).scalar_one()
            connection.execute(
                insert(subscribers).values(
                    respondent_id=rid,
                    channel="telegram",
                    address=seal_handle(secret, "telegram", str(chat)),
                    subscribed_at=now,
                )
            )
    engine.dispose()


def invitations(api: FakeBotApi) -> Counter[int]:
    return Counter(
        int(call.params["chat_id"])
        for call in api.calls_to("sendMessage")
        if int(call.params["chat_id"]) >= FIRST_CHAT
    )


async def test_nobody_is_invited_twice_across_a_kill(tmp_path: Path, database_url: str) -> None:
    url = database_url
    prepare(url)
    api = await FakeBotApi().start()
    port = free_port()
    server = run_server(tmp_path, api, port, url)
    try:
        await api.wait_until(
            lambda: sum(invitations(api).values()) >= 40, timeout=90, what="40 invitations"
        )
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        at_kill = sum(invitations(api).values())
        assert at_kill < PEOPLE  # killed in the middle

        server = run_server(tmp_path, api, port, url)
        await api.wait_until(
            lambda: len(invitations(api)) == PEOPLE, timeout=120, what="every invitation"
        )
        await asyncio.sleep(1.0)  # a duplicate would be here by now
        counts = invitations(api)
        twice = [chat for chat, times in counts.items() if times > 1]
        print(f"invitations before the kill: {at_kill}; sent twice: {len(twice)}")
        assert max(counts.values()) <= 2
        assert len(twice) <= IN_FLIGHT_AT_MOST
        engine = create_engine(url)
        with engine.connect() as connection:
            statuses = Counter(connection.execute(select(broadcast_sends.c.status)).scalars())
        engine.dispose()
        assert statuses == {"sent": PEOPLE}
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        await api.close()
