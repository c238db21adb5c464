"""Progress of broadcasts: the staff JSON and page (facilitators and admins only), and the
CLI's progress bars. Counts only, never anything about a person."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.broadcast_status import bar, lines, show
from bot.broadcasts import enqueue_due_broadcasts
from config.settings import Settings
from storage import broadcasts as store
from storage.clock import utcnow
from storage.db import create_db_engine
from storage.repository import Repository
from storage.review import read
from tests.broadcasts.helpers import add_campaign, add_subscriber, settings
from tests.staff.conftest import TEST_SECRET_KEY, login_as
from tests.test_cli import run_cli
from web.app import create_app

NOW = utcnow()


def fill(repository: Repository) -> None:
    """An invitation to 5: 2 sent, 1 blocked, 1 failed, 1 still queued."""
    add_campaign(repository, "abw")
    ids = [add_subscriber(repository, 600 + n) for n in range(5)]
    enqueue_due_broadcasts(repository, NOW, settings())
    claimed = repository.run(
        lambda uow: store.claim_sends(uow, NOW, 4, "me", timedelta(seconds=60))
    )
    outcomes = zip(claimed, ("sent", "sent", "blocked", "failed"), strict=True)
    repository.run(
        lambda uow: store.finish_sends(uow, [(send.id, status, None) for send, status in outcomes])
    )
    assert len(ids) == 5


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path, database_url: str) -> TestClient:
    staff_settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
        log_format="text",
    )
    return await aiohttp_client(create_app(staff_settings))


@pytest.mark.parametrize("role", ["facilitator", "admin"])
async def test_facilitators_see_counts_as_json_and_a_live_page(
    client: TestClient, database_url: str, role: str
) -> None:
    engine = create_db_engine(database_url)
    fill(Repository(engine))
    engine.dispose()
    await login_as(client, role)
    response = await client.get("/staff/broadcasts/abw/progress.json")
    assert response.status == 200
    data = await response.json()
    assert data["campaign"] == "abw" and data["subscribers"] == 5
    (invitation,) = data["broadcasts"]
    assert {k: invitation[k] for k in ("kind", "queued", "sent", "failed", "blocked")} == {
        "kind": "invitation",
        "queued": 1,
        "sent": 2,
        "failed": 1,
        "blocked": 1,
    }
    assert invitation["total"] == 5 and invitation["done"] == 4
    page = await client.get("/staff/broadcasts/abw")
    html = await page.text()
    assert page.status == 200
    assert '<progress max="5" value="4">' in html
    assert "/static/staff/broadcast_progress.js" in html
    assert (await client.get("/staff/broadcasts/nope/progress.json")).status == 404


@pytest.mark.parametrize("role", ["board_viewer", "safeguarding_lead"])
async def test_other_roles_are_refused(client: TestClient, role: str) -> None:
    await login_as(client, role, totp=role == "safeguarding_lead")
    response = await client.get("/staff/broadcasts/abw/progress.json", allow_redirects=False)
    assert response.status == 403


def test_the_cli_draws_a_bar_per_broadcast(repository: Repository) -> None:
    fill(repository)
    progress = read(repository, lambda c: store.broadcast_progress(c, "abw"))
    assert progress is not None
    (line,) = lines("abw", progress)
    assert line.startswith("invitation")
    assert bar(4, 5) in line and " 80%" in line and "4/5" in line
    assert "sent 2 · waiting 1 · failed 1 · blocked 1" in line
    out = io.StringIO()
    assert show("abw", lambda: progress, follow=False, out=out) == 0
    assert out.getvalue().count("\n") == 1
    assert show("nope", lambda: None, follow=False, out=out) == 1
    assert bar(0, 0) == "[" + "-" * 30 + "]"


def test_main_py_broadcast_status_prints_the_bars(database_url: str, tmp_path: Path) -> None:
    engine = create_db_engine(database_url)
    fill(Repository(engine))
    engine.dispose()
    env = {"BESAFE_DATA_DIR": str(tmp_path), "BESAFE_DATABASE_URL": database_url}
    result = run_cli("broadcast", "status", "abw", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("invitation")
    assert "4/5" in result.stdout and "blocked 1" in result.stdout
    # --follow stops by itself once every send reached an end; here one is still queued,
    # so only the unknown code is checked that way.
    missing = run_cli("broadcast", "status", "nope", "--follow", env=env)
    assert missing.returncode == 1 and "no campaign has the code 'nope'" in missing.stderr
