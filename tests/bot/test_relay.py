"""The relay handle: staff reply to a young person without holding their address."""

from __future__ import annotations

import pytest

from bot.relay import Relay, RelayError, open_handle, seal_handle

SECRET = b"a test secret that is long enough for HKDF"


def test_a_handle_opens_to_what_was_sealed_and_hides_it() -> None:
    handle = seal_handle(SECRET, "telegram", "123456789")
    assert "123456789" not in handle and "telegram" not in handle
    assert open_handle(SECRET, handle) == ("telegram", "123456789")
    # Two seals of the same address differ, so handles cannot be matched up.
    assert seal_handle(SECRET, "telegram", "123456789") != handle


def test_a_handle_does_not_open_with_another_secret_or_when_tampered() -> None:
    handle = seal_handle(SECRET, "web", "session-token")
    with pytest.raises(RelayError):
        open_handle(b"another secret entirely, also long", handle)
    with pytest.raises(RelayError):
        open_handle(SECRET, handle[:-4] + "AAAA")
    with pytest.raises(RelayError):
        open_handle(SECRET, "not a handle ✗")


async def test_delivery_goes_to_the_channel_of_the_handle() -> None:
    sent: list[tuple[str, str]] = []

    async def deliver_web(user_key: str, text: str) -> None:
        sent.append((user_key, text))

    relay = Relay(SECRET)
    relay.register("web", deliver_web)
    assert await relay.deliver(seal_handle(SECRET, "web", "tok"), "Hello") == "web"
    assert sent == [("tok", "Hello")]
    with pytest.raises(RelayError, match="no deliverer"):
        await relay.deliver(seal_handle(SECRET, "telegram", "42"), "Hello")
    assert sent == [("tok", "Hello")]
