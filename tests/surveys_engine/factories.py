"""Small surveys built directly in Python, covering every question type and rule.

Transcripts name a factory by its key in `SURVEYS`; its campaign code is `CODES[name]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from surveys.demographics import school_year_question
from surveys.events import EngineContext, Offer
from surveys.model import Audience, Choice, Condition, Question, Survey

YES_NO = (Choice("yes", "Yes"), Choice("no", "No"))


def full_survey() -> Survey:
    """Every question type, a required question, branching, prefer-not-to-say and an audience."""
    bullied_yes = Condition("equals", "bullied", ("yes",))
    return Survey(
        id="bullying",
        version=1,
        title="Bullying",
        topic="bullying",
        intro="We want to know about bullying, so that schools can do more to stop it.",
        thanks="Thank you for answering! Your answers will help make schools safer.",
        audience=Audience(min_year=5, max_year=11),
        estimated_minutes=5,
        questions=(
            school_year_question(years=(3, 13)),
            Question("about_bullying", "info", "These questions are about bullying.", "About"),
            Question(
                "bullied",
                "yes_no",
                "Have you been bullied in the last 12 months?",
                "Bullied in the last 12 months",
                choices=YES_NO,
                required=True,
            ),
            Question(
                "where",
                "multiple_choice",
                "Where did it happen?",
                "Where bullying happened",
                choices=(
                    Choice("school", "At school"),
                    Choice("journey", "On the way to or from school"),
                    Choice("online", "Online"),
                    Choice("elsewhere", "Somewhere else"),
                ),
                prefer_not_to_say=True,
                show_if=bullied_yes,
            ),
            Question(
                "told",
                "yes_no",
                "Did you tell anyone?",
                "Told someone",
                choices=YES_NO,
                show_if=bullied_yes,
            ),
            Question(
                "deal",
                "single_choice",
                "How well does your school deal with bullying?",
                "School deals with bullying",
                choices=(
                    Choice("very_well", "Very well"),
                    Choice("quite_well", "Quite well"),
                    Choice("not_very_well", "Not very well"),
                    Choice("not_at_all_well", "Not at all well"),
                ),
                prefer_not_to_say=True,
            ),
            Question(
                "safe",
                "rating",
                "How safe do you feel at school?",
                "Feels safe at school",
                min=1,
                max=5,
                min_label="Not safe at all",
                max_label="Very safe",
            ),
            Question(
                "hours",
                "number",
                "About how many hours a day are you online?",
                "Hours online a day",
                min=0,
                max=24,
            ),
            Question(
                "anything",
                "free_text",
                "Is there anything else you'd like to tell us?",
                "Anything else",
                max_length=500,
            ),
        ),
    )


def branching_survey() -> Survey:
    """A chain of conditions (q2 needs q1 = yes, q3 needs q2 answered) and a closing info step."""
    return Survey(
        id="online",
        version=2,
        title="Staying safe online",
        topic="online_safety",
        intro="A few questions about being online.",
        thanks="Thanks a lot!",
        questions=(
            Question("social", "yes_no", "Do you use social media?", "Uses social media"),
            Question(
                "apps",
                "multiple_choice",
                "Which apps do you use?",
                "Apps used",
                choices=(
                    Choice("video", "Video apps"),
                    Choice("chat", "Chat apps"),
                    Choice("games", "Games"),
                ),
                show_if=Condition("equals", "social", ("yes",)),
                required=True,
            ),
            Question(
                "strangers",
                "yes_no",
                "Do you talk to people you don't know there?",
                "Talks to strangers",
                show_if=Condition("answered", "apps"),
            ),
            Question(
                "age",
                "number",
                "How old are you?",
                "Age",
                min=8,
                max=18,
                prefer_not_to_say=True,
            ),
            Question("last_info", "info", "That was the last question.", "End"),
        ),
    )


def tiny_survey() -> Survey:
    """Two questions: the smallest useful survey."""
    return Survey(
        id="tiny",
        version=1,
        title="Quick check",
        topic="relationships",
        intro="Just two quick questions.",
        thanks="All done, thank you.",
        questions=(
            Question(
                "ok",
                "single_choice",
                "How are things with your friends?",
                "Friends",
                choices=(
                    Choice("good", "Good"),
                    Choice("sometimes", "Sometimes good"),
                    Choice("bad", "Not good"),
                ),
                required=True,
            ),
            Question("why", "free_text", "Tell us why, if you like.", "Why"),
        ),
    )


def older_survey() -> Survey:
    """Only for Years 10 to 13 (audience tests)."""
    return Survey(
        id="relationships",
        version=1,
        title="Relationships",
        topic="relationships",
        intro="Questions about relationships.",
        thanks="Thank you.",
        audience=Audience(min_year=10, max_year=13),
        questions=(
            school_year_question(),
            Question("partner", "yes_no", "Have you had a boyfriend or girlfriend?", "Partner"),
        ),
    )


SURVEYS: dict[str, Callable[[], Survey]] = {
    "full": full_survey,
    "branching": branching_survey,
    "tiny": tiny_survey,
    "older": older_survey,
}
CODES = {"full": "bully24", "branching": "online24", "tiny": "tiny1", "older": "rel24"}
TITLES = {
    "full": "Bullying 2024",
    "branching": "Online safety",
    "tiny": "Quick check",
    "older": "Relationships",
}


def offer(name: str) -> Offer:
    return Offer(code=CODES[name], survey=SURVEYS[name](), title=TITLES[name])


def context(
    names: Iterable[str] = ("full",),
    *,
    completed: Iterable[str] = (),
    max_text_length: int = 2000,
) -> EngineContext:
    return EngineContext(
        offers=tuple(offer(name) for name in names),
        completed=frozenset(completed),
        max_text_length=max_text_length,
    )
