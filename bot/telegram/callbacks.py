"""Inline-button callback data: question id + choice value, compact, and signed.

Telegram allows 1-64 bytes of callback data and hands back whatever a client
sends, so the data carries a short MAC over (chat id, question id, value): a tap
whose data was not made by us, or was made for another chat, is refused.

Forms (each ends with an 8-character tag, 48 bits of HMAC-SHA256):
  "<question id>|<value>|<tag>"   the usual case
  "~<index>|<tag>"                when that would not fit in 64 bytes (or contains "|"):
                                  the index of the button on its message; the channel
                                  reads that button's label and passes it on as typed text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

MAX_BYTES = 64
_TAG_CHARS = 8


def callback_key(secret: bytes) -> bytes:
    return hmac.new(secret, b"besafe telegram callback v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class Chosen:
    """A decoded tap: a choice on a question, or (fallback form) a button index."""

    question_id: str | None
    value: str | None
    index: int | None = None


def _tag(key: bytes, chat_id: int, body: str) -> str:
    # hmac.digest: the one-shot C path (an hmac.new object per button cost more than the rest
    # of rendering a keyboard).
    digest = hmac.digest(key, f"{chat_id}\x00{body}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest[:6]).decode("ascii")


def encode(key: bytes, chat_id: int, question_id: str | None, value: str, index: int) -> str:
    qid = question_id or ""
    if "|" not in qid and "|" not in value and not qid.startswith("~"):
        body = f"{qid}|{value}"
        data = f"{body}|{_tag(key, chat_id, body)}"
        if len(data.encode("utf-8")) <= MAX_BYTES:
            return data
    body = f"~{index}"
    return f"{body}|{_tag(key, chat_id, body)}"


def decode(key: bytes, chat_id: int, data: str) -> Chosen | None:
    """The tap `data` stands for, or None when it is not ours (forged, other chat, garbled)."""
    if not data or len(data.encode("utf-8", "replace")) > MAX_BYTES:
        return None
    body, sep, tag = data.rpartition("|")
    if not sep or len(tag) != _TAG_CHARS:
        return None
    if not hmac.compare_digest(tag, _tag(key, chat_id, body)):
        return None
    if body.startswith("~"):
        digits = body[1:]
        if not digits.isdigit() or len(digits) > 3:
            return None
        return Chosen(None, None, int(digits))
    question_id, sep, value = body.partition("|")
    if not sep or not value:
        return None
    return Chosen(question_id or None, value)
