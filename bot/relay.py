"""Replies from the safeguarding team to a young person, without staff ever seeing who they are.

When a young person agrees to be contacted, the dispatcher stores on the flag a
*relay handle*: their channel and channel address (a Telegram chat id, a web
chat session token) encrypted with a key derived from the server secret. Staff
pages only ever hold the flag id; the server opens the handle at the moment of
delivery and hands the text to that channel's deliverer.

Each channel registers one deliverer (`Relay.register`) at start-up.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger("besafe.relay")

# (channel user key, text) -> delivered; raise on failure.
Deliver = Callable[[str, str], Awaitable[None]]


class RelayError(Exception):
    """The handle cannot be opened, or no deliverer serves its channel."""


def _fernet(secret: bytes) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"besafe relay handle v1"
    ).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def seal_handle(secret: bytes, channel: str, user_key: str) -> str:
    """Encrypt a channel address; the result is safe to store on a flag."""
    if ":" in channel:
        raise ValueError(f"bad channel name {channel!r}")
    return _fernet(secret).encrypt(f"{channel}:{user_key}".encode()).decode("ascii")


def open_handle(secret: bytes, handle: str) -> tuple[str, str]:
    """(channel, user key) from a handle made by `seal_handle` with the same secret."""
    try:
        plain = _fernet(secret).decrypt(handle.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError) as error:
        raise RelayError("the relay handle cannot be opened") from error
    channel, _, user_key = plain.partition(":")
    return channel, user_key


class Relay:
    """Delivers a staff reply through the young person's own channel."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._deliverers: dict[str, Deliver] = {}

    def register(self, channel: str, deliver: Deliver) -> None:
        self._deliverers[channel] = deliver

    def channels(self) -> frozenset[str]:
        return frozenset(self._deliverers)

    async def deliver(self, handle: str, text: str) -> str:
        """Send `text`; returns the channel name. Raises RelayError when it cannot."""
        channel, user_key = open_handle(self._secret, handle)
        deliver = self._deliverers.get(channel)
        if deliver is None:
            raise RelayError(f"no deliverer for channel {channel!r}")
        await deliver(user_key, text)
        log.info("staff reply delivered", extra={"channel": channel})
        return channel
