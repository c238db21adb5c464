"""The disclosure categories, one list for the whole product.

The rules (data/rules.yaml), stage 2's examples, the replies and a survey choice's `flag`
marker all name one of these.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "suicide_self_harm",
    "physical_abuse",
    "sexual_abuse",
    "emotional_abuse",
    "neglect",
    "exploitation_grooming",
    "domestic_abuse",
    "relationship_abuse",
    "bullying",
    "immediate_danger",
    "other",
)
