"""Migration 0009 on SQLite and PostgreSQL: answers and choice rows already stored get
their response's campaign, and the reports read them as before."""

from __future__ import annotations

from sqlalchemy import text

from storage.db import create_db_engine, downgrade, migrate
from storage.reports import load_campaign_counts
from storage.repository import Repository
from storage.review import read
from tests.reports.seed import Person, add_campaign, answer_all, shipped


def test_existing_answers_get_their_campaign(empty_database_url: str) -> None:
    url = empty_database_url
    migrate(url, "0008")
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO surveys (id, survey_id, version, title, topic, definition_json,"
                    " source_sha256, loaded_at) VALUES (1, 's', 1, 'S', 't', '{}', 'x', :now)"
                ),
                {"now": "2026-01-01 00:00:00"},
            )
            for campaign in (1, 2):
                connection.execute(
                    text(
                        "INSERT INTO campaigns (id, code, survey_id, survey_version, title,"
                        " status, opens_at, created_at, audience_json, reminder_times_json,"
                        " send_spread_minutes, updated_at) VALUES (:id, :code, 's', 1, 'C',"
                        " 'open', :now, :now, '{}', '[]', 0, :now)"
                    ),
                    {"id": campaign, "code": f"c{campaign}", "now": "2026-01-01 00:00:00"},
                )
                connection.execute(
                    text(
                        "INSERT INTO respondents (id, pseudonym, channel, created_at,"
                        " last_seen_at) VALUES (:id, :p, 'web', :now, :now)"
                    ),
                    {"id": campaign, "p": f"{campaign:064x}", "now": "2026-01-01 00:00:00"},
                )
                connection.execute(
                    text(
                        "INSERT INTO responses (id, respondent_id, campaign_id, survey_id,"
                        " survey_version, status, started_at, updated_at) VALUES"
                        " (:response, :id, :id, 's', 1, 'completed', :now, :now)"
                    ),
                    {"response": campaign * 10, "id": campaign, "now": "2026-01-01 00:00:00"},
                )
            # response 10 is campaign 1's and 20 campaign 2's (ids differ on purpose)
            for response in (10, 20):
                connection.execute(
                    text(
                        "INSERT INTO answers (response_id, question_id, status, value_json,"
                        " answered_at) VALUES (:r, 'q', 'answered', '\"a\"', :now)"
                    ),
                    {"r": response, "now": "2026-01-01 00:00:00"},
                )
                connection.execute(
                    text(
                        "INSERT INTO answer_choices (response_id, question_id, value)"
                        " VALUES (:r, 'q', 'a')"
                    ),
                    {"r": response},
                )
        migrate(url)
        with engine.connect() as connection:
            for table in ("answers", "answer_choices"):
                rows = connection.execute(
                    text(f"SELECT response_id, campaign_id FROM {table} ORDER BY response_id")
                ).all()
                assert [tuple(row) for row in rows] == [(10, 1), (20, 2)], table
        downgrade(url, "0008")  # and back: no row lost either way
        with engine.connect() as connection:
            for table in ("answers", "answer_choices"):
                rows = connection.execute(text(f"SELECT response_id FROM {table}")).all()
                assert sorted(row[0] for row in rows) == [10, 20], table
    finally:
        engine.dispose()


def test_new_answers_carry_their_campaign(repository: Repository) -> None:
    add_campaign(repository, "one", shipped())
    add_campaign(repository, "two", shipped())
    answer_all(repository, "one", [Person("a", {"bullied_year": ("answered", "yes")})])
    answer_all(repository, "two", [Person("a", {"bullied_year": ("answered", "no")})])
    rows = read(
        repository,
        lambda connection: connection.execute(
            text(
                "SELECT c.code, a.campaign_id = r.campaign_id, ch.campaign_id = r.campaign_id "
                "FROM answers a JOIN responses r ON r.id = a.response_id "
                "JOIN campaigns c ON c.id = r.campaign_id "
                "JOIN answer_choices ch ON ch.response_id = a.response_id "
                "AND ch.question_id = a.question_id ORDER BY c.code"
            )
        ).all(),
    )
    assert [tuple(row) for row in rows] == [("one", True, True), ("two", True, True)]
    counts = load_campaign_counts(repository, "two")
    assert counts.cube.choices == {("bullied_year", "no", (None, None, None)): 1}
