"""Help and signposting text shown to young people.

Kept in one place so that a safeguarding lead can review every word.
"""

from __future__ import annotations

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


def disclosure_reply(severity: str | None) -> str:
    """The immediate reply when a message may be telling us about harm.

    Sent at once, whatever the staff side is doing. The fuller, per-category
    replies and the request for consent to be contacted come with issue 3.
    """
    first = (
        "Thank you for telling us. You did the right thing, and it is not your fault."
        if severity != "urgent"
        else "Thank you for telling us. It sounds like you might not be safe right now."
    )
    now = (
        "If you are in danger right now, please call 999."
        if severity == "urgent"
        else "If you are ever in danger, call 999."
    )
    return (
        f"{first}\n{now}\n"
        "You can talk to Childline any time, for free: 0800 1111 or childline.org.uk.\n"
        "A member of our safeguarding team will read what you wrote."
    )
