"""/staff/surveys: stored versions, and uploading a YAML file or an XLSForm workbook.

Runs on both backends (the `database_url` fixture behind `staff_client`).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from config.settings import SHIPPED_SURVEYS_DIR
from storage.audit import audit_entries
from storage.clock import utcnow
from storage.review import read
from surveys.definition import survey_from_dict, survey_to_dict
from tests.staff.conftest import StaffSession
from tests.staff.test_xss_review import PAYLOADS, assert_inert
from tests.surveys.xlsform_books import basic_settings, workbook
from web.app import CATALOGUE, REPOSITORY
from web.staff.surveys import MAX_UPLOAD_BYTES

HEADER = ["type", "name", "label", "be_safe::report_label", "relevant"]
FEELINGS = [["list_name", "name", "label"], ["feel", "good", "Good"], ["feel", "bad", "Bad"]]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def good_workbook(version: int = 1, title: str = "Feeling OK", label: str = "How?") -> bytes:
    settings = basic_settings()
    settings[1][1] = version
    settings[1][2] = title
    rows = [HEADER, ["select_one feel", "feel", label, "Feeling"], ["text", "why", "Why?", "Why"]]
    return workbook(rows, FEELINGS, settings)


def form(session: StaffSession | None, data: bytes, filename: str) -> FormData:
    found = FormData()
    if session is not None:
        found.add_field("csrf_token", session.csrf_token)
    kind = XLSX_TYPE if filename.endswith(".xlsx") else "application/yaml"
    found.add_field("survey_file", data, filename=filename, content_type=kind)
    return found


async def upload(
    client: TestClient, session: StaffSession | None, data: bytes, filename: str
) -> tuple[int, str]:
    response = await client.post(
        "/staff/surveys", data=form(session, data, filename), allow_redirects=False
    )
    return response.status, await response.text()


async def stored(client: TestClient) -> dict[tuple[str, int], str]:
    records = await asyncio.to_thread(client.app[REPOSITORY].survey_definitions)
    return {(r.survey_id, r.version): r.definition_json for r in records}


async def audit_actions(client: TestClient, actor_id: int) -> list[tuple[str, str | None, dict]]:
    entries = await asyncio.to_thread(
        read, client.app[REPOSITORY], lambda c: audit_entries(c, actor_id=actor_id)
    )
    return [(e.action, e.target, e.details) for e in entries]


@pytest.mark.parametrize("role", ["facilitator", "admin"])
async def test_facilitators_and_admins_see_the_stored_versions(
    staff_client: TestClient, login_as, role: str
) -> None:
    await login_as(staff_client, role)
    response = await staff_client.get("/staff/surveys")
    assert response.status == 200
    html = await response.text()
    for path in SHIPPED_SURVEYS_DIR.glob("*.yaml"):
        assert f"<td>{path.stem}</td>" in html
    assert 'enctype="multipart/form-data"' in html
    assert 'href="/staff/surveys"' in html  # in the staff menu


@pytest.mark.parametrize("role", ["board_viewer", "safeguarding_lead"])
async def test_other_roles_may_neither_see_nor_upload(
    staff_client: TestClient, login_as, role: str
) -> None:
    session = await login_as(staff_client, role)
    assert (await staff_client.get("/staff/surveys")).status == 403
    status, _ = await upload(staff_client, session, good_workbook(), "feel.xlsx")
    assert status == 403
    assert ("wellbeing", 1) not in await stored(staff_client)
    home = await (await staff_client.get("/staff/")).text()
    assert 'href="/staff/surveys"' not in home


async def test_an_upload_without_the_csrf_token_is_refused(
    staff_client: TestClient, login_as
) -> None:
    await login_as(staff_client, "facilitator")
    status, _ = await upload(staff_client, None, good_workbook(), "feel.xlsx")
    assert status == 403
    assert ("wellbeing", 1) not in await stored(staff_client)


async def test_a_good_workbook_is_stored_audited_and_reaches_the_catalogue(
    staff_client: TestClient, login_as
) -> None:
    session = await login_as(staff_client, "facilitator")
    status, html = await upload(staff_client, session, good_workbook(), "feel.xlsx")
    assert status == 200, html
    assert "Stored <strong>Feeling OK</strong>" in html
    assert "<td>wellbeing</td>" in html  # now in the list
    definitions = await stored(staff_client)
    survey = survey_from_dict(json.loads(definitions[("wellbeing", 1)]))
    assert [q.id for q in survey.questions] == ["feel", "why"]
    actions = await audit_actions(staff_client, session.user.id)
    assert actions[0][:2] == ("survey.upload", "wellbeing v1")
    assert actions[0][2]["format"] == "xlsform" and actions[0][2]["outcome"] == "stored"
    # Not offered by itself: a campaign that names it makes it an offer at the next refresh.
    repository, catalogue = staff_client.app[REPOSITORY], staff_client.app[CATALOGUE]
    offers = await asyncio.to_thread(catalogue.refresh, utcnow())
    assert all(offer.survey.id != "wellbeing" for offer in offers)
    await asyncio.to_thread(repository.ensure_campaign, "feel-week", "wellbeing", 1, "Feel week")
    offers = await asyncio.to_thread(catalogue.refresh, utcnow())
    (offer,) = [offer for offer in offers if offer.code == "feel-week"]
    assert survey_to_dict(offer.survey) == survey_to_dict(survey)


async def test_a_good_yaml_file_is_stored_too(staff_client: TestClient, login_as) -> None:
    session = await login_as(staff_client, "admin")
    text = (SHIPPED_SURVEYS_DIR / "bullying.yaml").read_text().replace("version: 1", "version: 7")
    status, html = await upload(staff_client, session, text.encode(), "bullying.yaml")
    assert status == 200, html
    assert ("bullying", 7) in await stored(staff_client)
    assert (await audit_actions(staff_client, session.user.id))[0][2]["format"] == "yaml"


async def test_a_bad_workbook_shows_its_problems_by_row_and_stores_nothing(
    staff_client: TestClient, login_as
) -> None:
    session = await login_as(staff_client, "facilitator")
    rows = [
        HEADER,
        ["select_one feel", "feel", "How?", "Feeling"],
        ["geopoint", "where", "Where are you?", "Where"],
        ["text", "why", "Why?", "Why", "${feel} = 'grand'"],
    ]
    status, html = await upload(
        staff_client, session, workbook(rows, FEELINGS, basic_settings()), "bad.xlsx"
    )
    assert status == 400
    assert "bad.xlsx was not stored" in html
    assert "<td>survey sheet, row 3</td><td>where</td>" in html
    assert "<td>survey sheet, row 4</td><td>why</td>" in html
    assert "which is not one of its choices" in html
    assert ("wellbeing", 1) not in await stored(staff_client)
    action, target, details = (await audit_actions(staff_client, session.user.id))[0]
    assert (action, target, details) == (
        "survey.upload_refused",
        "bad.xlsx",
        {"format": "xlsform", "problems": 2},
    )


async def test_a_bad_yaml_file_shows_its_problems_by_line(
    staff_client: TestClient, login_as
) -> None:
    session = await login_as(staff_client, "facilitator")
    status, html = await upload(staff_client, session, b"id: x\nversion: nope\n", "x.yaml")
    assert status == 400
    assert "<td>line 2</td>" in html
    assert "version must be a whole number" in html


async def test_a_stored_version_is_never_replaced(staff_client: TestClient, login_as) -> None:
    session = await login_as(staff_client, "facilitator")
    assert (await upload(staff_client, session, good_workbook(2), "a.xlsx"))[0] == 200
    before = await stored(staff_client)
    status, html = await upload(staff_client, session, good_workbook(2), "a.xlsx")
    assert status == 200 and "already stored exactly like this" in html
    status, html = await upload(staff_client, session, good_workbook(2, label="How now?"), "b.xlsx")
    assert status == 409
    assert "already stored with different content" in html
    assert "version 3" in html
    status, html = await upload(staff_client, session, good_workbook(1), "c.xlsx")
    assert status == 409
    assert "would be older than the newest" in html
    assert await stored(staff_client) == before
    outcomes = [d.get("outcome") for _, _, d in await audit_actions(staff_client, session.user.id)]
    assert outcomes[:4] == ["older", "conflict", "unchanged", "stored"]


async def test_the_shipped_survey_files_cannot_be_changed_by_upload(
    staff_client: TestClient, login_as
) -> None:
    session = await login_as(staff_client, "admin")
    text = (
        (SHIPPED_SURVEYS_DIR / "bullying.yaml")
        .read_text()
        .replace("title: Bullying", "title: Bullies")
    )
    status, html = await upload(staff_client, session, text.encode(), "bullying.yaml")
    assert status == 409
    assert "Give the changed survey version 2" in html


async def test_no_file_and_too_big_a_file_are_clear(staff_client: TestClient, login_as) -> None:
    session = await login_as(staff_client, "facilitator")
    response = await staff_client.post("/staff/surveys", data={"csrf_token": session.csrf_token})
    assert response.status == 400
    assert "Choose a survey file" in await response.text()
    padding = b"# padding\n" * (MAX_UPLOAD_BYTES // 10 + 100)
    status, html = await upload(staff_client, session, padding, "big.yaml")
    assert status == 400
    assert "The file is too big" in html
    status, html = await upload(staff_client, session, b"", "empty.yaml")
    assert status == 400 and "The file is empty." in html


@pytest.mark.parametrize("payload", PAYLOADS[:4])
async def test_uploaded_text_is_shown_escaped(
    staff_client: TestClient, login_as, payload: str
) -> None:
    session = await login_as(staff_client, "facilitator")
    status, html = await upload(
        staff_client, session, good_workbook(title=f"Title {payload}"), f"{payload}.xlsx"
    )
    assert status == 200, html
    assert_inert(html)
    assert f"Title {payload}" in "".join(__import__("html").unescape(html).splitlines())
    listing = await (await staff_client.get("/staff/surveys")).text()
    assert_inert(listing)
    rows = [HEADER, [payload, "q", "Q?", "Q"]]
    status, html = await upload(
        staff_client, session, workbook(rows, None, basic_settings()), "bad.xlsx"
    )
    assert status == 400
    assert_inert(html)
