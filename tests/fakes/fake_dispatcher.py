"""A recording stand-in for `bot.dispatcher.Dispatcher` (the `web.keys.MessageHandler` contract).

It remembers every `InboundMessage` it is handed and answers with whatever the
test scripted (or a short default reply); `fail_with` makes it raise instead,
as the real one does when storage stays busy after its retries.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from bot.messages import InboundMessage
from surveys.events import QuickReply, Say

DEFAULT_REPLY = Say(
    "Question 1 of 2\nHow safe do you feel at school?",
    choices=(QuickReply("safe", "Safe"), QuickReply("unsafe", "Not safe")),
    question_id="safe",
    kind="question",
)


class FakeDispatcher:
    def __init__(
        self,
        replies: Iterable[tuple[Say, ...]] = (),
        *,
        default: tuple[Say, ...] = (DEFAULT_REPLY,),
        answer: Callable[[InboundMessage], tuple[Say, ...]] | None = None,
    ) -> None:
        self.received: list[InboundMessage] = []
        self.replies: deque[tuple[Say, ...]] = deque(replies)
        self.default = default
        self.answer = answer
        self.fail_with: BaseException | None = None

    async def handle(self, inbound: InboundMessage) -> tuple[Say, ...]:
        self.received.append(inbound)
        if self.fail_with is not None:
            raise self.fail_with
        if self.replies:
            return self.replies.popleft()
        if self.answer is not None:
            return self.answer(inbound)
        return self.default

    @property
    def events(self) -> list[object]:
        return [inbound.event for inbound in self.received]
