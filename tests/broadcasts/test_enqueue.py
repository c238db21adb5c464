"""Queueing invitations and reminders (`bot.broadcasts.enqueue_due_broadcasts`) and claiming
them (`storage.broadcasts.claim_sends`), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from bot.broadcasts import enqueue_due_broadcasts
from storage import broadcasts as store
from storage.clock import utcnow
from storage.repository import Repository
from tests.broadcasts.helpers import (
    PROFILE_CODE,
    add_campaign,
    add_subscriber,
    answer,
    complete,
    respondent,
    sends,
    settings,
    start,
)

NOW = utcnow()
LEASE = timedelta(seconds=60)


def invited(repository: Repository, campaign_id: int) -> set[int]:
    return {
        row["respondent_id"]
        for row in sends(repository)
        if row["campaign_id"] == campaign_id and row["kind"] == "invitation"
    }


def test_the_audience_comes_from_each_young_persons_latest_answers(
    repository: Repository,
) -> None:
    add_campaign(repository, PROFILE_CODE, invitation=None)
    add_campaign(repository, "other", invitation=None)
    ks3 = add_campaign(repository, "ks3", audience='{"key_stages": ["KS3"]}')
    year8 = add_subscriber(repository, 1, year="y8")
    year11 = add_subscriber(repository, 2, year="y11")
    unknown = add_subscriber(repository, 3)
    now_private = add_subscriber(repository, 4, year="y8")
    answer(repository, now_private, "other", "school_year", None)  # later: prefer not to say
    moved_up = add_subscriber(repository, 5, year="y6")
    answer(repository, moved_up, "other", "school_year", "y7")  # later: now in year 7
    left = add_subscriber(repository, 6, year="y9")
    repository.run(lambda uow: store.unsubscribe(uow, left))
    not_asked = respondent(repository, 7)  # answered, never opted in
    answer(repository, not_asked, PROFILE_CODE, "school_year", "y8")
    telegram_only = add_campaign(repository, "web-only", audience='{"channels": ["web"]}')
    everyone = add_campaign(repository, "everyone")

    enqueue_due_broadcasts(repository, NOW, settings())

    assert invited(repository, ks3) == {year8, moved_up}
    assert invited(repository, telegram_only) == set()
    # Everyone: every opted-in young person, known or not, but never one who opted out.
    assert invited(repository, everyone) == {year8, year11, unknown, now_private, moved_up}


def test_queueing_twice_changes_nothing_and_an_invitation_goes_once_ever(
    repository: Repository,
) -> None:
    campaign = add_campaign(repository, "abw")
    add_campaign(repository, "draft", status="draft")
    add_campaign(repository, "closed", closes_at=NOW - timedelta(hours=1))
    add_campaign(repository, "no-text", invitation=None)
    add_campaign(repository, "later", opens_at=NOW + timedelta(days=1))
    first = add_subscriber(repository, 1)
    joined = add_subscriber(repository, 2)
    start(repository, joined, "abw")  # already took part: not invited

    report = enqueue_due_broadcasts(repository, NOW, settings())
    assert report.invitations == 1
    before = sends(repository)
    assert [(r["campaign_id"], r["respondent_id"]) for r in before] == [(campaign, first)]
    assert enqueue_due_broadcasts(repository, NOW, settings()).invitations == 0
    assert sends(repository) == before
    # Sent, then the person opts out and back in: still once ever.
    repository.run(lambda uow: store.unsubscribe(uow, first))
    add_subscriber(repository, 1)
    newcomer = add_subscriber(repository, 3)
    enqueue_due_broadcasts(repository, NOW + timedelta(minutes=5), settings())
    rows = sends(repository)
    assert [r["respondent_id"] for r in rows] == [first, newcomer]
    assert rows[0]["status"] == "cancelled"  # it was still queued when they opted out


def test_reminders_go_only_to_unfinished_and_at_most_the_planned_number(
    repository: Repository,
) -> None:
    t1, t2 = NOW - timedelta(hours=2), NOW + timedelta(hours=2)
    campaign = add_campaign(
        repository, "abw", invitation=None, reminder="Don't forget!", times=(t1, t2)
    )
    unfinished = add_subscriber(repository, 1)
    start(repository, unfinished, "abw", at=t1 - timedelta(hours=1))
    finished = add_subscriber(repository, 2)
    start(repository, finished, "abw", at=t1 - timedelta(hours=1))
    complete(repository, finished, "abw")
    add_subscriber(repository, 3)  # never started
    late = add_subscriber(repository, 4)
    start(repository, late, "abw", at=t1 + timedelta(minutes=30))  # after reminder 1's time
    not_subscribed = respondent(repository, 5)
    start(repository, not_subscribed, "abw", at=t1 - timedelta(hours=1))

    assert enqueue_due_broadcasts(repository, NOW, settings()).reminders == 1
    assert [(r["respondent_id"], r["kind"], r["seq"]) for r in sends(repository)] == [
        (unfinished, "reminder", 1)
    ]
    assert enqueue_due_broadcasts(repository, NOW, settings()).reminders == 0
    # The second planned time: both unfinished ones.
    enqueue_due_broadcasts(repository, t2, settings())
    # Long after the last planned time: nothing more, ever.
    enqueue_due_broadcasts(repository, t2 + timedelta(days=3), settings())
    rows = [r for r in sends(repository) if r["campaign_id"] == campaign]
    per_person: dict[int, int] = {}
    for row in rows:
        per_person[row["respondent_id"]] = per_person.get(row["respondent_id"], 0) + 1
    assert per_person == {unfinished: 2, late: 1}
    # Finishing before a queued reminder goes cancels it at sending time.
    complete(repository, late, "abw")
    claimed = repository.run(
        lambda uow: store.claim_sends(uow, t2 + timedelta(days=3), 10, "me", LEASE)
    )
    assert {send.respondent_id for send in claimed} == {unfinished}
    statuses = {(r["respondent_id"], r["seq"]): r["status"] for r in sends(repository)}
    assert statuses[(late, 2)] == "cancelled"


def test_quiet_hours_hold_back_what_is_queued_at_night(repository: Repository) -> None:
    add_campaign(repository, "abw", spread_minutes=0, opens_at=datetime(2026, 1, 1))
    for chat in range(3):
        add_subscriber(repository, chat)
    night = datetime(2026, 1, 14, 23, 0)  # 23:00 in London in winter
    enqueue_due_broadcasts(repository, night, settings(broadcast_quiet_hours="21:00-08:00"))
    assert {row["not_before"] for row in sends(repository)} == {datetime(2026, 1, 15, 8, 0)}
    early = repository.run(
        lambda uow: store.claim_sends(uow, datetime(2026, 1, 15, 7, 59), 10, "me", LEASE)
    )
    assert early == []


def test_a_spread_send_gets_even_not_before_times(repository: Repository) -> None:
    add_campaign(repository, "abw", spread_minutes=60, opens_at=datetime(2026, 1, 1))
    for chat in range(4):
        add_subscriber(repository, chat)
    at = datetime(2026, 5, 6, 10, 0)
    enqueue_due_broadcasts(repository, at, settings())
    assert sorted(row["not_before"] for row in sends(repository)) == [
        at + timedelta(minutes=15 * index) for index in range(4)
    ]


def test_claims_never_overlap_and_a_dead_claim_comes_back(repository: Repository) -> None:
    add_campaign(repository, "abw")
    for chat in range(60):
        add_subscriber(repository, chat)
    enqueue_due_broadcasts(repository, NOW, settings())
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(3)

    def claim(name: str) -> None:
        barrier.wait()
        found: list[int] = []
        while batch := repository.run(lambda uow: store.claim_sends(uow, NOW, 7, name, LEASE)):
            found += [send.id for send in batch]
        got[name] = found

    threads = [threading.Thread(target=claim, args=(f"p{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [row_id for found in got.values() for row_id in found]
    assert len(everything) == len(set(everything)) == 60
    # Nobody finished them: after the lease they go to whoever claims next, once.
    later = NOW + timedelta(seconds=61)
    again = repository.run(lambda uow: store.claim_sends(uow, later, 100, "p9", LEASE))
    assert len(again) == 60
    assert repository.run(lambda uow: store.claim_sends(uow, later, 100, "pA", LEASE)) == []
