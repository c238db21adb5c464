"""Report groups (migration 0010): counting by the stored group gives exactly the counts
of joining every answer to its respondent's demographics, on SQLite and PostgreSQL,
after changed and removed demographic answers, a forgotten respondent, and a backfill."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from storage.db import create_db_engine, downgrade, migrate
from storage.pseudonyms import pseudonym
from storage.reports import coded_cube, cube, load_campaign_counts
from storage.repository import Repository, UnitOfWork
from storage.review import read
from surveys.report import ReportOptions, build_report
from surveys.report_data import Cube
from surveys.report_groups import GroupCoding
from tests.reports.seed import SECRET, add_campaign, shipped

CODE = "bully-2026"
OTHER = "bully-odd"

# One respondent's history, in order: ("answer", question, status, value), ("remove",
# question), ("complete",) or ("forget",).
Step = tuple
HISTORIES: dict[str, list[Step]] = {
    # changed school year with "back" after answering on: every row moves to y10
    "changed": [
        ("answer", "school_year", "answered", "y7"),
        ("answer", "gender", "answered", "girl"),
        ("answer", "area", "answered", "north"),
        ("answer", "bullied_year", "answered", "yes"),
        ("answer", "bullying_kind", "answered", ["hurt", "online"]),
        ("answer", "school_year", "answered", "y10"),
        ("answer", "anything_else", "answered", "free words"),
        ("complete",),
    ],
    # a demographic answer hidden by a changed earlier answer: back to "not given"
    "removed": [
        ("answer", "school_year", "answered", "y8"),
        ("answer", "gender", "answered", "boy"),
        ("answer", "area", "skipped", None),
        ("answer", "bullied_year", "answered", "no"),
        ("remove", "gender"),
    ],
    # demographics answered last, then changed: the earlier answers follow
    "late": [
        ("answer", "bullied_year", "answered", "yes"),
        ("answer", "bullied_month", "answered", "yes"),
        ("answer", "school_deals", "answered", "quite_well"),
        ("answer", "safe_at_school", "answered", 4),
        ("answer", "school_year", "answered", "y9"),
        ("answer", "gender", "answered", "self_describe"),
        ("answer", "area", "answered", "south"),
        ("answer", "gender", "prefer_not_to_say", None),
        ("answer", "gender", "answered", "girl"),
        ("complete",),
    ],
    # said, then forgot: none of it counts
    "forgotten": [
        ("answer", "school_year", "answered", "y7"),
        ("answer", "gender", "answered", "boy"),
        ("answer", "area", "prefer_not_to_say", None),
        ("answer", "bullied_year", "answered", "yes"),
        ("forget",),
    ],
    "plain": [
        ("answer", "school_year", "answered", "y12"),
        ("answer", "gender", "answered", "girl"),
        ("answer", "area", "answered", "north"),
        ("answer", "bullied_year", "answered", "yes"),
        ("answer", "bullied_month", "answered", "no"),
        ("answer", "told_someone", "skipped", None),
        ("complete",),
    ],
    "nothing_given": [
        ("answer", "school_year", "skipped", None),
        ("answer", "bullied_year", "prefer_not_to_say", None),
    ],
}


def play(repository: Repository, code: str, histories: dict[str, list[Step]]) -> None:
    for name, steps in histories.items():

        def work(uow: UnitOfWork, name: str = name, steps: list[Step] = steps) -> None:
            respondent_id = uow.respondent(pseudonym(SECRET, "web", f"{code}-{name}"), "web")
            for step in steps:
                if step[0] == "answer":
                    uow.record_answer(respondent_id, code, step[1], step[2], step[3])
                elif step[0] == "remove":
                    uow.remove_answer(respondent_id, code, step[1])
                elif step[0] == "complete":
                    uow.complete_response(respondent_id, code)
                else:
                    uow.erase_response(respondent_id, code)

        # each step in its own transaction too, as a conversation's turns are
        repository.run(work)


def seeded(repository: Repository) -> None:
    add_campaign(repository, CODE, shipped())
    play(repository, CODE, HISTORIES)
    # every answer again, one turn per step, for a second group of respondents
    for name, steps in HISTORIES.items():
        for count in range(1, len(steps) + 1):
            play(repository, CODE, {f"turns-{name}": steps[count - 1 : count]})


def straightforward(repository: Repository, code: str) -> Cube:
    """Every answer joined to its respondent's demographic answers (no stored groups)."""
    counts = load_campaign_counts(repository, code)
    return read(repository, lambda c: cube(c, counts.campaign.id, counts.cube.dimensions))


def fast(repository: Repository, code: str) -> Cube | None:
    counts = load_campaign_counts(repository, code)
    return read(repository, lambda c: coded_cube(c, counts.campaign, counts.survey))


def test_coding_round_trips_and_refuses_what_it_cannot_code() -> None:
    coding = GroupCoding.of(shipped())
    assert coding.dimensions == ("school_year", "gender", "area")
    assert coding.encode({}) == 0 and coding.decode(0) == (None, None, None)
    for chosen in ({"school_year": ["y7"]}, {"gender": ["boy"], "area": ["west"]}):
        code = coding.encode(chosen)
        assert code is not None
        assert coding.decode(code) == tuple((chosen.get(q) or [None])[0] for q in coding.dimensions)
    assert coding.encode({"school_year": ["y99"]}) is None  # not one of the choices
    assert coding.encode({"area": ["north", "south"]}) is None  # several
    assert coding.decode(-1) is None
    assert coding.decode(10**9) is None  # beyond every question's choices
    codes = {
        coding.encode({"school_year": [y], "gender": [g], "area": [a]})
        for y in coding.values[0]
        for g in coding.values[1]
        for a in coding.values[2]
    }
    assert len(codes) == len(coding.values[0]) * len(coding.values[1]) * len(coding.values[2])


def test_counts_by_report_group_equal_the_join(repository: Repository) -> None:
    seeded(repository)
    expected = straightforward(repository, CODE)
    counts = load_campaign_counts(repository, CODE)
    assert fast(repository, CODE) is not None  # the fast way was taken
    assert counts.cube == expected
    # and the figures follow: the whole report is the same either way
    for options in (ReportOptions(threshold=3), ReportOptions(rounding=True)):
        assert build_report(counts, options) == build_report(
            replace(counts, cube=expected), options
        )
    # changed, removed and late demographic answers counted where they ended up
    groups = expected.respondents
    assert groups[("y10", "girl", "north")] == 2  # "changed", by one turn or many
    assert ("y7", "girl", "north") not in groups
    assert groups[("y8", None, None)] == 2  # "removed": gender no longer given
    assert groups[("y9", "girl", "south")] == 2  # "late"
    assert expected.answers[("bullied_month", "answered", ("y9", "girl", "south"))] == 2
    assert groups[(None, None, None)] == 2
    # the forgotten respondent is nowhere
    assert not any(key[1] == "boy" for key in groups)
    assert sum(groups.values()) == 2 * (len(HISTORIES) - 1)


def test_a_group_that_cannot_be_coded_is_counted_the_slow_way(repository: Repository) -> None:
    seeded(repository)

    def odd(uow: UnitOfWork) -> None:
        respondent_id = uow.respondent(pseudonym(SECRET, "web", "odd"), "web")
        uow.record_answer(respondent_id, CODE, "school_year", "answered", "y99")
        uow.record_answer(respondent_id, CODE, "bullied_year", "answered", "no")

    repository.run(odd)
    assert fast(repository, CODE) is None
    counts = load_campaign_counts(repository, CODE)
    assert counts.cube == straightforward(repository, CODE)
    assert counts.cube.respondents[("y99", None, None)] == 1

    def corrected(uow: UnitOfWork) -> None:
        respondent_id = uow.respondent(pseudonym(SECRET, "web", "odd"), "web")
        uow.record_answer(respondent_id, CODE, "gender", "answered", "boy")  # still no code
        uow.record_answer(respondent_id, CODE, "school_year", "answered", "y7")

    repository.run(corrected)
    # coded again from the stored answers: the fast way is back, with the same counts
    assert fast(repository, CODE) == straightforward(repository, CODE)
    assert load_campaign_counts(repository, CODE).cube.respondents[("y7", "boy", None)] == 1


def test_backfill_codes_stored_answers(empty_database_url: str) -> None:
    url = empty_database_url
    migrate(url)

    def with_repository(work: Callable[[Repository], object]) -> object:
        engine = create_db_engine(url)
        try:
            return work(Repository(engine))
        finally:
            engine.dispose()

    def fill(repository: Repository) -> Cube:
        seeded(repository)
        add_campaign(repository, OTHER, shipped())
        play(repository, OTHER, {"odd": [("answer", "area", "answered", "nowhere")]})
        return straightforward(repository, CODE)

    before = with_repository(fill)
    downgrade(url, "0009")
    migrate(url)

    def check(repository: Repository) -> None:
        assert fast(repository, CODE) == before
        assert load_campaign_counts(repository, CODE).cube == before
        assert fast(repository, OTHER) is None  # "nowhere" is no area: left to the join
        assert load_campaign_counts(repository, OTHER).cube == straightforward(repository, OTHER)

    with_repository(check)
