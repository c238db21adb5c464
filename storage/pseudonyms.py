"""Pseudonyms: the only identity a young person has in the database.

A pseudonym is a keyed hash (HMAC-SHA256) of the channel name and the
channel's own user key (a Telegram chat id, a web chat session). Without the
secret it cannot be reversed or recomputed, and the raw key is never stored.
"""

from __future__ import annotations

import hashlib
import hmac

# Domain separation: this key is never used to MAC anything shaped like this for another purpose.
_DOMAIN = b"besafe/pseudonym/v1"


def _length_prefixed(part: str) -> bytes:
    data = part.encode("utf-8")
    return len(data).to_bytes(8, "big") + data


def pseudonym(secret: bytes, channel: str, user_key: str) -> str:
    """64 lowercase hex characters that stand for (channel, user_key) under `secret`.

    Each part is length-prefixed, so ("a:b", "c") and ("a", "b:c") can never collide.
    """
    if not secret:
        raise ValueError("a non-empty secret is needed to make pseudonyms")
    mac = hmac.new(secret, _length_prefixed(_DOMAIN.decode()), hashlib.sha256)
    mac.update(_length_prefixed(channel))
    mac.update(_length_prefixed(user_key))
    return mac.hexdigest()
