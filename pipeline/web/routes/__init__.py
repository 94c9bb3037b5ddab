"""One router per resource: ``health``, ``sessions`` (sign in and out), ``account`` (the acting
user: password, who am I), ``audit`` (the custody log, its verification, retrieval history),
``access`` (access requests), ``home``, ``language``, ``schema`` (the OpenAPI document),
``items_api`` and ``items_pages`` (the catalog: search, review queues, an item's record) and ``media`` (an
item's recording, poster, contact sheet and original, supervised), ``cases`` and ``packages`` (cases, their
records and disc packages, the discs' downloads), ``admin`` (accounts and API
tokens, for admins), ``upload_page`` (the custodian's upload page) and ``uploads`` (resumable uploads, tus 1.0, for
docks, recorders and that page)."""

from __future__ import annotations

from fastapi import APIRouter

from pipeline.web.routes import (
    access,
    account,
    admin,
    audit,
    cases,
    health,
    home,
    items_api,
    items_pages,
    language,
    media,
    packages,
    reports,
    schema,
    sessions,
    upload_page,
    uploads,
)

# Matched in this order: the uploads first, whose many large PATCHes each pay for the matching.
ROUTERS: tuple[APIRouter, ...] = (
    uploads.router,
    health.router,
    sessions.router,
    account.router,
    home.router,
    language.router,
    schema.router,
    items_api.router,
    items_pages.router,
    audit.router,
    access.router,
    media.router,
    cases.router,
    packages.router,
    admin.router,
    upload_page.router,
    reports.router,
)
