"""Help and signposting text shown to young people.

Kept in one place so that a safeguarding lead can review every word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

REPLIES_FILE = Path(__file__).with_name("data") / "replies.yaml"

HELP_LINES: tuple[str, ...] = (
    "If you are in danger right now, call 999.",
    "Childline is free and private, any time: call 0800 1111 or chat at childline.org.uk.",
    "You can text SHOUT to 85258 if you need to talk to someone now.",
    "If someone online is asking you for pictures or making you feel unsafe, "
    "you can report it to CEOP at ceop.police.uk.",
    "You can also talk to a teacher or another adult you trust.",
)


def help_text() -> str:
    """The answer to `help`, which works at every moment of a conversation."""
    return "Here is where you can get help:\n" + "\n".join(f"• {line}" for line in HELP_LINES)


def thanks_signposting() -> str:
    """The short reminder added to the end of every survey."""
    return (
        "If anything in this survey has upset you, or you want to talk to someone, "
        "Childline is there any time on 0800 1111. In an emergency call 999. "
        "Send 'help' whenever you want these numbers again."
    )


@dataclass(frozen=True)
class DisclosureReplies:
    """Wording of the immediate reply and the contact question (data/replies.yaml)."""

    priority: tuple[str, ...]
    default_opening: str
    urgent_opening: str
    now_urgent: str
    now_other: str
    always_lines: tuple[str, ...]
    openings: dict[str, str]
    extras: dict[str, str]
    texts: dict[str, str]  # contact question, answers, carry-on question, staff-conversation lines

    def opening_category(self, categories: Sequence[str]) -> str | None:
        ranked = [c for c in self.priority if c in categories]
        return ranked[0] if ranked else (categories[0] if categories else None)


_TEXT_KEYS = (
    "contact_question",
    "contact_yes",
    "contact_no",
    "contact_said_yes",
    "contact_said_no",
    "contact_hint",
    "carry_on_question",
    "carry_on",
    "stop_for_now",
    "staff_conversation_ack",
    "staff_conversation_paused",
    "waiting_for_staff",
    "waiting_ack",
)


def _clean(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty or missing text in {REPLIES_FILE.name}")
    return " ".join(text.split())


@lru_cache(maxsize=2)
def load_replies(path: Path = REPLIES_FILE) -> DisclosureReplies:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    categories = data.get("categories") or {}
    return DisclosureReplies(
        priority=tuple(data["priority"]),
        default_opening=_clean(data["default"]["opening"]),
        urgent_opening=_clean(data["urgent_opening"]),
        now_urgent=_clean(data["now_lines"]["urgent"]),
        now_other=_clean(data["now_lines"]["other"]),
        always_lines=tuple(_clean(line) for line in data["always_lines"]),
        openings={name: _clean(entry["opening"]) for name, entry in categories.items()},
        extras={
            name: _clean(entry["extra"]) for name, entry in categories.items() if "extra" in entry
        },
        texts={key: _clean(data[key]) for key in _TEXT_KEYS},
    )


def disclosure_reply(severity: str | None, categories: Sequence[str] = ()) -> str:
    """The immediate reply when a message may be telling us about harm.

    Sent at once, whatever the staff side is doing: an opening that fits the
    category, what to do now (999 first when it may be urgent), the services,
    and a line for the category when there is one.
    """
    replies = load_replies()
    category = replies.opening_category(categories)
    if severity == "urgent":
        opening = replies.urgent_opening
        if category == "immediate_danger":
            opening = replies.openings[category]
    else:
        opening = replies.openings.get(category or "", replies.default_opening)
    lines = [opening, replies.now_urgent if severity == "urgent" else replies.now_other]
    lines.extend(replies.always_lines)
    extra = replies.extras.get(category or "")
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def reply_text(key: str) -> str:
    """One of the fixed lines of the disclosure conversation (see `_TEXT_KEYS`)."""
    return load_replies().texts[key]
