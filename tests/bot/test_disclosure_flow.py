"""What happens when a message is flagged: the reply, the contact question, carry on or pause,
and the conversation with staff. Real dispatcher, real database (both backends)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from bot.dispatcher import CARRY_ON_PROMPT, CONTACT_PROMPT, Dispatcher
from bot.messages import InboundMessage
from bot.relay import open_handle
from moderation.signposting import reply_text
from storage import tables
from storage.batching import WriteBatcher
from storage.repository import Repository, UnitOfWork
from surveys.engine import CARRY_ON
from surveys.events import ChoiceIn, CommandIn, Say, TextIn
from tests.bot.test_dispatcher import SECRET, build_dispatcher, respondent_id, rows, send

DISCLOSURE = "my stepdad hits me and I'm scared to go home"
URGENT = "i want to kill myself tonight, i have the pills"


@pytest.fixture
def writes(repository: Repository) -> Iterator[WriteBatcher]:
    batcher = WriteBatcher(repository, workers=1)
    yield batcher
    batcher.close()


@pytest.fixture
def dispatcher(repository: Repository, writes: WriteBatcher) -> Dispatcher:
    return build_dispatcher(repository, writes)


async def reach_first_question(dispatcher: Dispatcher, user: str) -> tuple[Say, ...]:
    await send(dispatcher, user, CommandIn("start", "bullying-v1"))
    await send(dispatcher, user, ChoiceIn("yes", "__consent__"))
    await send(dispatcher, user, ChoiceIn("y8", "school_year"))
    outputs = await send(dispatcher, user, CommandIn("skip"))  # gender
    if outputs[-1].question_id != "bullied_year":
        outputs = await send(dispatcher, user, CommandIn("skip"))  # school or area
    assert outputs[-1].question_id == "bullied_year", outputs
    return outputs


def only_flag(repository: Repository) -> dict:
    flags = rows(repository, tables.flags)
    assert len(flags) == 1, flags
    return flags[0]


def _state(repository: Repository, rid: int) -> dict:
    (row,) = [r for r in rows(repository, tables.conversations) if r["respondent_id"] == rid]
    return json.loads(row["state_json"])


async def test_a_disclosure_mid_survey_is_answered_then_the_young_person_is_asked(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await reach_first_question(dispatcher, "yp1")
    outputs = await send(dispatcher, "yp1", TextIn(DISCLOSURE))
    reply, question = outputs
    assert reply.kind == "help"
    assert "Nobody should hurt you" in reply.text and "0800 1111" in reply.text
    assert question.question_id == CONTACT_PROMPT
    assert [c.value for c in question.choices] == ["yes", "no"]
    flag = only_flag(repository)
    assert flag["contact_consent"] is None and flag["relay_handle"] is None
    assert "physical_abuse" in json.loads(flag["categories_json"])

    outputs = await send(dispatcher, "yp1", ChoiceIn("yes", CONTACT_PROMPT))
    assert outputs[0].text == reply_text("contact_said_yes")
    assert outputs[-1].question_id == CARRY_ON_PROMPT
    flag = only_flag(repository)
    assert flag["contact_consent"] is True
    # Staff never see the address; the server can open it to deliver a reply.
    assert "yp1" not in flag["relay_handle"]
    assert open_handle(SECRET, flag["relay_handle"]) == ("web", "yp1")

    outputs = await send(dispatcher, "yp1", ChoiceIn(CARRY_ON, CARRY_ON_PROMPT))
    assert outputs[-1].question_id == "bullied_year"  # the survey picks up where it was
    outputs = await send(dispatcher, "yp1", ChoiceIn("yes", "bullied_year"))
    assert outputs[-1].question_id == "bullied_month"


async def test_saying_no_by_typing_stores_no_handle_and_stop_for_now_pauses(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await reach_first_question(dispatcher, "yp2")
    await send(dispatcher, "yp2", TextIn(DISCLOSURE))
    outputs = await send(dispatcher, "yp2", TextIn("no"))
    assert outputs[0].text == reply_text("contact_said_no")
    flag = only_flag(repository)
    assert flag["contact_consent"] is False and flag["relay_handle"] is None
    outputs = await send(dispatcher, "yp2", TextIn("stop for now"))
    assert "stop here for now" in outputs[0].text
    assert _state(repository, respondent_id(repository, "yp2"))["mode"] == "paused"


async def test_an_unclear_answer_asks_again_and_a_command_moves_on(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await reach_first_question(dispatcher, "yp3")
    await send(dispatcher, "yp3", TextIn(DISCLOSURE))
    outputs = await send(dispatcher, "yp3", TextIn("what do you mean"))
    assert outputs[0].text == reply_text("contact_hint")
    assert outputs[-1].question_id == CONTACT_PROMPT
    outputs = await send(dispatcher, "yp3", CommandIn("help"))
    assert any("0800 1111" in say.text for say in outputs)
    assert only_flag(repository)["contact_consent"] is None
    # The contact question is no longer waiting: "yes" now answers the survey question.
    outputs = await send(dispatcher, "yp3", TextIn("yes"))
    assert outputs[-1].question_id == "bullied_month"
    assert only_flag(repository)["contact_consent"] is None


async def test_an_urgent_disclosure_outside_a_survey_puts_999_first(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    outputs = await send(dispatcher, "yp4", TextIn(URGENT))
    assert outputs[0].kind == "help"
    lines = outputs[0].text.splitlines()
    assert "999" in lines[1]
    assert only_flag(repository)["severity"] == "urgent"
    outputs = await send(dispatcher, "yp4", ChoiceIn("yes", CONTACT_PROMPT))
    # Not in a survey: nothing to carry on with, so no carry-on question.
    assert outputs[0].text == reply_text("contact_said_yes")
    assert all(say.question_id != CARRY_ON_PROMPT for say in outputs)
    assert "safeguarding" in _state(repository, respondent_id(repository, "yp4"))


async def test_a_second_disclosure_while_the_question_waits_gets_the_same_answer(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await send(dispatcher, "yp5", TextIn(DISCLOSURE))
    outputs = await send(dispatcher, "yp5", TextIn(URGENT))
    assert outputs[-1].question_id == CONTACT_PROMPT
    await send(dispatcher, "yp5", TextIn("yes"))
    flags = rows(repository, tables.flags)
    assert len(flags) == 2
    assert all(flag["contact_consent"] is True for flag in flags)


def staff_reply(repository: Repository, flag_id: int, text: str) -> None:
    flag = next(f for f in rows(repository, tables.flags) if f["id"] == flag_id)

    def work(uow: UnitOfWork) -> None:
        message_id = uow.record_message(flag["respondent_id"], "out", text)
        uow.link_flag_message(flag_id, message_id, "staff")

    repository.run(work)


async def test_after_a_staff_reply_messages_go_to_the_flag_until_it_is_closed(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await reach_first_question(dispatcher, "yp6")
    await send(dispatcher, "yp6", TextIn(DISCLOSURE))
    await send(dispatcher, "yp6", ChoiceIn("yes", CONTACT_PROMPT))
    await send(dispatcher, "yp6", ChoiceIn(CARRY_ON, CARRY_ON_PROMPT))
    flag_id = only_flag(repository)["id"]
    # Before anyone from the team replies, the survey carries on as usual.
    outputs = await send(dispatcher, "yp6", ChoiceIn("yes", "bullied_year"))
    assert outputs[-1].question_id == "bullied_month"

    staff_reply(repository, flag_id, "Hi, I'm Sam from the safeguarding team. Are you safe now?")
    state_before = _state(repository, respondent_id(repository, "yp6"))
    outputs = await send(dispatcher, "yp6", TextIn("yes im at my nans"))
    assert [say.text for say in outputs] == [reply_text("staff_conversation_ack")]
    linked = rows(repository, tables.flag_messages)
    authors = sorted(row["author"] for row in linked if row["flag_id"] == flag_id)
    assert authors == ["staff", "young_person"]
    # The survey did not take "yes" as an answer to the question that was waiting.
    state_after = _state(repository, respondent_id(repository, "yp6"))
    assert state_after["responses"] == state_before["responses"]
    outputs = await send(dispatcher, "yp6", ChoiceIn("no", "bullied_month"))
    assert outputs[0].text == reply_text("staff_conversation_paused")
    outputs = await send(dispatcher, "yp6", CommandIn("help"))
    assert "0800 1111" in outputs[0].text

    with repository.engine.begin() as connection:
        connection.execute(
            update(tables.flags).where(tables.flags.c.id == flag_id).values(status="closed")
        )
    outputs = await send(dispatcher, "yp6", ChoiceIn("no", "bullied_month"))
    assert outputs[-1].question_id != "bullied_month" and outputs[-1].kind == "question"


async def test_consent_then_stop_for_now_sends_what_they_write_to_the_flag_at_once(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await reach_first_question(dispatcher, "yp9")
    await send(dispatcher, "yp9", TextIn(DISCLOSURE))
    await send(dispatcher, "yp9", ChoiceIn("yes", CONTACT_PROMPT))
    outputs = await send(dispatcher, "yp9", ChoiceIn("__stop_for_now__", CARRY_ON_PROMPT))
    assert [say.text for say in outputs] == [reply_text("waiting_for_staff")]
    rid = respondent_id(repository, "yp9")
    assert _state(repository, rid)["mode"] == "paused"
    flag_id = only_flag(repository)["id"]

    # No one has replied yet, but an automated question must not take this message.
    outputs = await send(dispatcher, "yp9", TextIn("yes"))
    assert [say.text for say in outputs] == [reply_text("waiting_ack")]
    linked = [r for r in rows(repository, tables.flag_messages) if r["flag_id"] == flag_id]
    assert [r["author"] for r in linked] == ["young_person"]
    outputs = await send(dispatcher, "yp9", CommandIn("help"))
    assert "0800 1111" in outputs[0].text
    outputs = await send(dispatcher, "yp9", TextIn("Help"))  # typed, not tapped
    assert "0800 1111" in outputs[0].text

    # Once someone replies, it is the ordinary conversation with staff.
    staff_reply(repository, flag_id, "Hi, I'm Sam. Are you safe right now?")
    outputs = await send(dispatcher, "yp9", TextIn("yeah"))
    assert [say.text for say in outputs] == [reply_text("staff_conversation_ack")]

    # Closed: the survey is theirs again.
    with repository.engine.begin() as connection:
        connection.execute(
            update(tables.flags).where(tables.flags.c.id == flag_id).values(status="closed")
        )
    await send(dispatcher, "yp9", TextIn("ok"))
    assert "waiting" not in _state(repository, rid)["safeguarding"]


async def test_start_while_waiting_for_staff_goes_back_to_the_survey(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await reach_first_question(dispatcher, "yp10")
    await send(dispatcher, "yp10", TextIn(DISCLOSURE))
    await send(dispatcher, "yp10", ChoiceIn("yes", CONTACT_PROMPT))
    await send(dispatcher, "yp10", ChoiceIn("__stop_for_now__", CARRY_ON_PROMPT))
    outputs = await send(dispatcher, "yp10", CommandIn("start"))
    assert outputs[-1].question_id == "__paused__"  # the engine's own carry-on offer
    assert CARRY_ON in [c.value for c in outputs[-1].choices]
    outputs = await send(dispatcher, "yp10", ChoiceIn(CARRY_ON, "__paused__"))
    assert outputs[-1].question_id == "bullied_year"
    outputs = await send(dispatcher, "yp10", ChoiceIn("yes", "bullied_year"))
    assert outputs[-1].question_id == "bullied_month"
    assert [r["author"] for r in rows(repository, tables.flag_messages)] == []


async def test_a_choice_typed_out_is_survey_data_and_more_than_that_is_screened(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await reach_first_question(dispatcher, "yp11")
    outputs = await send(dispatcher, "yp11", ChoiceIn("no", "bullied_year"))
    while outputs[-1].question_id != "safe_at_school":
        outputs = await send(dispatcher, "yp11", CommandIn("skip"))
    # Typing the scale's label is the same answer as tapping it: no flag, the survey goes on.
    outputs = await send(dispatcher, "yp11", TextIn("1 – Not safe at all"))
    assert outputs[-1].question_id == "safe_playtime"
    assert rows(repository, tables.flags) == []
    rid = respondent_id(repository, "yp11")
    stored = repository.run(lambda uow: uow.answers(rid, "bullying-v1"))
    assert stored["safe_at_school"] == ("answered", 1)
    # Anything beyond the choice is a message, and screened.
    outputs = await send(dispatcher, "yp11", TextIn("not safe at all, my stepdad hits me"))
    assert outputs[-1].question_id == CONTACT_PROMPT
    assert "physical_abuse" in json.loads(only_flag(repository)["categories_json"])


async def test_a_redelivered_update_has_no_second_effect(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    first = await dispatcher.handle_turn(InboundMessage("telegram", "42", TextIn("hi"), "1001"))
    again = await dispatcher.handle_turn(InboundMessage("telegram", "42", TextIn("hi"), "1001"))
    assert first.outputs and not first.duplicate
    assert again.duplicate and again.outputs == ()
    assert len(rows(repository, tables.messages)) == 1
    assert len(rows(repository, tables.processed_deliveries)) == 1
    # The same id on another channel is another delivery.
    other = await dispatcher.handle_turn(InboundMessage("web", "42", TextIn("hi"), "1001"))
    assert not other.duplicate


async def test_the_output_recorder_runs_in_the_turns_transaction(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    seen: list[tuple[int, tuple[Say, ...]]] = []

    def record(uow: UnitOfWork, rid: int, inbound: InboundMessage, outputs: tuple[Say, ...]):
        seen.append((rid, outputs))
        if inbound.event == TextIn("fail"):
            raise RuntimeError("outbox full")
        return len(outputs)

    dispatcher.set_output_recorder("telegram", record)
    turn = await dispatcher.handle_turn(InboundMessage("telegram", "7", TextIn("hi"), "1"))
    assert turn.recorded == len(turn.outputs) and seen[-1][1] == turn.outputs
    with pytest.raises(RuntimeError):
        await dispatcher.handle_turn(InboundMessage("telegram", "7", TextIn("fail"), "2"))
    # Rolled back with the turn: the message and the delivery claim are gone, so a retry works.
    assert [m["text"] for m in rows(repository, tables.messages)] == ["hi"]
    assert {r["delivery_id"] for r in rows(repository, tables.processed_deliveries)} == {"1"}


async def test_a_choice_the_survey_marks_raises_a_medium_flag_and_the_same_question(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    answers = {"school_year": "y10", "had_partner": "yes", "partner_hit": "yes"}
    outputs = await send(dispatcher, "yp7", CommandIn("start", "healthy_relationships-v1"))
    outputs = await send(dispatcher, "yp7", ChoiceIn("yes", "__consent__"))
    while outputs[-1].question_id != "partner_hit_now":
        question = outputs[-1]
        assert question.kind == "question", outputs
        value = answers.get(question.question_id or "", "no")
        values = {choice.value for choice in question.choices}
        if value not in values:
            outputs = await send(dispatcher, "yp7", CommandIn("skip"))
        else:
            outputs = await send(dispatcher, "yp7", ChoiceIn(value, question.question_id))
    assert not rows(repository, tables.flags)
    outputs = await send(dispatcher, "yp7", ChoiceIn("yes", "partner_hit_now"))
    assert outputs[0].kind == "help" and "should never hurt" in outputs[0].text
    assert outputs[-1].question_id == CONTACT_PROMPT
    flag = only_flag(repository)
    assert flag["severity"] == "medium"
    assert json.loads(flag["categories_json"]) == ["relationship_abuse"]
    (evidence,) = json.loads(flag["evidence_json"])
    message = next(m for m in rows(repository, tables.messages) if m["id"] == flag["message_id"])
    assert message["text"][evidence["start"] : evidence["end"]] == "Yes, it's still happening"
    assert message["question_id"] == "partner_hit_now"
    # The answer itself is survey data, stored as usual.
    rid = respondent_id(repository, "yp7")
    stored = repository.run(lambda uow: uow.answers(rid, "healthy_relationships-v1"))
    assert stored["partner_hit_now"] == ("answered", "yes")
    outputs = await send(dispatcher, "yp7", ChoiceIn("no", CONTACT_PROMPT))
    outputs = await send(dispatcher, "yp7", ChoiceIn(CARRY_ON, CARRY_ON_PROMPT))
    assert outputs[-1].question_id == "partner_told"
