"""The Telegram fixtures (a fake Bot API, the app around it) for the broadcast tests."""

from tests.telegram.conftest import api, telegram_app  # noqa: F401
