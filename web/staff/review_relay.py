"""Staff replies in the web chat: the "web" deliverer of the relay and the chat's updates.

For the web chat the stored message IS the delivery: a staff reply is a
`messages` row linked to the flag (author "staff"), and the young person's page
asks for new ones every few seconds (`GET /chat/api/updates?after=<id>`, see
web/chat.py). The young person is found the way the dispatcher finds them: the
keyed pseudonym of ("web", their session token); the token itself is never
stored.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from storage import review as store
from storage.pseudonyms import pseudonym
from storage.repository import Repository
from web.keys import CHAT_UPDATES, RELAY

log = logging.getLogger("besafe.web.staff.relay")

WEB_CHANNEL = "web"


class WebReplies:
    def __init__(self, repository: Repository, secret: bytes) -> None:
        self._repository = repository
        self._secret = secret

    async def staff_replies(self, user_key: str, after: int) -> list[tuple[int, str]]:
        key = pseudonym(self._secret, WEB_CHANNEL, user_key)
        return await asyncio.to_thread(
            store.read,
            self._repository,
            lambda connection: store.staff_replies_for(connection, key, after),
        )

    async def deliver(self, user_key: str, text: str) -> None:
        """Nothing to send: the reply is stored, and the young person's page fetches it."""
        log.debug("web reply stored for the chat page to fetch")


def setup_web_replies(app: web.Application, repository: Repository, secret: bytes) -> None:
    replies = WebReplies(repository, secret)
    app[RELAY].register(WEB_CHANNEL, replies.deliver)
    app[CHAT_UPDATES] = replies
