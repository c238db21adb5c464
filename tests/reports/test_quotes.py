"""Approved quotes ("you said"), on SQLite and PostgreSQL: what is offered, approval and
withdrawal, and that only approved quotes reach a report, as text only."""

from __future__ import annotations

import csv
import io
import json

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from storage.quotes import (
    QuoteRefused,
    approve_quote,
    quote_page,
    withdraw_quote,
)
from storage.reports import load_campaign_counts
from storage.repository import Repository, UnknownCampaign
from storage.review import read
from storage.staff import add_user
from storage.tables import answers
from storage.tables_reports import report_quotes
from surveys.quotes import MAX_QUOTE_CHARS, quote_text, report_order, text_sha256
from surveys.report import ReportOptions, build_report
from tests.reports.seed import SECRET, Person, add_campaign, answer_all, shipped
from web.exports import export

CODE = "bully-2026"
XSS = '<script>alert("you said")</script><img src=x onerror=alert(1)>'
KIND = "More clubs at lunch please"


def text(words: str) -> dict[str, tuple[str, object]]:
    return {"school_year": ("answered", "y8"), "anything_else": ("answered", words)}


def seed(repository: Repository) -> None:
    add_campaign(repository, CODE, shipped())
    add_campaign(repository, "other", shipped())
    answer_all(
        repository,
        CODE,
        [
            Person("kind", text(KIND)),
            Person("xss", text(XSS)),
            Person("flagged", text("I am fine now"), flag=("high", ["bullying"])),
            Person("long", text("a" * (MAX_QUOTE_CHARS + 1))),
            Person("screened", text("my dad hits me when he is drunk")),
            Person("spaces", text("   ")),
            Person("no-text", {"school_year": ("answered", "y9")}),
        ],
    )
    answer_all(repository, "other", [Person("elsewhere", text("From another campaign"))])


def lead(repository: Repository) -> int:
    return repository.run(
        lambda uow: add_user(
            uow.connection,
            username="lead",
            role="safeguarding_lead",
            password_hash="x",
            actor_id=None,
            address="tests",
            now=uow.now,
        )
    )


def offered(repository: Repository, code: str = CODE) -> dict[str, tuple[int, str, bool]]:
    page = read(repository, lambda connection: quote_page(connection, code))
    return {c.text: (c.answer_id, c.text_sha256, c.approved) for c in page.candidates}


def approve(repository: Repository, words: str, actor: int, digest: str | None = None) -> None:
    answer_id, found, _ = offered(repository)[words]
    repository.run(
        lambda uow: approve_quote(
            uow.connection, CODE, answer_id, digest or found, actor_id=actor, now=uow.now
        )
    )


def quotes_of(repository: Repository) -> tuple[str, ...]:
    return load_campaign_counts(repository, CODE).quotes


def test_only_short_unflagged_free_text_of_the_campaign_is_offered(
    repository: Repository,
) -> None:
    seed(repository)
    # the flagged young person's words, a text the rules flag today, a long one, blank
    # text and other campaigns' answers are never offered
    assert set(offered(repository)) == {KIND, XSS}
    assert all(not approved for _, _, approved in offered(repository).values())
    with pytest.raises(UnknownCampaign):
        read(repository, lambda connection: quote_page(connection, "nope"))


def test_approve_withdraw_and_a_changed_answer(repository: Repository) -> None:
    seed(repository)
    actor = lead(repository)
    assert quotes_of(repository) == ()
    approve(repository, KIND, actor)
    approve(repository, XSS, actor)
    assert offered(repository)[KIND][2] is True
    assert quotes_of(repository) == report_order([KIND, XSS])
    # the order is the texts' hash order: the same whoever answered first
    assert list(quotes_of(repository)) == sorted([KIND, XSS], key=text_sha256)

    answer_id = offered(repository)[KIND][0]
    assert repository.run(lambda uow: withdraw_quote(uow.connection, CODE, answer_id))
    assert not repository.run(lambda uow: withdraw_quote(uow.connection, CODE, answer_id))
    assert quotes_of(repository) == (XSS,)

    # the young person changes their answer: the old approval no longer shows anything
    answer_all(repository, CODE, [Person("xss", text("Something else entirely"))])
    assert quotes_of(repository) == ()
    assert offered(repository)["Something else entirely"][2] is False


def test_an_approval_must_match_the_text_read_and_be_offerable(repository: Repository) -> None:
    seed(repository)
    actor = lead(repository)
    with pytest.raises(QuoteRefused, match="changed since you read it"):
        approve(repository, KIND, actor, digest=text_sha256("what the page showed before"))
    flagged_id = read(
        repository,
        lambda connection: connection.execute(
            select(answers.c.id).where(answers.c.value_json == json.dumps("I am fine now"))
        ).scalar_one(),
    )
    with pytest.raises(QuoteRefused, match="cannot be quoted"):
        repository.run(
            lambda uow: approve_quote(
                uow.connection,
                CODE,
                flagged_id,
                text_sha256("I am fine now"),
                actor_id=actor,
                now=uow.now,
            )
        )
    # an answer of another campaign cannot be approved through this one
    other_id = read(
        repository,
        lambda connection: connection.execute(
            select(answers.c.id).where(answers.c.value_json == json.dumps("From another campaign"))
        ).scalar_one(),
    )
    with pytest.raises(QuoteRefused):
        repository.run(
            lambda uow: approve_quote(
                uow.connection,
                CODE,
                other_id,
                text_sha256("From another campaign"),
                actor_id=actor,
                now=uow.now,
            )
        )
    assert quotes_of(repository) == ()


def test_a_flag_raised_after_approval_or_an_erased_response_removes_the_quote(
    repository: Repository,
) -> None:
    seed(repository)
    actor = lead(repository)
    approve(repository, KIND, actor)
    approve(repository, XSS, actor)
    assert len(quotes_of(repository)) == 2

    def flag_later(uow) -> None:  # type: ignore[no-untyped-def]
        from storage.pseudonyms import pseudonym

        respondent = uow.respondent(pseudonym(SECRET, "web", "kind"), "web")
        message = uow.record_message(respondent, "in", "later words", code=CODE)
        uow.record_flag(respondent, message, severity="medium", categories=[], evidence=[])

    repository.run(flag_later)
    assert quotes_of(repository) == (XSS,)

    def erase(uow) -> None:  # type: ignore[no-untyped-def]
        from storage.pseudonyms import pseudonym

        uow.erase_response(uow.respondent(pseudonym(SECRET, "web", "xss"), "web"), CODE)

    repository.run(erase)
    assert quotes_of(repository) == ()
    # the erased answer's approval went with it (ON DELETE CASCADE)
    assert (
        read(
            repository,
            lambda c: c.execute(select(func.count()).select_from(report_quotes)).scalar_one(),
        )
        == 1
    )


def test_quotes_in_exports_as_text_only(repository: Repository) -> None:
    seed(repository)
    actor = lead(repository)
    approve(repository, XSS, actor)
    report = build_report(load_campaign_counts(repository, CODE), ReportOptions(threshold=3))
    assert report.quotes == (XSS,)
    html = export(report, "html").decode()
    assert XSS not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;you said&#34;)&lt;/script&gt;" in html
    assert KIND not in html  # not approved
    data = json.loads(export(report, "json"))
    assert data["quotes"] == [XSS]
    assert KIND not in json.dumps(data)
    # decided: CSV and XLSX are tables of figures; quotes are not in them
    rows = list(csv.reader(io.StringIO(export(report, "csv").decode("utf-8-sig"))))
    assert not any("you said" in cell for row in rows for cell in row)
    book = load_workbook(io.BytesIO(export(report, "xlsx")))
    cells = [str(c) for sheet in book for row in sheet.iter_rows(values_only=True) for c in row]
    assert not any("you said" in cell or "clubs" in cell for cell in cells)


def test_quotes_are_not_shown_when_too_few_took_part(repository: Repository) -> None:
    seed(repository)
    approve(repository, KIND, lead(repository))
    counts = load_campaign_counts(repository, CODE)
    assert counts.quotes == (KIND,)
    report = build_report(counts, ReportOptions(threshold=10))  # 7 took part
    assert report.quotes == ()
    assert any("too few" in note for note in report.notes)
    assert KIND not in export(report, "html").decode()


def test_quote_text_rules() -> None:
    assert quote_text(json.dumps("  fine  ")) == "fine"
    assert quote_text(json.dumps("x" * MAX_QUOTE_CHARS)) == "x" * MAX_QUOTE_CHARS
    assert quote_text(json.dumps("x" * (MAX_QUOTE_CHARS + 1))) is None
    assert quote_text(json.dumps(["a", "b"])) is None
    assert quote_text(json.dumps(4)) is None
    assert quote_text("not json") is None
    assert quote_text(None) is None
    assert quote_text(json.dumps("he said he would kill me")) is None  # screened today
    assert report_order(["b", "a", "b"]) == tuple(sorted({"a", "b"}, key=text_sha256))
