"""The FastAPI app: OpenAI-compatible Files, Batches and Chat, plus routing, feedback and ops."""

from __future__ import annotations

from fastapi import FastAPI

from api import errors
from api.routes import batches, chat, decisions, files, health
from switchyard.config import get_settings
from switchyard.store.db import init_db


def create_app() -> FastAPI:
    init_db(get_settings())
    app = FastAPI(title="Switchyard", version="0.1.0",
                  description="OpenAI-compatible batch and chat API with per-request LLM routing.")
    errors.install(app)
    for module in (files, batches, chat, decisions, health):
        app.include_router(module.router)
    return app
