"""Cleaning what a young person typed, before moderation and the engine see it.

Pure and total: any string in, a `CleanText` out. Emoji, accents and
right-to-left text are kept exactly as written (after NFC normalisation);
only invisible control characters that no keyboard meant to send, and bidi
overrides that could disguise a message, are dropped.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Characters that join or modify the character before them; a trim never
# leaves one of these dangling at the cut (or cuts an emoji sequence apart).
_JOINERS = frozenset({"\u200d", "\ufe0e", "\ufe0f"})
# Bidi embeddings, overrides and isolates: they can make a message display in a
# different order from what was typed (spoofing in the staff review queue). The
# plain marks (U+200E/U+200F) that right-to-left writers really use are kept.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = str.maketrans({"\u2028": "\n", "\u2029": "\n", "\x85": "\n"})


@dataclass(frozen=True)
class CleanText:
    text: str  # the cleaned (and possibly trimmed) text
    trimmed: bool  # True when the cleaned text was longer than `limit` and was cut
    original_length: int  # characters in the raw text as received


def _keep(char: str) -> bool:
    if char in "\n\t":
        return True
    if char in _BIDI_CONTROLS:
        return False
    category = unicodedata.category(char)
    # Cc: C0/C1 controls (and DEL); Cs: lone surrogates, which cannot be stored as UTF-8.
    return category not in ("Cc", "Cs")


def _is_attached(char: str) -> bool:
    """True for a character that belongs to the one before it (accent, joiner, skin tone)."""
    return (
        unicodedata.combining(char) != 0
        or char in _JOINERS
        or "\U0001f3fb" <= char <= "\U0001f3ff"  # emoji skin-tone modifiers
        or "\U000e0020" <= char <= "\U000e007f"  # emoji tag characters (flags)
    )


def clean_text(raw: str, *, limit: int) -> CleanText:
    """NFC-normalise `raw`, drop control characters (keeping newline and tab),
    strip whitespace at both ends and cut the result to at most `limit` characters.

    A cut never separates an accent, joiner or emoji modifier from its base
    character, so the kept text can be a few characters shorter than `limit`.
    """
    if not isinstance(raw, str):
        raw = "" if raw is None else str(raw)
    original_length = len(raw)
    text = raw.replace("\r\n", "\n").replace("\r", "\n").translate(_LINE_BREAKS)
    text = "".join(char for char in text if _keep(char))
    text = unicodedata.normalize("NFC", text).strip()
    limit = max(0, limit)
    if len(text) <= limit:
        return CleanText(text=text, trimmed=False, original_length=original_length)
    cut = limit
    while 0 < cut < len(text) and _is_attached(text[cut]):
        cut -= 1
    if cut > 0 and text[cut - 1] == "\u200d":  # never end on a dangling joiner
        cut -= 1
    return CleanText(text=text[:cut].rstrip(), trimmed=True, original_length=original_length)
