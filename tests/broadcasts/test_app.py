"""The whole app with Telegram (fake Bot API), both backends: a young person opts in with
/subscribe, a campaign opens, the invitation arrives with a link that starts the survey."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from bot import subscriptions
from storage.db import create_db_engine
from storage.repository import Repository
from tests.broadcasts.helpers import add_campaign
from tests.telegram.fake_bot_api import BOT_USERNAME
from tests.telegram.harness import TelegramPerson


def repository_for(url: str) -> tuple[Engine, Repository]:
    engine = create_db_engine(make_url(url))
    return engine, Repository(engine)


async def test_subscribe_then_the_invitation_arrives_and_its_link_starts_the_survey(
    telegram_app, database_url: str
) -> None:
    harness = await telegram_app("polling", broadcast_check_seconds=0.2, broadcast_quiet_hours="")
    person = TelegramPerson(harness, harness.user())
    await person.act(person.user.command("subscribe"))
    assert person.user.texts()[-1] == subscriptions.SUBSCRIBED
    engine, repository = repository_for(database_url)
    try:
        add_campaign(repository, "abw-2026", invitation="Anti-Bullying Week is here!")
    finally:
        engine.dispose()
    await harness.api.wait_until(
        lambda: any("Anti-Bullying Week" in text for text in person.user.texts()),
        timeout=15,
        what="the invitation",
    )
    invitation = person.user.shown[-1]
    (button,) = invitation.buttons
    assert button["url"] == f"https://t.me/{BOT_USERNAME}?start=abw-2026"
    # Opening the link sends /start with the code: the campaign's survey begins.
    replies = await person.act(person.user.command("start", "abw-2026"))
    assert replies and "Campaign abw-2026" in " ".join(shown.text for shown in replies)
    # STOP: nothing more, and it says so at once.
    replies = await person.act(person.user.say("STOP"))
    assert replies[0].text == subscriptions.UNSUBSCRIBED
