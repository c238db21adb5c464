"""The Telegram adapter: updates in, dispatcher turns, outbox rows out to the sender.

Exactly once, in effect:
- each private-chat update is a dispatcher turn with `delivery_id = update_id`: the
  dispatcher claims it in `processed_deliveries` in the turn's own transaction, and
  our output recorder writes the outbox rows (and drops the update's inbox row) in
  that same transaction. A redelivered update changes nothing and sends nothing.
- webhook: the HTTP answer is given only after the turn has committed (500 otherwise,
  so Telegram delivers it again); polling: a batch is written to the inbox before the
  next getUpdates confirms it, and the inbox is worked through again at start-up.
- sending happens after the commit, from the outbox (see `sender`).

The raw chat id lives only in memory and, encrypted, in inbox payloads (until
processed) and outbox addresses (`bot.relay.seal_handle`). Nothing from a group chat
is stored.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import hmac
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from telegram import BotCommand, Update
from telegram.error import Conflict, TelegramError
from telegram.error import InvalidToken as InvalidBotToken
from telegram.ext import Application, ContextTypes, TypeHandler

from bot.dispatcher import Dispatcher
from bot.messages import InboundMessage
from bot.relay import RelayError, open_handle, seal_handle
from bot.telegram import callbacks, render
from bot.telegram.request import call
from bot.telegram.sender import Outgoing, Sender
from bot.telegram.translate import Incoming, Tap, translate
from storage import telegram as store
from storage.batching import WriteBatcher
from storage.pseudonyms import pseudonym
from storage.repository import UnitOfWork
from surveys.events import ChoiceIn, CommandIn, ResumeIn, Say

log = logging.getLogger("besafe.telegram")

CHANNEL = "telegram"
ALLOWED_UPDATES = ("message", "callback_query")
COMMANDS = (
    ("start", "Start, or see the surveys you can take"),
    ("help", "What I can do, and where to get help"),
    ("surveys", "The surveys you can take"),
    ("skip", "Skip this question"),
    ("back", "Go back to the last question"),
    ("stop", "Stop for now (answers kept), and no more news from me"),
    ("forget", "Forget your answers to a survey"),
    ("subscribe", "Hear from me when there's a new survey"),
    ("unsubscribe", "No more messages about surveys"),
)
NOT_TEXT = "Sorry, I can only read text messages. Please type your answer, or send /help."
GROUP_TEXT = (
    "Hi! I only work in a private chat, so I don't read or keep anything said here. "
    "Tap my name and press Start to talk to me on your own."
)
STALE_TAP = "That one is already answered."
REFUSED_TAP = "Sorry, that button doesn't work any more. Please type your answer instead."
POLL_TIMEOUT = 25  # seconds a getUpdates call waits for news
_GROUPS_REMEMBERED = 10_000
_ADDRESSES_REMEMBERED = 10_000


class WebhookReply:
    """The Bot API call the webhook's HTTP answer carries, if any.

    Telegram makes a call given in a webhook's answer itself ("making requests when getting
    updates"); its outcome is never known, which is fine for answering a tap (a failed
    answer is only logged anyway). So a tap handled through the webhook is answered there
    rather than by a Bot API call of its own: one call fewer per tap.
    """

    def __init__(self) -> None:
        self.call: dict[str, object] | None = None
        self.open = True


# The webhook answer being prepared by the current task (None outside the webhook route).
_WEBHOOK_REPLY: contextvars.ContextVar[WebhookReply | None] = contextvars.ContextVar(
    "besafe_telegram_webhook_reply", default=None
)


def _fernet(secret: bytes, info: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def webhook_secret(secret: bytes) -> str:
    """The default X-Telegram-Bot-Api-Secret-Token, derived from the server secret."""
    return hmac.new(secret, b"besafe telegram webhook v1", hashlib.sha256).hexdigest()[:48]


class TelegramChannel:
    def __init__(
        self,
        *,
        application: Application,
        dispatcher: Dispatcher,
        writes: WriteBatcher,
        secret: bytes,
        sender: Sender,
        uses_inbox: bool,
    ) -> None:
        self.application = application
        self.bot = application.bot
        self._dispatcher = dispatcher
        self._writes = writes
        self._secret = secret
        self.sender = sender
        self._uses_inbox = uses_inbox
        self._key = callbacks.callback_key(secret)
        self._inbox_box = _fernet(secret, b"besafe telegram inbox v1")
        self._taps: dict[str, Tap] = {}  # delivery id -> the tap, for the output recorder
        self._stale: set[str] = set()  # delivery ids whose tap was on an answered question
        self._errors: dict[int, BaseException] = {}
        self._groups_told: OrderedDict[str, None] = OrderedDict()
        self._addresses: OrderedDict[str, str] = OrderedDict()  # chat id -> sealed address
        self._addresses_lock = threading.Lock()
        self._chains: dict[int, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[object]] = set()
        dispatcher.set_output_recorder(CHANNEL, self._record)
        application.add_handler(TypeHandler(Update, self._on_update))

    @property
    def key(self) -> bytes:
        """The callback-data key (`translate_data` needs it)."""
        return self._key

    # ------------------------------------------------------------ processing an update

    async def process(self, update: Update) -> bool:
        """Hand `update` to the Application; True once it is handled (and committed)."""
        await self.application.process_update(update)
        error = self._errors.pop(update.update_id, None)
        return error is None

    async def _on_update(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert isinstance(update, Update)
        try:
            await self._handle(update)
        except Exception as error:
            self._errors[update.update_id] = error
            log.exception("telegram update failed", extra={"update_id": update.update_id})

    async def process_data(
        self, update_id: int, incoming: Incoming, reply: WebhookReply | None = None
    ) -> bool:
        """The webhook's path: an update already translated from its JSON (`translate_data`),
        handled as `process` would, without building PTB objects or going through the
        Application; True once it is handled (and committed). A tap's answer goes into
        `reply` when one is given (see `WebhookReply`)."""
        token = _WEBHOOK_REPLY.set(reply)
        try:
            await self._handle_incoming(update_id, incoming)
        except Exception:
            log.exception("telegram update failed", extra={"update_id": update_id})
            return False
        finally:
            _WEBHOOK_REPLY.reset(token)
            if reply is not None:
                reply.open = False  # whatever comes later needs a call of its own
        return True

    async def _handle(self, update: Update) -> None:
        await self._handle_incoming(update.update_id, translate(update, self._key))

    async def _handle_incoming(self, update_id: int, incoming: Incoming) -> None:
        if incoming.kind == "turn":
            await self._turn(update_id, incoming)
        elif incoming.kind == "not_text":
            await self._not_text(update_id, incoming)
        elif incoming.kind == "group":
            self._tell_group(incoming)
        elif incoming.kind == "refused_tap":
            assert incoming.tap is not None
            self._answer_tap(incoming.tap, REFUSED_TAP)
            await self._forget_inbox(update_id)
        else:
            await self._forget_inbox(update_id)

    async def _turn(self, update_id: int, incoming: Incoming) -> None:
        assert incoming.chat_id is not None and incoming.event is not None
        delivery = str(update_id)
        if incoming.tap is not None:
            self._taps[delivery] = incoming.tap
        try:
            turn = await self._dispatcher.handle_turn(
                InboundMessage(CHANNEL, str(incoming.chat_id), incoming.event, delivery)
            )
        finally:
            self._taps.pop(delivery, None)
            stale = delivery in self._stale
            self._stale.discard(delivery)
        if turn.duplicate:
            await self._forget_inbox(update_id)
        elif isinstance(turn.recorded, list) and turn.recorded:
            self.sender.submit(turn.recorded)
        if incoming.tap is not None:
            self._answer_tap(incoming.tap, STALE_TAP if stale else None)

    def _record(
        self, uow: UnitOfWork, respondent_id: int, inbound: InboundMessage, outputs: tuple[Say, ...]
    ) -> list[Outgoing]:
        """The output recorder: runs inside the turn's transaction (on the database thread)."""
        chat_id = int(inbound.user_key)
        delivery = inbound.delivery_id
        if self._uses_inbox and delivery is not None:
            store.delete_inbox(uow, int(delivery))
        if isinstance(inbound.event, CommandIn) and inbound.event.name == "start":
            store.clear_blocked(uow, respondent_id)  # unblocking a bot sends /start
        tap = self._taps.get(delivery) if delivery is not None else None
        tapped_open: bool | None = None
        if tap is not None and tap.message_id is not None:
            tapped_open = store.tapped_row(uow, respondent_id, tap.message_id)
            event = inbound.event
            asked = isinstance(event, ChoiceIn) and any(
                say.question_id == event.question_id for say in outputs
            )
            if tapped_open is False and not asked:
                # A second tap on a question already answered by a tap (the engine has
                # moved on and only repeats its current question): say nothing. A tap
                # that keeps the question open (a multiple-choice toggle) is answered.
                assert delivery is not None
                self._stale.add(delivery)
                return []
        address = self.address(inbound.user_key)
        rows: list[store.NewOutbox] = []
        tapped: list[int] = []  # kept a while (closed), so a second tap is known stale
        cleared: list[int] = []  # forgotten: a late tap on them goes to the engine as usual
        for row_id, message_id in store.open_buttons(uow, respondent_id):
            if message_id is None:
                continue  # not sent yet: its buttons go at a later turn
            if tap is not None and message_id == tap.message_id:
                tapped.append(row_id)
            else:
                cleared.append(row_id)
                rows.append(store.NewOutbox(address, "clear", message_id=message_id))
        if tap is not None and tap.message_id is not None:
            if tap.text and tap.label:
                text = render.answered_text(tap.text, tap.label)
                rows.append(store.NewOutbox(address, "edit", text=text, message_id=tap.message_id))
            elif tapped_open is None:
                rows.append(store.NewOutbox(address, "clear", message_id=tap.message_id))
        store.close_buttons(uow, tapped)
        store.delete_outbox(uow, cleared)
        markups: list[dict | None] = [None] * len(rows)
        for say in outputs:
            for message in render.render(self._key, chat_id, say):
                rows.append(
                    store.NewOutbox(
                        address,
                        "send",
                        text=message.text,
                        markup_json=json.dumps(message.markup) if message.markup else None,
                        question_id=message.question_id,
                    )
                )
                markups.append(message.markup)
        rows = [
            store.NewOutbox(
                row.address,
                row.kind,
                row.text,
                row.markup_json,
                row.question_id,
                row.message_id,
                respondent_id,
            )
            for row in rows
        ]
        ids = store.add_outbox(uow, rows)
        return [
            Outgoing(row_id, chat_id, row.kind, row.text, markup, row.message_id, respondent_id)
            for row_id, row, markup in zip(ids, rows, markups, strict=True)
        ]

    async def _not_text(self, update_id: int, incoming: Incoming) -> None:
        """A sticker, photo, voice note, contact, location...: a short reply, nothing kept."""
        assert incoming.chat_id is not None
        chat_id = incoming.chat_id
        address = self.address(str(chat_id))

        def work(uow: UnitOfWork) -> list[int]:
            if self._uses_inbox:
                store.delete_inbox(uow, update_id)
            if not uow.claim_delivery(CHANNEL, str(update_id)):
                return []
            return store.add_outbox(uow, [store.NewOutbox(address, "send", text=NOT_TEXT)])

        ids = await self._writes.run(work)
        self.sender.submit([Outgoing(row_id, chat_id, "send", NOT_TEXT) for row_id in ids])

    def address(self, user_key: str) -> str:
        """The chat's sealed address for outbox rows (sealing is costly: kept a while)."""
        with self._addresses_lock:  # used from the loop and the database thread
            found = self._addresses.get(user_key)
            if found is None:
                found = self._addresses[user_key] = seal_handle(self._secret, CHANNEL, user_key)
                while len(self._addresses) > _ADDRESSES_REMEMBERED:
                    self._addresses.popitem(last=False)
            return found

    def _tell_group(self, incoming: Incoming) -> None:
        assert incoming.chat_id is not None
        if incoming.tap is not None:
            self._answer_tap(incoming.tap, None)
        marker = hmac.new(self._key, str(incoming.chat_id).encode(), hashlib.sha256).hexdigest()
        if marker in self._groups_told:
            return
        self._groups_told[marker] = None
        while len(self._groups_told) > _GROUPS_REMEMBERED:
            self._groups_told.popitem(last=False)
        self.sender.submit([Outgoing(None, incoming.chat_id, "send", GROUP_TEXT)])

    def _answer_tap(self, tap: Tap, text: str | None) -> None:
        params: dict[str, object] = {"callback_query_id": tap.callback_id}
        if text is not None:
            params["text"] = text
        reply = _WEBHOOK_REPLY.get()
        if reply is not None and reply.open and reply.call is None:
            reply.call = {"method": "answerCallbackQuery", **params}
            return

        async def answer() -> None:
            try:
                await call(self.bot, "answerCallbackQuery", params)
            except TelegramError as error:  # too old, or Telegram is away: nothing to do
                log.info("callback not answered", extra={"error": str(error)[:200]})

        self._spawn(answer())

    def _spawn(self, work: Awaitable[object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------ the inbox (polling)

    def seal_update(self, update: Update) -> str:
        return self._inbox_box.encrypt(update.to_json().encode()).decode("ascii")

    def needs_inbox(self, update: Update) -> bool:
        return translate(update, self._key).kind in ("turn", "not_text")

    async def keep(self, updates: list[Update]) -> None:
        """Write updates to the inbox (before their offset is confirmed to Telegram)."""
        rows = [(u.update_id, self.seal_update(u)) for u in updates if self.needs_inbox(u)]
        if rows:
            await self._writes.run(lambda uow: store.store_inbox(uow, rows))

    async def _forget_inbox(self, update_id: int) -> None:
        if self._uses_inbox:
            await self._writes.run(lambda uow: store.delete_inbox(uow, update_id))

    def schedule(self, update: Update) -> asyncio.Task[None]:
        """Process `update` after the earlier ones of its chat (chats run side by side)."""
        chat_id = translate(update, self._key).chat_id or 0
        previous = self._chains.get(chat_id)

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await self.process(update)

        task = asyncio.create_task(run())
        self._chains[chat_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._chains.get(chat_id) is done:
                del self._chains[chat_id]

        task.add_done_callback(forget)
        return task

    async def drain(self) -> None:
        """Wait for every scheduled update to be processed."""
        while self._chains:
            await asyncio.gather(*list(self._chains.values()), return_exceptions=True)

    async def recover(self, started: datetime, resend_window: timedelta) -> None:
        """At start-up: unsent outbox rows, unprocessed inbox updates, then re-ask open
        questions (their buttons stop working at Telegram after a while)."""

        def read(uow: UnitOfWork) -> tuple[list[store.OutboxRecord], list[tuple[int, str]]]:
            return store.pending_outbox(uow), store.inbox(uow)

        pending, kept = await self._writes.run(read)
        items = [item for item in map(self._outgoing, pending) if item is not None]
        if items:
            log.info("sending what was left unsent", extra={"count": len(items)})
            self.sender.submit(items)
        updates = []
        for update_id, payload in kept:
            try:
                data = json.loads(self._inbox_box.decrypt(payload.encode("ascii")))
                updates.append(Update.de_json(data, self.bot))
            except (InvalidToken, ValueError, TypeError):
                log.error("inbox update unreadable; dropped", extra={"update_id": update_id})
                await self._forget_inbox(update_id)
        if updates:
            log.info("processing kept updates", extra={"count": len(updates)})
        for update in updates:
            if update is not None:
                self.schedule(update)
        await self.drain()
        if resend_window > timedelta(0):
            await self.resend_open_questions(started - resend_window, started)

    async def resend_open_questions(self, since: datetime, before: datetime) -> int:
        """Ask again the open question of each conversation whose buttons were sent between
        `since` and `before` (the start of this process) and are still shown."""
        records = await self._writes.run(lambda uow: store.open_questions_since(uow, since, before))
        count = 0
        for record in records:
            chat = self._open_address(record.address)
            if chat is None:
                continue
            turn = await self._dispatcher.handle_turn(
                InboundMessage(CHANNEL, str(chat), ResumeIn())
            )
            if isinstance(turn.recorded, list) and turn.recorded:
                self.sender.submit(turn.recorded)
                count += 1
        if count:
            log.info("open questions asked again after a restart", extra={"count": count})
        return count

    def _open_address(self, address: str) -> int | None:
        try:
            channel, user_key = open_handle(self._secret, address)
            return int(user_key) if channel == CHANNEL else None
        except (RelayError, ValueError):
            log.error("outbox address unreadable")
            return None

    def _outgoing(self, record: store.OutboxRecord) -> Outgoing | None:
        chat = self._open_address(record.address)
        if chat is None:
            return None
        markup = json.loads(record.markup_json) if record.markup_json else None
        return Outgoing(
            record.id,
            chat,
            record.kind,
            record.text,
            markup,
            record.message_id,
            record.respondent_id,
        )

    # ------------------------------------------------------------ staff replies (bot.relay)

    async def deliver(self, user_key: str, text: str) -> None:
        """The relay's deliverer: a staff reply to this chat, through the outbox."""
        chat_id = int(user_key)
        key = pseudonym(self._secret, CHANNEL, user_key)
        address = seal_handle(self._secret, CHANNEL, user_key)
        pieces = render.split_text(text)

        def work(uow: UnitOfWork) -> tuple[int | None, list[int]] | None:
            if store.is_blocked(uow, key):
                return None
            respondent_id = store.respondent_id_of(uow, key)
            rows = [
                store.NewOutbox(address, "send", text=piece, respondent_id=respondent_id)
                for piece in pieces
            ]
            return respondent_id, store.add_outbox(uow, rows)

        found = await self._writes.run(work)
        if found is None:
            raise RelayError("the young person has blocked the bot")
        respondent_id, ids = found
        loop = asyncio.get_running_loop()
        items = [
            Outgoing(row_id, chat_id, "send", piece, respondent_id=respondent_id)
            for row_id, piece in zip(ids, pieces, strict=True)
        ]
        items[-1].done = loop.create_future()
        self.sender.submit(items)
        try:
            await asyncio.wait_for(asyncio.shield(items[-1].done), timeout=120)
        except TelegramError as error:
            raise RelayError(f"Telegram refused the message: {error}") from error
        except TimeoutError:
            log.warning("staff reply still queued; it stays in the outbox")

    # ------------------------------------------------------------ lifecycle

    async def announce(self, *, webhook_url: str | None, secret_token: str | None) -> None:
        """Tell Telegram our commands and how updates should arrive."""
        await self.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
        if webhook_url is not None:
            await self.bot.set_webhook(
                webhook_url,
                secret_token=secret_token,
                allowed_updates=list(ALLOWED_UPDATES),
                max_connections=40,
            )
        else:
            await self.bot.delete_webhook(drop_pending_updates=False)

    async def poll(
        self, *, timeout: int = POLL_TIMEOUT, on_batch: Callable[[], None] | None = None
    ):
        """Long polling: keep each batch, then confirm it by asking for the next one."""
        offset: int | None = None
        failures = 0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=timeout, allowed_updates=list(ALLOWED_UPDATES)
                )
                if updates:
                    await self.keep(list(updates))
                failures = 0
            except (InvalidBotToken, Conflict) as error:
                log.error("telegram polling refused", extra={"error": str(error)[:200]})
                failures += 1
            except Exception as error:
                log.warning("telegram polling failed", extra={"error": str(error)[:200]})
                failures += 1
            else:
                if updates:
                    offset = updates[-1].update_id + 1
                    for update in updates:
                        self.schedule(update)
                    if on_batch is not None:
                        on_batch()
                continue
            await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.drain(), timeout=10)
        except TimeoutError:
            log.warning("telegram updates still in progress at shutdown")
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.sender.close()
