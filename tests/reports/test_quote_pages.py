"""The quote pages of the staff app (real app, aiohttp client, SQLite and PostgreSQL):
safeguarding leads only, CSRF, audit, escaping, and nothing unapproved in any export."""

from __future__ import annotations

import asyncio
import io
import re

from aiohttp.test_utils import TestClient
from openpyxl import load_workbook

from config.settings import Settings
from storage.audit import audit_entries
from storage.db import create_db_engine
from storage.repository import Repository
from storage.review import read
from tests.reports.test_quotes import KIND, XSS, seed
from tests.staff.conftest import login_as, staff_client, staff_settings

__all__ = ["staff_client", "staff_settings"]  # fixtures used here
CODE = "bully-2026"
QUOTES = f"/staff/reports/{CODE}/quotes"
ESCAPED_XSS = "&lt;script&gt;alert(&#34;you said&#34;)&lt;/script&gt;"


def seeded(settings: Settings) -> None:
    engine = create_db_engine(settings.effective_database_url)
    try:
        seed(Repository(engine))
    finally:
        engine.dispose()


def audit(settings: Settings, action: str) -> list:
    engine = create_db_engine(settings.effective_database_url)
    try:
        entries = read(Repository(engine), lambda connection: audit_entries(connection))
    finally:
        engine.dispose()
    return [entry for entry in entries if entry.action == action]


def form_of(html: str, answer_text_escaped: str) -> tuple[str, dict[str, str]]:
    """(action URL, hidden fields) of the form under the quote with this (escaped) text."""
    item = next(part for part in html.split('class="quote-item') if answer_text_escaped in part)
    action = re.search(r'<form method="post" action="([^"]+)"', item)
    assert action is not None
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', item))
    return action.group(1), fields


async def everything(client: TestClient) -> str:
    """The report page and every export, as text."""
    parts = [await (await client.get(f"/staff/reports/{CODE}")).text()]
    for format_ in ("html", "csv", "json"):
        response = await client.get(f"/staff/reports/{CODE}/download/{format_}")
        assert response.status == 200
        parts.append(await response.text())
    response = await client.get(f"/staff/reports/{CODE}/download/xlsx")
    book = load_workbook(io.BytesIO(await response.read()))
    parts += [str(c) for sheet in book for row in sheet.iter_rows(values_only=True) for c in row]
    return "\n".join(parts)


async def test_other_roles_cannot_read_or_approve_quotes(
    staff_client: TestClient, staff_settings: Settings
) -> None:
    await asyncio.to_thread(seeded, staff_settings)
    for role in ("board_viewer", "facilitator", "admin"):
        staff_client.session.cookie_jar.clear()
        session = await login_as(staff_client, role)
        page = await staff_client.get(QUOTES, allow_redirects=False)
        assert page.status == 403
        assert KIND not in await page.text()
        for action in ("approve", "withdraw"):
            response = await staff_client.post(
                f"{QUOTES}/1/{action}",
                data=session.form(text_sha256="0" * 64),
                allow_redirects=False,
            )
            assert response.status == 403, (role, action)
        report = await staff_client.get(f"/staff/reports/{CODE}")
        assert 'id="choose-quotes"' not in await report.text()
    assert audit(staff_settings, "report.quote_approve") == []
    assert len(audit(staff_settings, "access.denied")) >= 9


async def test_a_lead_approves_and_withdraws_a_quote(
    staff_client: TestClient, staff_settings: Settings
) -> None:
    await asyncio.to_thread(seeded, staff_settings)
    session = await login_as(staff_client, "safeguarding_lead")
    report = await staff_client.get(f"/staff/reports/{CODE}")
    assert 'id="choose-quotes"' in await report.text()
    page = await staff_client.get(QUOTES)
    assert page.status == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = await page.text()
    assert KIND in html and ESCAPED_XSS in html and "<script>alert" not in html
    assert "I am fine now" not in html  # its writer had a flag
    action, fields = form_of(html, ESCAPED_XSS)
    assert action.endswith("/approve")

    # no CSRF token: refused, nothing approved
    refused = await staff_client.post(
        action, data={"text_sha256": fields["text_sha256"]}, allow_redirects=False
    )
    assert refused.status == 403
    assert XSS not in await everything(staff_client)
    # the text read must be the text approved
    stale = await staff_client.post(
        action, data=session.form(text_sha256="f" * 64), allow_redirects=False
    )
    assert stale.status == 409 and "changed since you read it" in await stale.text()

    approved = await staff_client.post(action, data=session.form(**fields), allow_redirects=False)
    assert approved.status == 303 and approved.headers["Location"].startswith(QUOTES)
    entries = audit(staff_settings, "report.quote_approve")
    assert len(entries) == 1 and entries[0].actor_id == session.user.id
    assert XSS not in entries[0].details_json  # the hash, never the text
    assert entries[0].target == f"answer:{action.split('/')[-2]}"

    # every view escapes it; JSON carries it as a string; KIND was never approved
    shown = await everything(staff_client)
    assert ESCAPED_XSS in shown and "<script>alert" not in shown.split('"quotes"')[0]
    assert KIND not in shown
    data = await (await staff_client.get(f"/staff/reports/{CODE}/download/json")).json()
    assert data["quotes"] == [XSS]

    page = await staff_client.get(QUOTES)
    withdraw, fields = form_of(await page.text(), ESCAPED_XSS)
    assert withdraw.endswith("/withdraw")
    withdrawn = await staff_client.post(
        withdraw, data=session.form(**fields), allow_redirects=False
    )
    assert withdrawn.status == 303
    assert len(audit(staff_settings, "report.quote_withdraw")) == 1
    shown = await everything(staff_client)
    assert XSS not in shown and ESCAPED_XSS not in shown and KIND not in shown


async def test_bad_quote_requests(staff_client: TestClient, staff_settings: Settings) -> None:
    await asyncio.to_thread(seeded, staff_settings)
    session = await login_as(staff_client, "safeguarding_lead")
    for path in (f"{QUOTES}/x/approve", f"{QUOTES}/1/delete", f"{QUOTES}/99999999999/approve"):
        response = await staff_client.post(path, data=session.form(), allow_redirects=False)
        assert response.status == 404, path
    missing = await staff_client.post(
        f"{QUOTES}/1/approve", data=session.form(text_sha256="short"), allow_redirects=False
    )
    assert missing.status == 409
    nowhere = await staff_client.get("/staff/reports/nope/quotes")
    assert nowhere.status == 404
    odd = await staff_client.get(f"{QUOTES}?after=-1")
    assert odd.status == 200
