"""One router per resource: ``health``, ``sessions`` (sign in and out), ``account`` (the acting
user: password, who am I), ``home``, ``language``, ``schema`` (the OpenAPI document) and ``media`` (an
item's recording, poster, contact sheet and original, supervised)."""

from __future__ import annotations

from fastapi import APIRouter

from pipeline.web.routes import account, health, home, language, media, schema, sessions

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    sessions.router,
    account.router,
    home.router,
    language.router,
    schema.router,
    media.router,
)
