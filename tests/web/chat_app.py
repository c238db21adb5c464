"""A minimal app around `web.chat.setup_chat`, for tests that use a fake dispatcher."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from config.settings import Settings
from web.chat import security_headers_middleware, setup_chat
from web.keys import DISPATCHER, SETTINGS, MessageHandler

WEB_DIR = Path(__file__).resolve().parents[2] / "web"


def build_app(settings: Settings, dispatcher: MessageHandler) -> web.Application:
    """What create_app does for the chat, minus database, engine and jobs."""
    app = web.Application(middlewares=[security_headers_middleware])
    app[SETTINGS] = settings
    app[DISPATCHER] = dispatcher
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app.router.add_static("/static", WEB_DIR / "static")
    setup_chat(app)
    return app
