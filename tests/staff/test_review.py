"""The review queue through the real app (create_app), on SQLite and PostgreSQL.

A young person discloses through the real web chat API (the real dispatcher
makes the flag); a safeguarding lead logs in through the real pages (with the
second factor) and works the flag.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient
from markupsafe import escape
from sqlalchemy import select, update

from storage import tables
from storage.audit import verify_audit
from storage.clock import utcnow
from storage.repository import Repository
from storage.tables_review import flag_events, flag_referrals
from storage.tables_staff import audit_log
from tests.staff.conftest import StaffSession, login_as
from web.keys import RELAY
from web.staff.review_live import LIVE_FEED

CHAT_HEADERS = {"X-BeSafe-Chat": "1"}
SURVEYS_DIR = Path(__file__).resolve().parents[2] / "config" / "surveys"
HIGH = "my dad hits me when he is angry"
URGENT = "i want to kill myself tonight"
MEDIUM_WORDS = "i get bullied every day"


# ---------------------------------------------------------------- helpers (used by test_xss*)


class YoungPerson:
    """The web chat API as chat.js uses it, with its own session cookie (no shared jar)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.cookies = {"besafe_chat": secrets.token_urlsafe(32)}

    async def open(self) -> None:
        response = await self._request("GET", "/")
        assert response[0] == 200

    async def say(self, text: str) -> list[dict]:
        return await self._post({"text": text})

    async def tap(self, value: str, question_id: str | None) -> list[dict]:
        return await self._post({"choice": {"value": value, "question_id": question_id}})

    async def _request(self, method: str, path: str, **options: Any) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session,
            session.request(
                method,
                self.client.make_url(path),
                headers=CHAT_HEADERS,
                cookies=self.cookies,
                **options,
            ) as response,
        ):
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def _post(self, body: dict) -> list[dict]:
        status, data = await self._request("POST", "/chat/api/message", json=body)
        assert status == 200, data
        return data["messages"]

    async def updates(self, after: int = 0) -> list[dict]:
        status, data = await self._request("GET", f"/chat/api/updates?after={after}")
        assert status == 200, data
        return data["messages"]

    async def disclose(self, text: str, *, consent: bool | None = True) -> int:
        """Send a disclosure (and answer the contact question); the new flag's id."""
        before = await flag_ids(self.client)
        said = await self.say(text)
        assert said[-1]["question_id"] == "__contact__", said
        if consent is not None:
            await self.tap("yes" if consent else "no", "__contact__")
        (new,) = set(await flag_ids(self.client)) - set(before)
        return new


def repository_of(client: TestClient) -> Repository:
    from web.app import REPOSITORY

    return client.app[REPOSITORY]


async def db(client: TestClient, work: Any) -> Any:
    return await asyncio.to_thread(repository_of(client).run, lambda uow: work(uow.connection))


async def flag_ids(client: TestClient) -> list[int]:
    return await db(
        client, lambda c: [int(i) for i in c.execute(select(tables.flags.c.id)).scalars()]
    )


async def flag_row(client: TestClient, flag_id: int) -> dict:
    return await db(
        client,
        lambda c: dict(
            c.execute(select(tables.flags).where(tables.flags.c.id == flag_id)).one()._mapping
        ),
    )


async def act(
    client: TestClient, lead: StaffSession, flag_id: int, action: str, **fields: str
) -> Any:
    return await client.post(
        f"/staff/flags/{flag_id}/{action}", data=lead.form(**fields), allow_redirects=False
    )


async def lead_of(client: TestClient) -> StaffSession:
    return await login_as(client, "safeguarding_lead")


async def audit_actions(client: TestClient) -> list[tuple[str, str | None]]:
    return await db(
        client,
        lambda c: [
            (row.action, row.target)
            for row in c.execute(
                select(audit_log.c.action, audit_log.c.target).order_by(audit_log.c.id)
            )
        ],
    )


# ---------------------------------------------------------------- the queue


async def test_queue_orders_by_severity_then_age_and_shows_no_content(
    staff_client: TestClient,
) -> None:
    young = [YoungPerson(staff_client) for _ in range(3)]
    for person in young:
        await person.open()
    medium = await young[0].disclose(MEDIUM_WORDS, consent=None)
    high = await young[1].disclose(HIGH, consent=False)
    urgent = await young[2].disclose(URGENT)
    assert (await flag_row(staff_client, medium))["severity"] == "medium"
    lead = await lead_of(staff_client)
    response = await staff_client.get("/staff/queue")
    assert response.status == 200
    page = await response.text()
    order = [int(i) for i in re.findall(r'data-flag-id="(\d+)"', page)]
    assert order == [urgent, high, medium]
    for words in (HIGH, URGENT, MEDIUM_WORDS):
        assert words not in page
    assert "due in 14 min" in page or "due in 15 min" in page
    assert "web" in page
    # Claimed by shows the lead's name once claimed.
    assert (await act(staff_client, lead, high, "claim")).status == 303
    page = await (await staff_client.get("/staff/queue/rows")).text()
    assert lead.user.username in page
    # A closed flag leaves the queue.
    await act(staff_client, lead, medium, "not-a-concern", text="name calling, handled by school")
    page = await (await staff_client.get("/staff/queue")).text()
    assert f'data-flag-id="{medium}"' not in page


async def test_overdue_flags_say_so(staff_client: TestClient) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    flag_id = await person.disclose(URGENT)
    await db(
        staff_client,
        lambda c: c.execute(
            update(tables.flags)
            .where(tables.flags.c.id == flag_id)
            .values(created_at=utcnow() - timedelta(minutes=40))
        ),
    )
    await lead_of(staff_client)
    page = await (await staff_client.get("/staff/queue")).text()
    assert "overdue by 2" in page and "is-overdue" in page


# ---------------------------------------------------------------- the flag page


async def test_flag_page_shows_message_evidence_context_and_consent(
    staff_client: TestClient,
) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    await person.say("hello")
    flag_id = await person.disclose(HIGH)
    await person.say("are you still there")
    lead = await lead_of(staff_client)
    response = await staff_client.get(f"/staff/flags/{flag_id}")
    assert response.status == 200
    page = await response.text()
    flagged = re.search(r'id="flagged-message">(.*?)</p>', page, re.S)
    assert flagged is not None
    marks = re.findall(r'<mark class="evidence" title="physical_abuse">([^<]*)</mark>', flagged[1])
    assert any("hits" in mark for mark in marks), flagged[1]
    assert re.sub(r"<[^>]+>", "", flagged[1]) == HIGH  # the whole message, pieces in order
    assert "hello" in page  # a message before
    assert "are you still there" in page  # a message after
    assert "Yes — you can reply through the bot" in page
    assert 'id="reply-form"' in page
    # Never an identity: no pseudonym, relay handle or chat session token.
    row = await flag_row(staff_client, flag_id)
    respondent = await db(
        staff_client,
        lambda c: c.execute(
            select(tables.respondents.c.pseudonym).where(
                tables.respondents.c.id == row["respondent_id"]
            )
        ).scalar_one(),
    )
    assert respondent not in page
    assert row["relay_handle"] and row["relay_handle"] not in page
    assert person.cookies["besafe_chat"] not in page
    # The view is audited.
    assert ("flag.view", f"flag:{flag_id}") in await audit_actions(staff_client)
    assert lead  # logged in


async def test_flag_in_a_survey_names_the_survey_and_question(staff_client: TestClient) -> None:
    survey = yaml.safe_load((SURVEYS_DIR / "bullying.yaml").read_text(encoding="utf-8"))
    questions = {q["id"]: q["text"] for q in survey["questions"] if q.get("type") != "info"}
    person = YoungPerson(staff_client)
    await person.open()
    said = await person.say("hello")
    for _ in range(40):
        last = said[-1]
        if last["question_id"] in questions:
            break
        choices = [c for c in last["choices"] if not c["value"].startswith("__")]
        choice = next((c for c in choices if c["value"] == "bullying-v1"), None) or (
            choices[0] if choices else {"value": "__continue__"}
        )
        said = await person.tap(choice["value"], last["question_id"])
    else:
        pytest.fail("no survey question reached")
    asked = said[-1]["question_id"]
    before = await flag_ids(staff_client)
    await person.say(HIGH)
    (flag_id,) = set(await flag_ids(staff_client)) - set(before)
    await lead_of(staff_client)
    page = await (await staff_client.get(f"/staff/flags/{flag_id}")).text()
    assert survey["title"] in page
    assert str(escape(questions[asked].strip().splitlines()[0])) in page


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "1.5", "99999", "2147483648", "9" * 30, "%31"])
async def test_a_flag_id_of_another_type_or_out_of_range_is_404(
    staff_client: TestClient, bad: str
) -> None:
    lead = await lead_of(staff_client)
    assert (await staff_client.get(f"/staff/flags/{bad}")).status == 404
    assert (await staff_client.get(f"/staff/flags/{bad}/export")).status == 404
    assert (await act(staff_client, lead, bad, "claim")).status == 404  # type: ignore[arg-type]


async def test_unknown_action_is_404(staff_client: TestClient) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    flag_id = await person.disclose(HIGH)
    lead = await lead_of(staff_client)
    assert (await act(staff_client, lead, flag_id, "delete")).status == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("role", ["facilitator", "board_viewer", "admin"])
async def test_other_roles_get_403_on_every_flag_route_logged_and_audited(
    staff_client: TestClient, role: str, caplog: pytest.LogCaptureFixture
) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    flag_id = await person.disclose(HIGH)
    other = await login_as(staff_client, role)
    gets = [
        "/staff/queue",
        "/staff/queue/rows",
        f"/staff/flags/{flag_id}",
        f"/staff/flags/{flag_id}/live",
        f"/staff/flags/{flag_id}/export",
        "/staff/flags/99999",
    ]
    for path in gets:
        response = await staff_client.get(path)
        assert response.status == 403, path
        assert HIGH not in await response.text()
    events = await staff_client.get("/staff/events", headers={"Accept": "text/event-stream"})
    assert events.status == 403
    for action in ("claim", "acknowledge", "reply", "note", "close"):
        response = await act(staff_client, other, flag_id, action, text="x")
        assert response.status == 403, action
    denied = [a for a in await audit_actions(staff_client) if a[0] == "access.denied"]
    assert len(denied) == len(gets) + 1 + 5
    assert any("wrong role" in r.getMessage() for r in caplog.records)
    assert (await flag_row(staff_client, flag_id))["claimed_by"] is None
    assert "flag.view" not in [a[0] for a in await audit_actions(staff_client)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_anonymous_is_sent_to_login_and_the_stream_gets_401(
    staff_client: TestClient,
) -> None:
    response = await staff_client.get("/staff/flags/1", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/staff/login")
    events = await staff_client.get("/staff/events", headers={"Accept": "text/event-stream"})
    assert events.status == 401


# ---------------------------------------------------------------- actions


async def test_the_whole_life_of_a_flag_is_recorded_and_audited(staff_client: TestClient) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    flag_id = await person.disclose(HIGH)
    lead = await lead_of(staff_client)
    steps: list[tuple[str, dict[str, str], str]] = [
        ("claim", {}, "open"),
        ("acknowledge", {}, "acknowledged"),
        ("note", {"text": "Spoke to the DSL on the phone."}, "acknowledged"),
        ("referral", {"destination": "front_door_mash", "reference": "MASH-2026-0042"}, "referred"),
        ("close", {"text": "Referred to MASH; strategy meeting held."}, "closed"),
        ("reopen", {"text": "New information"}, "acknowledged"),
        ("not-a-concern", {"text": "Duplicate of an earlier referral"}, "not_a_concern"),
    ]
    for action, fields, status in steps:
        response = await act(staff_client, lead, flag_id, action, **fields)
        assert response.status == 303, (action, await response.text())
        assert response.headers["Location"] == f"/staff/flags/{flag_id}"
        row = await flag_row(staff_client, flag_id)
        assert row["status"] == status, action
    row = await flag_row(staff_client, flag_id)
    assert row["claimed_by"] == lead.user.id and row["acknowledged_by"] == lead.user.id
    assert row["outcome"] == "Duplicate of an earlier referral" and row["closed_at"] is not None
    events = await db(
        staff_client,
        lambda c: [
            (r.action, r.actor_id, r.text)
            for r in c.execute(select(flag_events).where(flag_events.c.flag_id == flag_id))
        ],
    )
    assert [e[0] for e in events] == [
        "claim",
        "acknowledge",
        "note",
        "referral",
        "close",
        "reopen",
        "not_a_concern",
    ]
    assert all(actor == lead.user.id for _, actor, _ in events)
    referrals = await db(staff_client, lambda c: c.execute(select(flag_referrals)).all())
    assert [(r.destination, r.reference) for r in referrals] == [
        ("front_door_mash", "MASH-2026-0042")
    ]
    audited = [a for a in await audit_actions(staff_client) if a[1] == f"flag:{flag_id}"]
    assert [a[0] for a in audited if a[0] != "flag.view"] == [
        "flag.claim",
        "flag.acknowledge",
        "flag.note",
        "flag.referral",
        "flag.close",
        "flag.reopen",
        "flag.not_a_concern",
    ]
    page = await (await staff_client.get(f"/staff/flags/{flag_id}")).text()
    for words in (
        "Claimed by",
        "Referral recorded",
        "MASH-2026-0042",
        "Spoke to the DSL",
        "Reopened",
        "Marked not a concern",
        "Duplicate of an earlier referral",
    ):
        assert words in page, words
    export = await staff_client.get(f"/staff/flags/{flag_id}/export")
    assert export.status == 200
    text = await export.text()
    assert "MASH-2026-0042" in text and '<mark class="evidence"' in text and "Confidential" in text
    assert ("flag.export", f"flag:{flag_id}") in await audit_actions(staff_client)
    assert await db(staff_client, verify_audit) is None


async def test_actions_refused_when_they_do_not_fit(staff_client: TestClient) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    flag_id = await person.disclose(HIGH, consent=False)
    lead = await lead_of(staff_client)
    refused = [
        ("reply", {"text": "hello"}, 403),  # no consent
        ("referral", {"destination": "moon", "reference": "x"}, 400),
        ("referral", {"destination": "police", "reference": " "}, 400),
        ("close", {"text": ""}, 400),
        ("not-a-concern", {}, 400),
        ("note", {"text": "x" * 5000}, 400),
        ("reopen", {}, 409),  # not closed
    ]
    for action, fields, status in refused:
        response = await act(staff_client, lead, flag_id, action, **fields)
        assert response.status == status, (action, fields)
    assert (await act(staff_client, lead, flag_id, "acknowledge")).status == 303
    assert (await act(staff_client, lead, flag_id, "acknowledge")).status == 409
    await act(staff_client, lead, flag_id, "close", text="done")
    assert (await act(staff_client, lead, flag_id, "claim")).status == 409
    row = await flag_row(staff_client, flag_id)
    assert row["status"] == "closed"
    messages = await db(staff_client, lambda c: c.execute(select(tables.messages)).all())
    assert all(m.direction == "in" for m in messages)  # no reply was stored


async def test_csrf_is_required_on_every_action(staff_client: TestClient) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    flag_id = await person.disclose(HIGH)
    await lead_of(staff_client)
    response = await staff_client.post(f"/staff/flags/{flag_id}/claim", data={})
    assert response.status == 403
    assert (await flag_row(staff_client, flag_id))["claimed_by"] is None


# ---------------------------------------------------------------- replies


async def test_a_reply_reaches_the_web_chat_and_the_answer_comes_back(
    staff_client: TestClient,
) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    flag_id = await person.disclose(HIGH)
    assert await person.updates() == []
    lead = await lead_of(staff_client)
    response = await act(
        staff_client, lead, flag_id, "reply", text="Hi, I'm Sam <b>from</b> the team."
    )
    assert response.status == 303
    (reply,) = await person.updates()
    assert reply["text"] == "Hi, I'm Sam <b>from</b> the team." and reply["kind"] == "staff"
    assert await person.updates(reply["id"]) == []
    # Someone else's chat session sees nothing.
    stranger = YoungPerson(staff_client)
    await stranger.open()
    assert await stranger.updates() == []
    # The young person's answer goes to the flag, not the survey.
    said = await person.say("thank you, it happened again yesterday")
    assert said and all(m["kind"] != "question" for m in said)
    page = await (await staff_client.get(f"/staff/flags/{flag_id}")).text()
    assert "Hi, I&#39;m Sam &lt;b&gt;from&lt;/b&gt; the team." in page
    assert "thank you, it happened again yesterday" in page
    row = await flag_row(staff_client, flag_id)
    assert row["status"] == "acknowledged" and row["acknowledged_by"] == lead.user.id
    links = await db(staff_client, lambda c: c.execute(select(tables.flag_messages)).all())
    assert sorted(link.author for link in links) == ["staff", "young_person"]
    # Closing the flag ends the conversation: their messages go back to the bot.
    await act(staff_client, lead, flag_id, "close", text="Supported; referred to school DSL.")
    said = await person.say("ok bye")
    assert len(await db(staff_client, lambda c: c.execute(select(tables.flag_messages)).all())) == 2


async def test_a_failed_delivery_is_kept_and_shown(staff_client: TestClient) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    flag_id = await person.disclose(HIGH)
    lead = await lead_of(staff_client)

    async def broken(user_key: str, text: str) -> None:
        raise ConnectionError("channel down")

    staff_client.app[RELAY].register("web", broken)
    response = await act(staff_client, lead, flag_id, "reply", text="Are you safe right now?")
    assert response.status == 303
    actions = await db(staff_client, lambda c: [r.action for r in c.execute(select(flag_events))])
    assert actions == ["reply", "reply_failed"]
    page = await (await staff_client.get(f"/staff/flags/{flag_id}")).text()
    assert "Reply could not be delivered" in page


# ---------------------------------------------------------------- live updates


async def test_the_event_stream_announces_new_flags_and_changes(staff_client: TestClient) -> None:
    feed = staff_client.app[LIVE_FEED]
    person = YoungPerson(staff_client)
    await person.open()
    await lead_of(staff_client)
    response = await staff_client.get("/staff/events", headers={"Accept": "text/event-stream"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert "Content-Security-Policy" in response.headers
    await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)  # retry: ...
    while feed.listeners == 0:
        await asyncio.sleep(0.01)
    await feed.poll_once()  # marks are current
    flag_id = await person.disclose(URGENT, consent=None)
    await feed.poll_once()
    event = await _next_event(response)
    assert event == ("flag", {"ids": [flag_id]})
    lead = await lead_of(staff_client)
    await act(staff_client, lead, flag_id, "note", text="looking now")
    await feed.poll_once()
    assert await _next_event(response) == ("change", {"ids": [flag_id]})
    response.close()


async def _next_event(response: Any) -> tuple[str, dict]:
    while True:
        block = (await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)).decode()
        if block.startswith(":"):
            continue
        fields = dict(line.split(": ", 1) for line in block.strip().splitlines())
        return fields["event"], json.loads(fields["data"])
