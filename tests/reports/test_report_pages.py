"""The report pages of the staff app (real app, aiohttp client, SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import io

from aiohttp.test_utils import TestClient
from openpyxl import load_workbook

from config.settings import Settings
from storage.db import create_db_engine
from storage.repository import Repository
from tests.reports.seed import Person, add_campaign, answer_all, shipped
from tests.staff.conftest import login_as, staff_client, staff_settings

__all__ = ["staff_client", "staff_settings"]  # fixtures used here
CODE = "bully-2026"


def seed(settings: Settings) -> None:
    engine = create_db_engine(settings.effective_database_url)
    try:
        repository = Repository(engine)
        add_campaign(repository, CODE, shipped())
        people = [
            Person(
                f"p{n}",
                {
                    "school_year": ("answered", "y8" if n < 20 else "y9"),
                    "bullied_year": ("answered", "yes" if n % 4 == 0 else "no"),
                    "school_deals": ("answered", "quite_well" if n % 2 else "very_well"),
                    "anything_else": ("answered", f"<script>alert({n})</script> Sam"),
                },
                flag=("high", ["bullying"]) if n == 3 else None,
            )
            for n in range(22)
        ]
        answer_all(repository, CODE, people)
    finally:
        engine.dispose()


async def test_board_viewer_reads_a_report_and_downloads_it(
    staff_client: TestClient, staff_settings: Settings
) -> None:
    await asyncio.to_thread(seed, staff_settings)
    await login_as(staff_client, "board_viewer")
    index = await staff_client.get("/staff/reports")
    assert index.status == 200
    assert f'href="/staff/reports/{CODE}"' in await index.text()

    page = await staff_client.get(f"/staff/reports/{CODE}")
    assert page.status == 200
    html = await page.text()
    assert "<svg" in html and 'aria-describedby="t-bullied_year"' in html
    assert "Bullied at or near school in the last 12 months" in html
    # year 9 has 2 young people: not offered; the free text never shows
    assert "Year 9" not in html.split("by school year")[1].split("</table>")[0]
    assert "<script>alert" not in html and "Sam" not in html
    assert "27% of young people who answered said yes" in html  # 6 of 22

    crossed = await staff_client.get(f"/staff/reports/{CODE}?by=bullied_year")
    assert crossed.status == 200 and "By “Bullied at or near school" in await crossed.text()
    ignored = await staff_client.get(f"/staff/reports/{CODE}?by=anything_else")
    assert ignored.status == 200 and 'id="crosstab-heading"' not in await ignored.text()

    download = await staff_client.get(f"/staff/reports/{CODE}/download/xlsx")
    assert download.status == 200
    assert download.headers["Content-Disposition"].endswith('.xlsx"')
    book = load_workbook(io.BytesIO(await download.read()))
    assert book.sheetnames[0] == "Summary"
    for format_ in ("csv", "json", "html"):
        response = await staff_client.get(f"/staff/reports/{CODE}/download/{format_}")
        assert response.status == 200
        body = await response.text()
        assert "Sam" not in body and "<script>alert" not in body

    assert (await staff_client.get("/staff/reports/nope")).status == 404
    assert (await staff_client.get(f"/staff/reports/{CODE}/download/pdf")).status == 404
    # a board viewer never sees a flag or anything a young person wrote
    queue = await staff_client.get("/staff/queue", allow_redirects=False)
    assert queue.status == 403
    flag = await staff_client.get("/staff/flags/1", allow_redirects=False)
    assert flag.status == 403


async def test_reports_need_a_login(staff_client: TestClient) -> None:
    response = await staff_client.get(f"/staff/reports/{CODE}", allow_redirects=False)
    assert response.status == 302 and "/staff/login" in response.headers["Location"]
