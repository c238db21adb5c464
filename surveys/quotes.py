"""Approved quotes ("you said"): which free-text answers may be offered, and their order.

Pure: values in, values out. A quote is offered to a safeguarding lead only
when it is a short free-text answer that the screening rules do not flag
today (the storage query has already left out everyone who ever had a flag).
In a report, quotes are text only, in an order set by a hash of the text, so
the order says nothing about who answered first or last.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from moderation.screen import screen

# Short enough to read as one quote on a board slide and to be read in full before
# approval; long answers tell more about the writer. A tweet's length.
MAX_QUOTE_CHARS = 280
# A stored answer longer than this (JSON escapes included) cannot be a quote: not read.
MAX_QUOTE_JSON_CHARS = MAX_QUOTE_CHARS * 6 + 2


def quote_text(value_json: str | None) -> str | None:
    """The text of a stored free-text answer if it may be offered as a quote, else None."""
    if value_json is None or len(value_json) > MAX_QUOTE_JSON_CHARS:
        return None
    try:
        value = json.loads(value_json)
    except ValueError:
        return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > MAX_QUOTE_CHARS:
        return None
    if screen(text).flagged:  # rules may have changed since it was written
        return None
    return text


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def report_order(texts: Iterable[str]) -> tuple[str, ...]:
    """Each distinct quote once, ordered by its hash: stable, and unrelated to when or
    by whom it was written."""
    return tuple(sorted(set(texts), key=text_sha256))
