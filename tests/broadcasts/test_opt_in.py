"""Opting in and out through the real dispatcher (both backends): /subscribe, /unsubscribe,
the offer after a survey, and STOP beating anything in progress."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bot import subscriptions
from bot.broadcasts import enqueue_due_broadcasts
from bot.dispatcher import CONTACT_PROMPT, Dispatcher
from bot.messages import InboundMessage
from bot.relay import open_handle
from moderation.signposting import reply_text
from storage import tables
from storage.batching import WriteBatcher
from storage.clock import utcnow
from storage.repository import Repository
from surveys.events import ChoiceIn, CommandIn, Say, TextIn
from tests.bot.test_dispatcher import SECRET, build_dispatcher, respondent_id, rows
from tests.broadcasts.helpers import add_campaign, sends, settings, subscriber
from tests.fakes.respondent import SimulatedRespondent

DISCLOSURE = "my stepdad hits me and I'm scared to go home"


@pytest.fixture
def writes(repository: Repository) -> Iterator[WriteBatcher]:
    batcher = WriteBatcher(repository, workers=1)
    yield batcher
    batcher.close()


@pytest.fixture
def dispatcher(repository: Repository, writes: WriteBatcher) -> Dispatcher:
    return build_dispatcher(repository, writes)


async def say(dispatcher: Dispatcher, chat: str, event, channel: str = "telegram") -> tuple:
    return await dispatcher.handle(InboundMessage(channel, chat, event))


def texts(outputs: tuple[Say, ...]) -> list[str]:
    return [output.text for output in outputs]


async def reach_first_question(dispatcher: Dispatcher, chat: str) -> None:
    await say(dispatcher, chat, CommandIn("start", "bullying-v1"))
    await say(dispatcher, chat, ChoiceIn("yes", "__consent__"))
    outputs = await say(dispatcher, chat, ChoiceIn("y8", "school_year"))
    assert outputs[-1].question_id == "gender", outputs


async def test_subscribe_and_unsubscribe_keep_only_a_sealed_address(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    assert texts(await say(dispatcher, "4242", TextIn("/subscribe"))) == [subscriptions.SUBSCRIBED]
    rid = respondent_id(repository, "4242", "telegram")
    row = subscriber(repository, rid)
    assert row is not None and row["unsubscribed_at"] is None
    assert "4242" not in row["address"]
    assert open_handle(SECRET, row["address"]) == ("telegram", "4242")
    assert texts(await say(dispatcher, "4242", TextIn("subscribe"))) == [
        subscriptions.ALREADY_SUBSCRIBED
    ]
    assert texts(await say(dispatcher, "4242", TextIn("/unsubscribe"))) == [
        subscriptions.UNSUBSCRIBED
    ]
    assert subscriber(repository, rid)["unsubscribed_at"] is not None  # type: ignore[index]
    assert texts(await say(dispatcher, "4242", TextIn("/unsubscribe"))) == [
        subscriptions.NOT_SUBSCRIBED
    ]


async def test_the_web_chat_says_it_cannot_reach_anyone_later(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    outputs = await say(dispatcher, "web-1", TextIn("/subscribe"), channel="web")
    assert texts(outputs) == [subscriptions.WEB_CANNOT_REACH]
    assert rows(repository, tables.respondents)  # the turn itself was kept
    from storage.tables_broadcasts import subscribers

    assert rows(repository, subscribers) == []


async def test_a_finished_survey_offers_news_and_a_tap_opts_in(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    person = SimulatedRespondent(dispatcher, "77", channel="telegram")
    outputs = await person.take_survey("bullying")
    offer = outputs[-1]
    assert offer.text == subscriptions.OFFER and offer.question_id == subscriptions.NEWS_PROMPT
    assert [choice.value for choice in offer.choices] == ["yes", "no"]
    rid = respondent_id(repository, "77", "telegram")
    assert subscriber(repository, rid) is None  # an offer is not an opt-in
    outputs = await say(dispatcher, "77", ChoiceIn("yes", subscriptions.NEWS_PROMPT))
    assert texts(outputs) == [subscriptions.SUBSCRIBED]
    assert subscriber(repository, rid)["unsubscribed_at"] is None  # type: ignore[index]
    # The web chat never offers it.
    web = SimulatedRespondent(dispatcher, "web-77")
    outputs = await web.take_survey("bullying")
    assert all(output.text != subscriptions.OFFER for output in outputs)


async def test_stop_mid_survey_opts_out_at_once_and_pauses_the_survey(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await say(dispatcher, "501", TextIn("/subscribe"))
    rid = respondent_id(repository, "501", "telegram")
    add_campaign(repository, "abw")
    enqueue_due_broadcasts(repository, utcnow(), settings())
    assert [row["status"] for row in sends(repository)] == ["queued"]
    await reach_first_question(dispatcher, "501")

    outputs = await say(dispatcher, "501", TextIn("STOP"))

    assert outputs[0].text == subscriptions.UNSUBSCRIBED
    assert "stop here for now" in outputs[1].text  # the survey waits, answers kept
    assert subscriber(repository, rid)["unsubscribed_at"] is not None  # type: ignore[index]
    assert [row["status"] for row in sends(repository)] == ["cancelled"]
    answers = repository.run(lambda uow: uow.answers(rid, "bullying-v1"))
    assert "gender" not in answers  # STOP was not taken as an answer
    state = json.loads(rows(repository, tables.conversations)[0]["state_json"])
    assert state["mode"] == "paused"
    # Nothing more is queued for them, whatever opens next.
    add_campaign(repository, "sid")
    enqueue_due_broadcasts(repository, utcnow(), settings())
    assert len(sends(repository)) == 1


async def test_stop_beats_a_pending_choice_after_a_disclosure(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await say(dispatcher, "502", TextIn("/subscribe"))
    await reach_first_question(dispatcher, "502")
    outputs = await say(dispatcher, "502", TextIn(DISCLOSURE))
    assert outputs[-1].question_id == CONTACT_PROMPT
    outputs = await say(dispatcher, "502", TextIn("stop"))
    assert outputs[0].text == subscriptions.UNSUBSCRIBED
    assert all(reply_text("contact_hint") not in text for text in texts(outputs))
    assert all(output.question_id != CONTACT_PROMPT for output in outputs)
    # The disclosure itself is kept, whatever they do next.
    assert len(rows(repository, tables.flags)) == 1


async def test_stop_when_not_subscribed_just_stops(dispatcher: Dispatcher) -> None:
    await reach_first_question(dispatcher, "503")
    outputs = await say(dispatcher, "503", CommandIn("stop"))
    assert subscriptions.UNSUBSCRIBED not in texts(outputs)
    assert "stop here for now" in outputs[0].text


async def test_no_news_offer_while_a_safeguarding_question_waits(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    """A disclosure in the last answer finishes the survey, but the turn asks whether someone
    may reply: the offer to hear about new surveys must not crowd that question out."""
    from tests.fakes.respondent import next_event

    outputs = await say(dispatcher, "504", CommandIn("start", "bullying-v1"))
    for turn in range(100):
        if outputs[-1].question_id == "anything_else":
            break
        event = next_event(outputs, "bullying", turn)
        assert event is not None, outputs
        outputs = await say(dispatcher, "504", event)
    else:
        raise AssertionError("never reached the last question")

    outputs = await say(dispatcher, "504", TextIn(DISCLOSURE))

    assert len(rows(repository, tables.flags)) == 1
    assert outputs[-1].question_id == CONTACT_PROMPT
    assert all(output.question_id != subscriptions.NEWS_PROMPT for output in outputs)
    # Their answer to the contact question is taken as that, never as a news opt-in.
    outputs = await say(dispatcher, "504", ChoiceIn("yes", CONTACT_PROMPT))
    assert all(output.question_id != subscriptions.NEWS_PROMPT for output in outputs)
    assert subscriber(repository, respondent_id(repository, "504", "telegram")) is None
