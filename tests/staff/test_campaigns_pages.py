"""Campaign pages in the staff app (on both backends): roles, CSRF, forms and their errors,
actions and what young people are offered, links and QR codes, poster, progress, escaping."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from config.settings import Settings
from storage.clock import utcnow
from storage.tables import campaigns
from tests.staff.conftest import ClientMaker, StaffSession, login_as
from web.app import CATALOGUE, REPOSITORY, create_app
from web.staff.campaigns import campaign_sweep

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
async def client(aiohttp_client: ClientMaker, staff_settings: Settings) -> TestClient:
    settings = staff_settings.model_copy(
        update={
            "telegram_bot_username": "BeSafeTestBot",
            "public_base_url": "https://besafe.example.org",
        }
    )
    return await aiohttp_client(create_app(settings))


def form(session: StaffSession, **changes: Any) -> dict[str, Any]:
    fields = {
        "code": "abw-2026",
        "title": "Anti-Bullying Week",
        "survey": "bullying:1",
        "opens": "2030-11-16 09:00",
        "closes": "2030-11-20 16:00",
        "years": "7, 8",
        "invitation_text": "Tell us how school feels.",
        "reminder_text": "",
        "reminder_times": "",
        "send_spread_minutes": "0",
        "target_responses": "50",
    }
    fields.update(changes)
    return session.form(**fields)


async def create(client: TestClient, session: StaffSession, **changes: Any) -> str:
    response = await client.post(
        "/staff/campaigns", data=form(session, **changes), allow_redirects=False
    )
    assert response.status == 303, await response.text()
    return response.headers["Location"]


def offered(client: TestClient) -> set[str]:
    return {offer.code for offer in client.app[CATALOGUE].offers()}


@pytest.mark.parametrize("role", ["board_viewer", "safeguarding_lead"])
async def test_other_roles_are_refused(client: TestClient, role: str) -> None:
    session = await login_as(client, role)
    for path in ("/staff/campaigns", "/staff/campaigns/new", "/staff/campaigns/bullying-v1"):
        response = await client.get(path)
        assert response.status == 403, path
    response = await client.post("/staff/campaigns", data=form(session))
    assert response.status == 403


async def test_anonymous_goes_to_login(client: TestClient) -> None:
    response = await client.get("/staff/campaigns", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/staff/login")


@pytest.mark.parametrize("role", ["facilitator", "admin"])
async def test_create_then_open_offers_it_to_young_people(client: TestClient, role: str) -> None:
    session = await login_as(client, role)
    location = await create(client, session)
    assert location == "/staff/campaigns/abw-2026"
    page = await (await client.get(location)).text()
    assert "Anti-Bullying Week" in page and "Draft" in page
    assert "Sat 16 Nov 2030, 09:00 GMT" in page
    assert "Year 7, Year 8" in page
    assert "abw-2026" not in offered(client)
    listing = await (await client.get("/staff/campaigns")).text()
    assert "abw-2026" in listing
    response = await client.post(
        "/staff/campaigns/abw-2026/open", data=session.form(), allow_redirects=False
    )
    assert response.status == 303
    assert "abw-2026" in offered(client)  # at once, not at the next refresh
    page = await (await client.get(location)).text()
    assert "Open" in page and 'id="action-close"' in page
    # A refused action says why and changes nothing.
    response = await client.post("/staff/campaigns/abw-2026/archive", data=session.form())
    assert response.status == 409
    assert "close the campaign before archiving" in await response.text()
    await client.post("/staff/campaigns/abw-2026/close", data=session.form())
    assert "abw-2026" not in {o.code for o in client.app[CATALOGUE].offers() if not o.closing}


async def test_a_form_without_its_csrf_token_is_refused(client: TestClient) -> None:
    session = await login_as(client, "facilitator")
    fields = form(session)
    del fields["csrf_token"]
    response = await client.post("/staff/campaigns", data=fields)
    assert response.status == 403
    assert (await client.get("/staff/campaigns/abw-2026")).status == 404
    await create(client, session)
    response = await client.post("/staff/campaigns/abw-2026/open", data={"csrf_token": "forged"})
    assert response.status == 403
    assert "abw-2026" not in offered(client)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"opens": "16/11/2030"}, "YYYY-MM-DD HH:MM"),
        ({"opens": "2030-03-31 01:30"}, "does not exist in London"),
        ({"closes": "2030-11-15 09:00"}, "closing time must be after"),
        ({"code": "Bad Code"}, "lowercase"),
        ({"years": "7, 15"}, "unknown school year"),
        ({"target_responses": "lots"}, "target must be a whole number"),
        ({"survey": ""}, "choose the survey"),
    ],
)
async def test_a_bad_form_comes_back_with_a_message_and_what_was_typed(
    client: TestClient, changes: dict[str, str], message: str
) -> None:
    session = await login_as(client, "facilitator")
    response = await client.post("/staff/campaigns", data=form(session, **changes))
    assert response.status == 400
    page = await response.text()
    assert message.lower() in page.lower()
    assert 'value="Anti-Bullying Week"' in page  # nothing typed is lost
    assert "Tell us how school feels." in page


async def test_a_used_code_is_refused(client: TestClient) -> None:
    session = await login_as(client, "facilitator")
    await create(client, session)
    response = await client.post("/staff/campaigns", data=form(session, title="Again"))
    assert response.status == 400
    assert "already used" in await response.text()


async def test_edit_keeps_the_survey_of_an_open_campaign(client: TestClient) -> None:
    session = await login_as(client, "facilitator")
    await create(client, session)
    await client.post("/staff/campaigns/abw-2026/open", data=session.form())
    page = await (await client.get("/staff/campaigns/abw-2026/edit")).text()
    assert re.search(r'<select id="survey" name="survey" required disabled', page)
    # The greyed-out fields are not sent; the rest may change.
    response = await client.post(
        "/staff/campaigns/abw-2026/edit",
        data=session.form(title="ABW 2030", closes="2030-11-27 16:00", target_responses="80"),
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    page = await (await client.get("/staff/campaigns/abw-2026")).text()
    assert "ABW 2030" in page and "Wed 27 Nov 2030, 16:00 GMT" in page
    assert "bullying version 1" in page
    # Sending the survey anyway is refused with the reason.
    response = await client.post(
        "/staff/campaigns/abw-2026/edit",
        data=session.form(title="ABW 2030", survey="online_safety:1"),
    )
    assert response.status == 400
    assert "survey cannot change under an open campaign" in await response.text()


async def test_facilitator_text_is_escaped_everywhere(client: TestClient) -> None:
    session = await login_as(client, "facilitator")
    await create(client, session, title=XSS, invitation_text=XSS)
    for path in (
        "/staff/campaigns",
        "/staff/campaigns/abw-2026",
        "/staff/campaigns/abw-2026/poster",
    ):
        page = await (await client.get(path)).text()
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;" in page, path


async def test_links_and_qr_codes(client: TestClient) -> None:
    session = await login_as(client, "facilitator")
    await create(client, session)
    page = await (await client.get("/staff/campaigns/abw-2026")).text()
    assert "https://besafe.example.org/?c=abw-2026" in page
    assert "https://t.me/BeSafeTestBot?start=abw-2026" in page
    # The broadcasts' live progress sits on the campaign page, fed by its own endpoint.
    assert 'data-progress-url="/staff/broadcasts/abw-2026/progress.json"' in page
    progress = await client.get("/staff/broadcasts/abw-2026/progress.json")
    assert progress.status == 200 and (await progress.json())["broadcasts"] == []
    for kind in ("web", "telegram"):
        png = await client.get(f"/staff/campaigns/abw-2026/qr/{kind}.png?download")
        assert png.status == 200 and png.content_type == "image/png"
        assert (await png.read()).startswith(b"\x89PNG\r\n\x1a\n")
        assert "attachment" in png.headers["Content-Disposition"]
        svg = await client.get(f"/staff/campaigns/abw-2026/qr/{kind}.svg")
        assert svg.status == 200 and svg.content_type == "image/svg+xml"
        body = await svg.text()
        assert body.startswith("<?xml") and "<svg" in body and "<path" in body
    assert (await client.get("/staff/campaigns/abw-2026/qr/web.gif")).status == 404
    assert (await client.get("/staff/campaigns/nope-nope/qr/web.png")).status == 404


async def test_without_a_bot_username_the_page_says_so(
    aiohttp_client: ClientMaker, staff_settings: Settings
) -> None:
    client = await aiohttp_client(create_app(staff_settings))
    session = await login_as(client, "facilitator")
    await create(client, session)
    page = await (await client.get("/staff/campaigns/abw-2026")).text()
    assert "BESAFE_TELEGRAM_BOT_USERNAME" in page and "t.me/" not in page
    assert (await client.get("/staff/campaigns/abw-2026/qr/telegram.png")).status == 404


async def test_poster(client: TestClient) -> None:
    session = await login_as(client, "facilitator")
    await create(client, session)
    page = await (await client.get("/staff/campaigns/abw-2026/poster")).text()
    for words in (
        "Anti-Bullying Week",
        "Tell us how school feels.",
        "anonymous",
        "stop any time",
        "Childline",
        "0800 1111",
        "/staff/campaigns/abw-2026/qr/web.svg",
        "abw-2026",
    ):
        assert words in page, words


async def test_progress_json_counts_only(client: TestClient) -> None:
    session = await login_as(client, "facilitator")
    await create(client, session)
    response = await client.get("/staff/campaigns/abw-2026/progress.json")
    assert response.status == 200
    data = await response.json()
    assert data["started"] == 0 and data["completed"] == 0 and data["flags"] == 0
    assert data["target"] == 50 and data["threshold"] == 5
    assert "/staff/queue" not in await (await client.get("/staff/campaigns/abw-2026")).text()
    assert (await client.get("/staff/campaigns/nope-nope/progress.json")).status == 404


async def test_the_periodic_sweep_opens_a_scheduled_campaign_for_young_people(
    client: TestClient,
) -> None:
    session = await login_as(client, "facilitator")
    await create(client, session)
    response = await client.post(
        "/staff/campaigns/abw-2026/schedule", data=session.form(), allow_redirects=False
    )
    assert response.status == 303
    repository = client.app[REPOSITORY]
    catalogue = client.app[CATALOGUE]
    assert await asyncio.to_thread(campaign_sweep, repository, catalogue) == []
    # Its opening time comes (moved back rather than waiting for it).
    await asyncio.to_thread(
        repository.run,
        lambda uow: uow.connection.execute(
            update(campaigns)
            .where(campaigns.c.code == "abw-2026")
            .values(opens_at=utcnow() - timedelta(minutes=1))
        ),
    )
    made = await asyncio.to_thread(campaign_sweep, repository, catalogue)
    assert made == [("abw-2026", "scheduled", "open")]
    assert "abw-2026" in offered(client)
    assert await asyncio.to_thread(campaign_sweep, repository, catalogue) == []
