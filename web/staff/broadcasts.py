"""Broadcast progress in the staff app (facilitators and admins): counts, never people.

- GET /staff/broadcasts/{code}/progress.json: per broadcast (the invitation, each
  reminder) how many are queued, sending, sent, failed, blocked and cancelled.
- GET /staff/broadcasts/{code}: a small page around the fragment
  `staff/broadcast_progress.html`, which the campaign page includes with
  `{% set broadcast_code = campaign.code %}{% include "staff/broadcast_progress.html" %}`;
  its script (`/static/staff/broadcast_progress.js`) polls the JSON and moves the bars.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy.engine import Connection

from storage.broadcasts import broadcast_progress, subscriber_counts
from storage.review import read
from web.staff.auth import render, repository_of, require_role

BROADCAST_ROLES: tuple[str, ...] = ("facilitator", "admin")


def setup_broadcast_progress(app: web.Application) -> None:
    router = app.router
    router.add_get("/staff/broadcasts/{code}", progress_page, name="staff-broadcasts")
    router.add_get(
        "/staff/broadcasts/{code}/progress.json", progress_json, name="staff-broadcasts-json"
    )


async def progress_data(request: web.Request, code: str) -> dict[str, object]:
    def work(connection: Connection) -> tuple:
        return broadcast_progress(connection, code), subscriber_counts(connection)

    found, subscribers = await asyncio.to_thread(read, repository_of(request), work)
    if found is None:
        raise web.HTTPNotFound(text="No campaign has this code.")
    return {
        "campaign": code,
        "subscribers": subscribers["subscribed"],
        "broadcasts": [counts.as_dict() for counts in found],
    }


@require_role(*BROADCAST_ROLES)
async def progress_json(request: web.Request) -> web.Response:
    data = await progress_data(request, request.match_info["code"])
    return web.json_response(data, headers={"Cache-Control": "no-store"})


@require_role(*BROADCAST_ROLES)
async def progress_page(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    data = await progress_data(request, code)
    return render(
        request, "staff/broadcasts.html", {"broadcast_code": code, "broadcast_data": data}
    )
