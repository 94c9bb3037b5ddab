"""One router per resource: ``health``, ``sessions`` (sign in and out), ``account`` (the acting
user: password, who am I), ``audit`` (the custody log, its verification, retrieval history),
``access`` (access requests), ``home``, ``language``, ``schema`` (the OpenAPI document) and ``media`` (an
item's recording, poster, contact sheet and original, supervised)."""

from __future__ import annotations

from fastapi import APIRouter

from pipeline.web.routes import access, account, audit, health, home, language, media, schema, sessions

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    sessions.router,
    account.router,
    home.router,
    language.router,
    schema.router,
    audit.router,
    access.router,
    media.router,
)
