"""The conversation engine: `step(state, event, context) -> Step`.

Pure: no I/O, no clock, no storage. The state is a JSON-serialisable dict and
is the engine's only memory between events; the host persists it with the
effects and delivers the outputs (see `surveys.events`). The survey itself is
never copied into the state: the state names the campaign code, survey id and
version, and the survey is found again among `context.offers` at every step.

State shape (version 1)::

    {
      "v": 1,
      "mode": "idle" | "welcome" | "question" | "paused" | "confirm" | "choose_forget",
      "code": str | None,            # the campaign in focus (not idle)
      "pending": {survey_id, version, title, topic} | None,   # welcome only
      "confirm": {"action": "restart" | "forget", "back_to": mode} | None,
      "responses": {                 # started, not yet completed, not erased
        code: {
          "survey_id": str, "version": int, "title": str, "topic": str,
          "answers": {question_id: {"status": str, "value": ...}},
          "at": question_id | None,  # the question being asked
          "seen": [info question ids already shown],
          "picked": [choice values tapped so far on a multiple-choice question],
        }
      },
      "school_year": int | None,     # remembered once told, to filter the menu
      "greeted": bool,
    }

A response stays in "responses" if its campaign closes, so that nothing is
started twice if it opens again; the menu only lists open campaigns.
"""

from __future__ import annotations

from dataclasses import dataclass

from moderation.signposting import help_text, thanks_signposting
from surveys.conditions import evaluate_condition
from surveys.demographics import SCHOOL_YEAR_QUESTION_ID, school_year_number
from surveys.events import (
    COMMANDS,
    AnswerRecorded,
    AnswerRemoved,
    AnswerStatus,
    ChoiceIn,
    CommandIn,
    Effect,
    EngineContext,
    Event,
    Offer,
    OutputKind,
    QuickReply,
    ResponseCompleted,
    ResponseErased,
    ResponseStarted,
    Say,
    Step,
    TextIn,
)
from surveys.matching import (
    PREFER_NOT_LABEL,
    answer_choices,
    choice_value,
    match_answer,
    normalise,
)
from surveys.model import PREFER_NOT_TO_SAY, AnswerValue, Audience, Choice, Question, Survey

STATE_VERSION = 1

# Quick-reply values the engine understands besides a question's own choices.
SKIP = "__skip__"
DONE = "__done__"
KEEP = "__keep__"
CARRY_ON = "__carry_on__"
OTHER_SURVEYS = "__surveys__"
CANCEL = "__cancel__"
YES = "yes"
NO = "no"

# `Say.question_id` of the engine's own prompts, so that a tap on an old
# prompt's button can be told apart from a tap on the current one.
CONSENT_PROMPT = "__consent__"
CONFIRM_PROMPT = "__confirm__"
PAUSED_PROMPT = "__paused__"
FORGET_PROMPT = "__forget_which__"

_MODES = ("idle", "welcome", "question", "paused", "confirm", "choose_forget")
_STATUSES = ("answered", "skipped", "prefer_not_to_say")
_KEEP_WORDS = frozenset({"keep", "keep it", "keep my answer", "keep that", "same", "no change"})
_CARRY_ON_WORDS = frozenset(
    {"carry on", "continue", "resume", "go on", "yes", "yeah", "yep", "y", "ok", "okay"}
)
_START_WORDS = frozenset({"start", "lets start", "begin", "go", "lets go", "lets do it"})
_COMMAND_LIST = "help, skip, back, stop, restart, forget or surveys"
_TEXT_ECHO = 200  # characters of a free-text answer shown back when going back


def start_state() -> dict:
    """A new conversation: nothing chosen, nobody greeted yet."""
    return {
        "v": STATE_VERSION,
        "mode": "idle",
        "code": None,
        "pending": None,
        "confirm": None,
        "responses": {},
        "school_year": None,
        "greeted": False,
    }


@dataclass(frozen=True)
class Position:
    """Where a conversation is, for the host (screening context, message records)."""

    code: str | None = None
    question_id: str | None = None  # the survey question being asked, if any
    survey: Survey | None = None  # found only when a context is given and the campaign is open
    topic: str | None = None


def position(state: dict | None, context: EngineContext | None = None) -> Position:
    st = _load(state)
    code = st["code"] if st["mode"] != "idle" else None
    if code is None:
        return Position()
    response = st["responses"].get(code)
    info = response or st["pending"] or {}
    question_id = response["at"] if response and st["mode"] == "question" else None
    survey = None
    if context is not None:
        offer = context.offer(code)
        if offer and info and _same_survey(offer.survey, info):
            survey = offer.survey
    return Position(code=code, question_id=question_id, survey=survey, topic=info.get("topic"))


def step(state: dict | None, event: Event, context: EngineContext) -> Step:
    """Handle one event. Total: any event in any state gives a Step."""
    turn = _Turn(state, context)
    turn.handle(event)
    return turn.result()


# ---------------------------------------------------------------- state loading


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _survey_info(value: object) -> dict | None:
    if not isinstance(value, dict):
        return None
    if not (isinstance(value.get("survey_id"), str) and _is_int(value.get("version"))):
        return None
    return {
        "survey_id": value["survey_id"],
        "version": value["version"],
        "title": value.get("title") if isinstance(value.get("title"), str) else "",
        "topic": value.get("topic") if isinstance(value.get("topic"), str) else "",
    }


def _load_response(value: object) -> dict | None:
    info = _survey_info(value)
    if info is None or not isinstance(value, dict):
        return None
    answers: dict[str, dict] = {}
    raw_answers = value.get("answers")
    if isinstance(raw_answers, dict):
        for question_id, answer in raw_answers.items():
            if isinstance(answer, dict) and answer.get("status") in _STATUSES:
                kept = answer.get("value")
                answers[str(question_id)] = {
                    "status": answer["status"],
                    # answer values are str, int or a list of str: a shallow copy is a full one
                    "value": list(kept) if isinstance(kept, list) else kept,
                }
    at = value.get("at")
    seen = value.get("seen")
    picked = value.get("picked")
    info.update(
        answers=answers,
        at=at if isinstance(at, str) else None,
        seen=[item for item in seen if isinstance(item, str)] if isinstance(seen, list) else [],
        picked=(
            [item for item in picked if isinstance(item, str)] if isinstance(picked, list) else []
        ),
    )
    return info


def _load(state: object) -> dict:
    """A clean, private copy of `state`; anything unreadable falls back to a safe default.

    Every part kept is rebuilt (not shared with `state`), so no deep copy is needed.
    """
    fresh = start_state()
    if not isinstance(state, dict) or state.get("v") != STATE_VERSION:
        return fresh
    fresh["greeted"] = bool(state.get("greeted"))
    if _is_int(state.get("school_year")):
        fresh["school_year"] = state["school_year"]
    responses = state.get("responses")
    if isinstance(responses, dict):
        for code, value in responses.items():
            response = _load_response(value)
            if isinstance(code, str) and response is not None:
                fresh["responses"][code] = response
    mode = state.get("mode")
    code = state.get("code")
    if mode == "choose_forget":
        fresh["mode"] = mode
        return fresh
    if mode not in _MODES or mode == "idle" or not isinstance(code, str):
        return fresh
    if mode == "welcome":
        pending = _survey_info(state.get("pending"))
        if pending is not None:
            fresh.update(mode=mode, code=code, pending=pending)
        return fresh
    if mode == "confirm":
        confirm = state.get("confirm")
        if not isinstance(confirm, dict) or confirm.get("action") not in ("restart", "forget"):
            return fresh
        back_to = confirm.get("back_to")
        if back_to not in ("question", "paused", "idle"):
            return fresh
        if back_to != "idle" and code not in fresh["responses"]:
            return fresh
        if back_to == "idle" and confirm["action"] == "restart":
            return fresh
        fresh.update(
            mode=mode, code=code, confirm={"action": confirm["action"], "back_to": back_to}
        )
        return fresh
    if code in fresh["responses"]:  # question, paused
        fresh.update(mode=mode, code=code)
    return fresh


def _same_survey(survey: Survey, info: dict) -> bool:
    return survey.id == info.get("survey_id") and survey.version == info.get("version")


def _is_school_year(question: Question) -> bool:
    return question.dimension == "school_year" or question.id == SCHOOL_YEAR_QUESTION_ID


def _audience_words(audience: Audience) -> str:
    low, high = audience.min_year, audience.max_year
    if low is not None and high is not None:
        return f"Years {low} to {high}" if low != high else f"Year {low}"
    if low is not None:
        return f"Year {low} and above"
    if high is not None:
        return f"Year {high} and below"
    return "everyone"


def _guess_minutes(survey: Survey) -> int:
    """About three questions a minute, when the survey doesn't say."""
    asked = sum(1 for question in survey.questions if question.type != "info")
    return max(1, -(-asked // 3))


def command_of(event: Event, mode: str) -> tuple[str, str] | None:
    """(command, argument) for a command event or a typed command; ("?", "") if unknown."""
    if isinstance(event, CommandIn):
        name = normalise(str(event.name).lstrip("/").split("@", 1)[0])
        return (name if name in COMMANDS else "?", str(event.arg or "").strip())
    if not isinstance(event, TextIn) or not isinstance(event.text, str):
        return None
    text = event.text.strip()
    if text.startswith("/"):
        parts = text[1:].split(maxsplit=1)
        head = parts[0].split("@", 1)[0] if parts else ""
        name = normalise(head)
        arg = parts[1].strip() if len(parts) > 1 else ""
        return (name if name in COMMANDS else "?", arg)
    if len(text) > 40:
        return None
    word = normalise(text)
    if word in COMMANDS:
        if word == "start" and mode == "welcome":
            return None  # "start" here answers "Shall we start?"
        return (word, "")
    return None


def _synthetic(
    question_id: str, choices: tuple[Choice, ...], type_: str = "single_choice"
) -> Question:
    return Question(
        id=question_id,
        type=type_,  # type: ignore[arg-type]
        text="",
        report_label="",
        choices=choices,
        required=True,
    )


_CONSENT_CHOICES = (Choice(YES, "Yes, let's start"), Choice(NO, "No thanks"))
_CONSENT_QUESTION = _synthetic(CONSENT_PROMPT, _CONSENT_CHOICES, "yes_no")
_PAUSED_CHOICES = (Choice(CARRY_ON, "Carry on"), Choice(OTHER_SURVEYS, "Other surveys"))
_PAUSED_QUESTION = _synthetic(PAUSED_PROMPT, _PAUSED_CHOICES)
_CONFIRM_CHOICES = {
    "restart": (Choice(YES, "Yes, start again"), Choice(NO, "No, carry on")),
    "forget": (Choice(YES, "Yes, delete my answers"), Choice(NO, "No, keep them")),
}


def _replies(choices: tuple[Choice, ...]) -> tuple[QuickReply, ...]:
    return tuple(QuickReply(choice.value, choice.label) for choice in choices)


# ---------------------------------------------------------------- one turn


class _Turn:
    def __init__(self, state: dict | None, context: EngineContext) -> None:
        self.st = _load(state)
        self.ctx = context
        self.out: list[Say] = []
        self.eff: list[Effect] = []
        self.completed = set(context.completed)
        for code in list(self.st["responses"]):
            if code in self.completed:  # finished elsewhere: nothing left to carry on
                self._drop_response(code)

    def result(self) -> Step:
        return Step(state=self.st, outputs=tuple(self.out), effects=tuple(self.eff))

    # ------------------------------------------------------------ helpers

    def say(
        self,
        text: str,
        *,
        kind: OutputKind = "info",
        choices: tuple[QuickReply, ...] = (),
        question_id: str | None = None,
        multi: bool = False,
    ) -> None:
        self.out.append(
            Say(text=text, choices=choices, question_id=question_id, multi=multi, kind=kind)
        )

    @property
    def mode(self) -> str:
        return self.st["mode"]

    @property
    def code(self) -> str | None:
        return self.st["code"]

    def response(self) -> dict:
        return self.st["responses"][self.code]

    def survey(self) -> Survey:
        offer = self.ctx.offer(self.code or "")
        assert offer is not None  # checked by _still_open at the start of the turn
        return offer.survey

    def _go_idle(self) -> None:
        self.st.update(mode="idle", code=None, pending=None, confirm=None)

    def _drop_response(self, code: str) -> None:
        self.st["responses"].pop(code, None)
        if self.st["code"] == code and self.st["mode"] in ("question", "paused", "confirm"):
            self._go_idle()

    def _title(self, code: str) -> str:
        offer = self.ctx.offer(code)
        if offer is not None:
            return offer.title
        info = self.st["responses"].get(code) or self.st["pending"] or {}
        return info.get("title") or "that survey"

    def _answered_values(self, response: dict) -> dict[str, object]:
        return {
            question_id: answer["value"]
            for question_id, answer in response["answers"].items()
            if answer["status"] == "answered"
        }

    def _shown(self, question: Question, answered: dict[str, object]) -> bool:
        return question.show_if is None or evaluate_condition(question.show_if, answered)

    # ------------------------------------------------------------ entry

    def handle(self, event: Event) -> None:
        command = command_of(event, self.mode)
        if command is not None and command[0] == "help":
            self.say(help_text(), kind="help")
            if self._still_open():
                self.reprompt(after_help=True)
            else:
                self.menu()
            return
        if not self._still_open():
            navigating = command is not None and (
                command[0] == "surveys" or (command[0] == "start" and command[1])
            )
            tapped_menu = (
                isinstance(event, ChoiceIn)
                and event.question_id is None
                and self.ctx.offer(str(event.value)) is not None
            )
            if not (navigating or tapped_menu):
                self.menu()
                return
        if command is not None:
            self.command(*command)
        elif isinstance(event, ChoiceIn):
            self.choice(str(event.value), event.question_id)
        elif isinstance(event, TextIn):
            self.text(event.text if isinstance(event.text, str) else "")
        else:  # ResumeIn (or anything unexpected): show where they are
            self.resume()

    def _still_open(self) -> bool:
        """False (after saying so kindly) when the campaign in focus has closed."""
        mode, code = self.mode, self.code
        if mode in ("idle", "choose_forget") or code is None:
            return True
        if mode == "welcome":
            info = self.st["pending"]
        elif code in self.st["responses"]:
            info = self.st["responses"][code]
        else:  # confirming "forget" for a completed campaign
            info = None
        offer = self.ctx.offer(code)
        if offer is not None and (info is None or _same_survey(offer.survey, info)):
            return True
        title = (info or {}).get("title") or self._title(code)
        if mode == "welcome":
            self.say(f"Sorry, \u201c{title}\u201d has closed now, so it can't be started.")
        elif info is None:
            self.say(f"Sorry, \u201c{title}\u201d has closed now.")
        else:
            self.say(
                f"Sorry, \u201c{title}\u201d has closed now, so we can't carry on with it. "
                "Thank you for the answers you gave. 💙"
            )
        self._go_idle()
        return False

    # ------------------------------------------------------------ where they are

    def reprompt(self, *, after_help: bool = False) -> None:
        mode = self.mode
        if mode == "welcome":
            self.welcome_prompt()
        elif mode == "question":
            self.ask(self._current_question())
        elif mode == "paused":
            self.paused_prompt()
        elif mode == "confirm":
            self.confirm_prompt()
        elif mode == "choose_forget":
            self.forget_chooser()
        elif not after_help:
            self.menu()

    def resume(self) -> None:
        mode = self.mode
        if mode == "idle":
            self.menu(greet=True)
        elif mode == "question":
            self.say("Welcome back! Here's where you got to.")
            self.ask(self._current_question())
        elif mode == "paused":
            self.paused_prompt(welcome_back=True)
        else:
            self.reprompt()

    # ------------------------------------------------------------ menu

    def _menu_offers(self) -> list[Offer]:
        offers: list[Offer] = []
        seen: set[str] = set()
        for offer in self.ctx.offers:
            if offer.code in seen or offer.code in self.completed:
                continue
            seen.add(offer.code)
            in_progress = offer.code in self.st["responses"]
            if offer.closing and not in_progress:
                continue
            if in_progress or offer.survey.audience.admits(self.st["school_year"]):
                offers.append(offer)
        return offers

    def menu(
        self,
        *,
        greet: bool = False,
        note: str | None = None,
        header: str | None = None,
        mention_done: bool = True,
    ) -> None:
        """The list of open surveys. `note` goes first; `header` replaces the usual heading."""
        if greet or not self.st["greeted"]:
            if not self.st["greeted"]:
                self.say(
                    "Hi, I'm the Be-Safe bot 👋\n"
                    "We ask young people about bullying, staying safe online and "
                    "relationships, so that adults can make things better.\n"
                    "We never ask your name. Send 'help' at any time to find someone to talk to."
                )
            else:
                self.say("Hi again! 👋")
            self.st["greeted"] = True
        offers = self._menu_offers()
        done = [
            offer.title
            for offer in self.ctx.offers
            if offer.code in self.completed and offer.code not in self.st["responses"]
        ]
        lines: list[str] = [note] if note else []
        if done and mention_done and header is None:
            names = ", ".join(f"\u201c{title}\u201d" for title in dict.fromkeys(done))
            lines.append(f"You've already done {names}. Thank you! 💙")
        if offers:
            lines.append(header or "Here are the surveys you can do. Tap one to find out more:")
        elif done:
            lines.append(
                "There are no other surveys for you right now. Please come back another time."
            )
        else:
            lines.append(
                "There are no surveys open for you right now. Please come back another time."
            )
        choices = tuple(
            QuickReply(
                offer.code,
                f"{offer.title} (carry on)" if offer.code in self.st["responses"] else offer.title,
            )
            for offer in offers
        )
        self.say("\n".join(lines), kind="menu", choices=choices)

    def _menu_question(self) -> Question:
        return _synthetic(
            "__menu__", tuple(Choice(offer.code, offer.title) for offer in self._menu_offers())
        )

    def _find_code(self, text: str) -> str | None:
        wanted = text.strip()
        if not wanted or len(wanted) > 100:
            return None
        for offer in self.ctx.offers:
            if offer.code == wanted:
                return offer.code
        for offer in self.ctx.offers:
            if offer.code.casefold() == wanted.casefold():
                return offer.code
        return None

    # ------------------------------------------------------------ choosing a survey

    def leave_current(self) -> None:
        """Go idle; a survey in progress stays saved and can be carried on from the menu."""
        if self.mode in ("question", "paused", "confirm") and self.code in self.st["responses"]:
            self.say(
                f"Your answers to \u201c{self._title(self.code)}\u201d are saved. "
                "You can carry on with it from the list any time."
            )
        self._go_idle()

    def choose(self, wanted: str) -> None:
        code = self._find_code(wanted)
        offer = self.ctx.offer(code) if code else None
        if offer is None:
            self.leave_current()
            self.st["greeted"] = True
            self.say(
                "Sorry, I couldn't find that survey. It might have closed, "
                "or the code might be a little different."
            )
            self.menu()
            return
        code = offer.code
        self.st["greeted"] = True
        if code == self.code and self.mode in ("welcome", "question", "paused", "confirm"):
            if self.mode == "paused":
                self.carry_on()
            elif self.mode == "confirm":
                self.cancel_confirm()
                self.reprompt()
            else:
                self.reprompt()
            return
        if code in self.completed:
            self.leave_current()
            self.say(
                f"You've already done \u201c{offer.title}\u201d. "
                "Thank you so much for taking part! 💙"
            )
            self.menu(mention_done=False)
            return
        response = self.st["responses"].get(code)
        if response is not None:
            if not _same_survey(offer.survey, response):
                self.leave_current()
                self.say(f"Sorry, \u201c{offer.title}\u201d can't be carried on any more.")
                self.menu()
                return
            self.leave_current()
            self.st.update(mode="question", code=code)
            self.say(f"Welcome back to \u201c{offer.title}\u201d. Let's carry on.")
            self.ask(self._current_question())
            return
        if offer.closing:
            self.leave_current()
            self.say(f"Sorry, \u201c{offer.title}\u201d has closed. Thank you for wanting to help!")
            self.menu()
            return
        if not offer.survey.audience.admits(self.st["school_year"]):
            self.leave_current()
            self.say(
                f"\u201c{offer.title}\u201d is for young people in "
                f"{_audience_words(offer.survey.audience)}, so it isn't one for you. "
                "Thank you for wanting to help!"
            )
            self.menu()
            return
        self.leave_current()
        self.st.update(
            mode="welcome",
            code=code,
            pending={
                "survey_id": offer.survey.id,
                "version": offer.survey.version,
                "title": offer.title,
                "topic": offer.survey.topic,
            },
        )
        self.welcome_prompt()

    def welcome_prompt(self, note: str | None = None) -> None:
        offer = self.ctx.offer(self.code or "")
        if offer is None:  # pragma: no cover - _still_open runs first
            self.menu()
            return
        survey = offer.survey
        lines = [note] if note else []
        lines.append(f"📋 {offer.title}")
        if survey.intro.strip():
            lines.append(survey.intro.strip())
        lines.append("")
        minutes = survey.estimated_minutes or _guess_minutes(survey)
        lines.append(f"It takes about {minutes} minute{'s' if minutes != 1 else ''}.")
        lines.extend(
            [
                "It's anonymous: we never ask your name.",
                "You can skip questions, and you can stop at any time.",
                "If you need help right now, just send 'help'.",
                "",
                "Shall we start?",
            ]
        )
        self.say(
            "\n".join(lines),
            kind="question",
            choices=_replies(_CONSENT_CHOICES),
            question_id=CONSENT_PROMPT,
        )

    def consent(self, yes: bool) -> None:
        if not yes:
            self._go_idle()
            self.say("That's OK. Thank you for having a look. 💙")
            self.menu()
            return
        self.begin()

    def begin(self, *, again: bool = False) -> None:
        code = self.code or ""
        offer = self.ctx.offer(code)
        if offer is not None and offer.closing and code not in self.st["responses"]:
            self._go_idle()  # it closed while they read the welcome
            self.say(f"Sorry, \u201c{offer.title}\u201d has just closed. Thank you anyway! 💙")
            self.menu()
            return
        survey = self.survey()
        if again:
            self.eff.append(ResponseErased(code))
        self.eff.append(ResponseStarted(code, survey.id, survey.version))
        offer = self.ctx.offer(code)
        self.st["responses"][code] = {
            "survey_id": survey.id,
            "version": survey.version,
            "title": offer.title if offer else survey.title,
            "topic": survey.topic,
            "answers": {},
            "at": None,
            "seen": [],
            "picked": [],
        }
        self.st.update(mode="question", pending=None, confirm=None)
        self.say("OK, let's start again from the beginning." if again else "Great, let's start! 👍")
        self.advance(None)

    # ------------------------------------------------------------ questions

    def _current_question(self) -> Question:
        """The question being asked, moving on if the state points nowhere sensible."""
        survey = self.survey()
        response = self.response()
        question = survey.question(response["at"]) if response["at"] else None
        if question is not None and question.type != "info":
            return question
        # Unknown or missing position: the first shown question without an answer.
        answered = self._answered_values(response)
        for candidate in survey.questions:
            if (
                candidate.type != "info"
                and candidate.id not in response["answers"]
                and self._shown(candidate, answered)
            ):
                response["at"] = candidate.id
                return candidate
        # Everything answered: ask the last question again rather than guess.
        questions = [q for q in survey.questions if q.type != "info"]
        if not questions:  # pragma: no cover - validation forbids a survey without questions
            raise ValueError("survey has no questions")
        response["at"] = questions[-1].id
        return questions[-1]

    def _progress(self, survey: Survey, question: Question) -> str:
        asked = [q.id for q in survey.questions if q.type != "info"]
        number = asked.index(question.id) + 1 if question.id in asked else 1
        return f"Question {number} of {len(asked)}"

    def _answer_words(self, question: Question, answer: dict) -> str:
        status = answer["status"]
        if status == "skipped":
            return "You skipped this one."
        if status == "prefer_not_to_say":
            return f"You chose \u201c{PREFER_NOT_LABEL}\u201d."
        value = answer["value"]
        choices = answer_choices(question)
        if question.is_choice:
            values = value if isinstance(value, list) else [value]
            labels = []
            for item in values:
                found = [c.label for c in choices if choice_value(question, c) == item]
                labels.append(found[0] if found else str(item))
            return "Your answer was: " + ", ".join(labels) + "."
        shown = str(value)
        if len(shown) > _TEXT_ECHO:
            shown = shown[:_TEXT_ECHO].rstrip() + "…"
        return f"Your answer was: {shown}"

    def question_replies(self, question: Question, *, revisiting: bool) -> tuple[QuickReply, ...]:
        replies = list(_replies(answer_choices(question))) if question.is_choice else []
        if question.prefer_not_to_say:
            replies.append(QuickReply(PREFER_NOT_TO_SAY, PREFER_NOT_LABEL))
        if question.type == "multiple_choice":
            replies.append(QuickReply(DONE, "Done"))
        elif revisiting:
            replies.append(QuickReply(KEEP, "Keep my answer"))
        if not question.required:
            replies.append(QuickReply(SKIP, "Skip"))
        return tuple(replies)

    def ask(self, question: Question) -> None:
        survey = self.survey()
        response = self.response()
        response["at"] = question.id
        answer = response["answers"].get(question.id)
        lines = [self._progress(survey, question), question.text]
        if question.help:
            lines.append(question.help)
        if question.type == "multiple_choice":
            lines.append("You can pick more than one. Tap Done when you've finished.")
            revisited = answer["value"] if answer is not None else None
            if response["picked"] and response["picked"] != revisited:
                lines.append("Picked so far: " + self._picked_labels(question, response) + ".")
        elif question.type == "number":
            lines.append("Type a number.")
        elif question.type == "free_text":
            lines.append("Type your answer.")
        if answer is not None:
            lines.append(self._answer_words(question, answer))
        self.say(
            "\n".join(lines),
            kind="question",
            choices=self.question_replies(question, revisiting=answer is not None),
            question_id=question.id,
            multi=question.type == "multiple_choice",
        )

    def _picked_labels(self, question: Question, response: dict) -> str:
        labels = {choice.value: choice.label for choice in answer_choices(question)}
        return ", ".join(labels.get(value, value) for value in response["picked"])

    def advance(self, after: Question | None) -> None:
        """Ask the next shown question without an answer, showing info steps on the way."""
        survey = self.survey()
        response = self.response()
        answered = self._answered_values(response)
        start = survey.index_of(after.id) + 1 if after is not None else 0
        response["picked"] = []
        for question in survey.questions[start:]:
            if not self._shown(question, answered):
                continue
            if question.type == "info":
                if question.id not in response["seen"]:
                    response["seen"].append(question.id)
                    text = question.text + (f"\n{question.help}" if question.help else "")
                    self.say(text, kind="info")
                continue
            if question.id in response["answers"]:
                continue
            self.ask(question)
            return
        self.complete()

    def complete(self) -> None:
        code = self.code or ""
        survey = self.survey()
        self.eff.append(ResponseCompleted(code))
        self.st["responses"].pop(code, None)
        self.completed.add(code)
        self._go_idle()
        thanks = survey.thanks.strip() or "Thank you for answering our questions!"
        self.say(f"{thanks}\n\n{thanks_signposting()}", kind="thanks")
        if self._menu_offers():
            self.menu(header="If you'd like to do another survey, here's what's open:")

    def record(self, question: Question, status: AnswerStatus, value: AnswerValue | None) -> None:
        code = self.code or ""
        survey = self.survey()
        response = self.response()
        if _is_school_year(question) and status == "answered":
            number = school_year_number(value)
            if number is not None:
                self.st["school_year"] = number
                if not survey.audience.admits(number):
                    self.not_for_you(survey)
                    return
        if status != "answered":
            value = None
        response["answers"][question.id] = {"status": status, "value": value}
        response["picked"] = []
        self.eff.append(AnswerRecorded(code, question.id, status, value))
        # A changed answer can hide later questions: their answers no longer stand.
        answered = self._answered_values(response)
        for later in survey.questions[survey.index_of(question.id) + 1 :]:
            if later.id in response["answers"] and not self._shown(later, answered):
                del response["answers"][later.id]
                answered.pop(later.id, None)
                self.eff.append(AnswerRemoved(code, later.id))
        self.advance(question)

    def not_for_you(self, survey: Survey) -> None:
        code = self.code or ""
        self.eff.append(ResponseErased(code))
        self.st["responses"].pop(code, None)
        self._go_idle()
        self.say(
            "Thank you for telling us. This survey is for young people in "
            f"{_audience_words(survey.audience)}, so it isn't the right one for you. "
            "We haven't kept any of your answers to it."
        )
        self.menu()

    def skip(self) -> None:
        question = self._current_question()
        if question.required:
            extra = (
                f" You can choose \u201c{PREFER_NOT_LABEL}\u201d if you like."
                if question.prefer_not_to_say
                else ""
            )
            self.say(f"This question needs an answer, so it can't be skipped.{extra}", kind="hint")
            self.ask(question)
            return
        self.record(question, "skipped", None)

    def back(self) -> None:
        survey = self.survey()
        response = self.response()
        current = self._current_question()
        index = survey.index_of(current.id)
        earlier = [
            question
            for question in survey.questions[:index]
            if question.type != "info" and question.id in response["answers"]
        ]
        if not earlier:
            self.say("This is the first question, so there's nothing to go back to.", kind="hint")
            self.ask(current)
            return
        previous = earlier[-1]
        answer = response["answers"][previous.id]
        picked = answer["value"] if answer["status"] == "answered" else []
        response["picked"] = (
            [str(item) for item in picked]
            if previous.type == "multiple_choice" and isinstance(picked, list)
            else []
        )
        self.say("OK, let's go back.")
        self.ask(previous)

    def keep(self, question: Question) -> None:
        self.say("OK, I've kept your answer.")
        self.advance(question)

    # ------------------------------------------------------------ answers

    def answer_choice(self, question: Question, value: str) -> None:
        response = self.response()
        if value == SKIP:
            self.skip()
        elif value == KEEP and question.id in response["answers"]:
            self.keep(question)
        elif value == PREFER_NOT_TO_SAY and question.prefer_not_to_say:
            self.record(question, "prefer_not_to_say", None)
        elif question.type == "multiple_choice" and value == DONE:
            self.finish_multi(question)
        elif question.is_choice and (choice := self._choice(question, value)) is not None:
            if question.type == "multiple_choice":
                self.toggle(question, choice)
            else:
                self.record(question, "answered", choice_value(question, choice))
        else:
            self.say("Sorry, that button didn't work. Please try again.", kind="hint")
            self.ask(question)

    def _choice(self, question: Question, value: str) -> Choice | None:
        for choice in answer_choices(question):
            if choice.value == value:
                return choice
        return None

    def toggle(self, question: Question, choice: Choice) -> None:
        response = self.response()
        picked = response["picked"]
        if choice.value in picked:
            picked.remove(choice.value)
        else:
            picked.append(choice.value)
        order = [c.value for c in answer_choices(question)]
        picked.sort(key=order.index)
        if picked:
            text = (
                "Picked so far: "
                + self._picked_labels(question, response)
                + ".\nTap more, or tap Done when you've finished."
            )
        else:
            text = "Nothing picked yet. Tap your answers, then tap Done."
        self.say(
            text,
            kind="question",
            choices=self.question_replies(question, revisiting=False),
            question_id=question.id,
            multi=True,
        )

    def finish_multi(self, question: Question) -> None:
        picked = list(self.response()["picked"])
        if picked:
            self.record(question, "answered", picked)
        elif question.required:
            self.say("Please pick at least one answer, then tap Done.", kind="hint")
            self.ask(question)
        else:
            self.record(question, "skipped", None)

    def answer_text(self, question: Question, text: str) -> None:
        response = self.response()
        if question.id in response["answers"] and normalise(text) in _KEEP_WORDS:
            self.keep(question)
            return
        match = match_answer(question, text)
        if match.done and question.type == "multiple_choice":
            self.finish_multi(question)
            return
        if not match.ok or match.value is None:
            self.say(match.hint or "Sorry, I didn't get that.", kind="hint")
            self.ask(question)
            return
        if match.value == PREFER_NOT_TO_SAY and question.prefer_not_to_say:
            self.record(question, "prefer_not_to_say", None)
            return
        value = match.value
        if question.type == "free_text" and isinstance(value, str):
            limit = max(1, self.ctx.max_text_length)
            if question.max_length:
                limit = min(limit, max(1, question.max_length))
            if len(value) > limit:
                value = value[:limit].rstrip()
                self.say(
                    f"Your answer was quite long, so I've saved the first {limit:,} characters. "
                    "Thank you for telling us so much.",
                    kind="notice",
                )
        self.record(question, "answered", value)

    # ------------------------------------------------------------ events

    def choice(self, value: str, question_id: str | None) -> None:
        mode = self.mode
        if question_id is None:
            if self.ctx.offer(value) is not None:
                self.choose(value)
            else:
                self.say("Sorry, that survey isn't open any more.")
                if mode == "idle":
                    self.menu()
                else:
                    self.reprompt()
            return
        if mode == "welcome" and question_id == CONSENT_PROMPT and value in (YES, NO):
            self.consent(value == YES)
        elif mode == "question" and question_id == self.response()["at"]:
            self.answer_choice(self._current_question(), value)
        elif (
            mode == "paused" and question_id == PAUSED_PROMPT and value in (CARRY_ON, OTHER_SURVEYS)
        ):
            if value == CARRY_ON:
                self.carry_on()
            else:
                self.surveys()
        elif mode == "paused" and question_id == self.response()["at"]:
            self.st["mode"] = "question"  # a tap on the question they stopped at: carry on
            self.answer_choice(self._current_question(), value)
        elif mode == "confirm" and question_id == CONFIRM_PROMPT and value in (YES, NO):
            self.confirmed(value == YES)
        elif mode == "choose_forget" and question_id == FORGET_PROMPT:
            self.forget_chosen(value)
        else:
            self.say("That button is from an earlier message, so I haven't used it.", kind="notice")
            self.reprompt()

    def text(self, text: str) -> None:
        mode = self.mode
        if mode == "question":
            self.answer_text(self._current_question(), text)
        elif mode == "welcome":
            match = match_answer(_CONSENT_QUESTION, text)
            if normalise(text) in _START_WORDS:
                self.consent(True)
            elif match.ok and match.value in (YES, NO):
                self.consent(match.value == YES)
            else:
                self.say("Please tap Yes or No.", kind="hint")
                self.welcome_prompt()
        elif mode == "paused":
            match = match_answer(_PAUSED_QUESTION, text)
            if (match.ok and match.value == CARRY_ON) or normalise(text) in _CARRY_ON_WORDS:
                self.carry_on()
            elif match.ok and match.value == OTHER_SURVEYS:
                self.surveys()
            else:
                self.paused_prompt(welcome_back=True)
        elif mode == "confirm":
            match = match_answer(
                _synthetic(CONFIRM_PROMPT, self._confirm_choices(), "yes_no"), text
            )
            if match.ok and match.value in (YES, NO):
                self.confirmed(match.value == YES)
            else:
                self.say("Please tap Yes or No.", kind="hint")
                self.confirm_prompt()
        elif mode == "choose_forget":
            match = match_answer(_synthetic(FORGET_PROMPT, self._forget_choices()), text)
            if match.ok and isinstance(match.value, str):
                self.forget_chosen(match.value)
            else:
                self.say("Please tap one of the buttons.", kind="hint")
                self.forget_chooser()
        else:
            self.idle_text(text)

    def idle_text(self, text: str) -> None:
        code = self._find_code(text)
        if code is not None:
            self.choose(code)
            return
        if not self.st["greeted"]:
            self.menu()
            return
        question = self._menu_question()
        if question.choices:
            match = match_answer(question, text)
            if match.ok and isinstance(match.value, str) and match.value != PREFER_NOT_TO_SAY:
                self.choose(match.value)
                return
            self.menu(header="Tap a survey to start it, or type its number:")
            return
        self.menu()

    # ------------------------------------------------------------ commands

    def command(self, name: str, arg: str) -> None:
        if self.mode in ("confirm", "choose_forget"):
            self.cancel_confirm()  # any other command means "not that, then"
        mode = self.mode
        if name == "start":
            if arg:
                self.choose(arg)
            else:
                self.resume()
        elif name == "surveys":
            self.surveys()
        elif name == "stop":
            self.stop()
        elif name in ("skip", "back"):
            if mode == "paused":
                self.st["mode"] = mode = "question"
            if mode == "question":
                if name == "skip":
                    self.skip()
                else:
                    self.back()
            elif mode == "welcome":
                self.welcome_prompt(note="We haven't started yet.")
            else:
                self.menu(note="There's no question to answer right now.")
        elif name == "restart":
            if mode in ("question", "paused"):
                self.ask_confirm("restart", back_to=mode)
            elif mode == "welcome":
                self.welcome_prompt()
            else:
                self.menu(note="You're not in the middle of a survey right now.")
        elif name == "forget":
            if mode in ("question", "paused"):
                self.ask_confirm("forget", back_to=mode)
            else:
                self._go_idle()
                self.forget_from_idle()
        else:
            self.say(f"Sorry, I don't know that one. You can send: {_COMMAND_LIST}.", kind="hint")
            self.reprompt()

    def surveys(self) -> None:
        self.leave_current()
        self.menu()

    def stop(self) -> None:
        mode = self.mode
        if mode in ("question", "paused"):
            self.st["mode"] = "paused"
            self.say(
                "OK, we'll stop here for now. Your answers so far are saved.\n"
                "When you want to carry on, just send me a message.",
                kind="question",
                choices=_replies(_PAUSED_CHOICES),
                question_id=PAUSED_PROMPT,
            )
        elif mode == "welcome":
            self._go_idle()
            self.say("OK, no problem. Send 'surveys' any time if you change your mind.")
        else:
            self.say("OK. Send 'surveys' whenever you'd like to see what's open.")

    def paused_prompt(self, *, welcome_back: bool = False) -> None:
        title = self._title(self.code or "")
        greeting = "Welcome back! " if welcome_back else ""
        self.say(
            f"{greeting}Would you like to carry on with \u201c{title}\u201d?",
            kind="question",
            choices=_replies(_PAUSED_CHOICES),
            question_id=PAUSED_PROMPT,
        )

    def carry_on(self) -> None:
        self.st["mode"] = "question"
        self.say("Great, let's carry on.")
        self.ask(self._current_question())

    # ------------------------------------------------------------ confirmations

    def ask_confirm(self, action: str, *, back_to: str) -> None:
        self.st.update(mode="confirm", confirm={"action": action, "back_to": back_to})
        self.confirm_prompt()

    def _confirm_choices(self) -> tuple[Choice, ...]:
        confirm = self.st["confirm"] or {}
        return _CONFIRM_CHOICES.get(confirm.get("action", "forget"), _CONFIRM_CHOICES["forget"])

    def confirm_prompt(self) -> None:
        confirm = self.st["confirm"] or {}
        title = self._title(self.code or "")
        if confirm.get("action") == "restart":
            text = (
                f"Do you want to start \u201c{title}\u201d again from the beginning? "
                "The answers you've given so far will be deleted."
            )
        else:
            text = (
                f"Do you want me to delete all your answers to \u201c{title}\u201d? "
                "This can't be undone."
            )
        self.say(
            text,
            kind="question",
            choices=_replies(self._confirm_choices()),
            question_id=CONFIRM_PROMPT,
        )

    def cancel_confirm(self) -> None:
        confirm = self.st["confirm"] or {}
        back_to = confirm.get("back_to", "idle")
        if self.mode == "confirm" and back_to in ("question", "paused"):
            self.st.update(mode=back_to, confirm=None)
        else:
            self._go_idle()

    def confirmed(self, yes: bool) -> None:
        confirm = self.st["confirm"] or {}
        action = confirm.get("action")
        code = self.code or ""
        if not yes:
            self.cancel_confirm()
            words = ["OK, I haven't deleted anything."] if action == "forget" else []
            if self.mode == "question":
                words.append("Let's carry on.")
            if words:
                self.say(" ".join(words))
            self.reprompt()
            return
        if action == "restart":
            self.st.update(confirm=None)
            self.begin(again=True)
            return
        title = self._title(code)
        self.eff.append(ResponseErased(code))
        self.st["responses"].pop(code, None)
        self.completed.discard(code)
        self._go_idle()
        self.say(f"Done. Your answers to \u201c{title}\u201d have been deleted.")
        self.menu()

    def _forget_candidates(self) -> list[str]:
        codes = [
            offer.code
            for offer in self.ctx.offers
            if offer.code in self.st["responses"] or offer.code in self.completed
        ]
        return list(dict.fromkeys(codes))

    def _forget_choices(self) -> tuple[Choice, ...]:
        return (
            *(Choice(code, self._title(code)) for code in self._forget_candidates()),
            Choice(CANCEL, "Don't delete anything"),
        )

    def forget_from_idle(self) -> None:
        candidates = self._forget_candidates()
        if not candidates:
            self.say("You don't have any answers saved with us at the moment.")
            self.menu()
        elif len(candidates) == 1:
            self.st["code"] = candidates[0]
            self.ask_confirm("forget", back_to="idle")
        else:
            self.st["mode"] = "choose_forget"
            self.forget_chooser()

    def forget_chooser(self) -> None:
        self.say(
            "Which survey's answers should I delete?",
            kind="question",
            choices=_replies(self._forget_choices()),
            question_id=FORGET_PROMPT,
        )

    def forget_chosen(self, value: str) -> None:
        if value in self._forget_candidates():
            self.st.update(mode="idle", code=value)
            self.ask_confirm("forget", back_to="idle")
            return
        self._go_idle()
        self.say("OK, I haven't deleted anything.")
        self.menu()
