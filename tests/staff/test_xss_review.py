"""XSS: what a young person (or a lead) writes is shown as text on every review page.

Payloads go through the real web chat into real flags; the queue, the flag page,
its live part and the export are parsed as HTML, and must show each payload as
text with no element or attribute it could have made.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from aiohttp.test_utils import TestClient

from tests.staff.test_review import HIGH, YoungPerson, act, lead_of

PAYLOADS = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "'><iframe src=javascript:alert(1)>",
    "</textarea><script>alert(2)</script>",
    "</p></li></ol><b onmouseover=alert(3)>x</b>",
    '<a href="javascript:alert(4)">click</a>',
    "{{ 7*7 }} {% if 1 %}jinja{% endif %}",
    "&lt;b&gt;already escaped&lt;/b&gt;",
    "<mark class=evidence>fake evidence</mark>",
)
OUR_SCRIPTS = {"/static/staff/staff.js", "/static/staff/review.js"}


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def assert_inert(html: str) -> Page:
    page = parse(html)
    for tag, attrs in page.tags:
        assert tag not in ("img", "svg", "iframe", "b"), (tag, attrs)
        href = str(attrs.get("href") or "")
        assert not href.lower().startswith("javascript"), (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "script":
            assert attrs.get("src") in OUR_SCRIPTS, attrs
        if tag == "mark":
            assert attrs.get("class") == "evidence" and attrs.get("title")
    return page


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_payloads_from_the_web_chat_are_text_on_every_review_page(
    staff_client: TestClient,
) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    first, *rest = PAYLOADS
    await person.say(first)  # context before the flag
    flag_id = await person.disclose(f"{PAYLOADS[1]} {HIGH} {PAYLOADS[2]}")
    lead = await lead_of(staff_client)
    await act(staff_client, lead, flag_id, "reply", text=PAYLOADS[3])
    for payload in rest[2:]:
        await person.say(payload)  # into the flag's conversation
    await act(staff_client, lead, flag_id, "note", text=PAYLOADS[5])
    await act(staff_client, lead, flag_id, "referral", destination="other", reference=PAYLOADS[6])

    for path in ("/staff/queue", "/staff/queue/rows"):
        html = await (await staff_client.get(path)).text()
        assert_inert(html)
        assert f'data-flag-id="{flag_id}"' in html
    for path in (f"/staff/flags/{flag_id}", f"/staff/flags/{flag_id}/export"):
        response = await staff_client.get(path)
        assert response.status == 200
        html = await response.text()
        page = assert_inert(html)
        text = "".join(page.text)
        for payload in PAYLOADS:
            assert payload in text, (path, payload)
        marks = [attrs for tag, attrs in page.tags if tag == "mark"]
        assert [m["title"] for m in marks] == ["physical_abuse"]
    live = await (await staff_client.get(f"/staff/flags/{flag_id}/live")).text()
    assert PAYLOADS[-1] in "".join(assert_inert(live).text)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_staff_replies_reach_the_chat_as_plain_json_text(staff_client: TestClient) -> None:
    person = YoungPerson(staff_client)
    await person.open()
    flag_id = await person.disclose(HIGH)
    lead = await lead_of(staff_client)
    for payload in PAYLOADS:
        await act(staff_client, lead, flag_id, "reply", text=payload)
    replies = await person.updates()
    assert [r["text"] for r in replies] == list(PAYLOADS)  # chat.js draws with textContent
