"""The Telegram channel (issue 5): python-telegram-bot receives and sends; our database
owns the conversation.

- `callbacks`, `render`, `translate`: pure (Telegram update -> event, Say -> message).
- `sender`: rate-limited, retrying Bot API calls from the outbox.
- `channel`: the adapter (inbox, dispatcher turn + outbox in one transaction, polling loop,
  webhook route); `setup.setup_telegram(app)` wires it into the aiohttp app.
"""
