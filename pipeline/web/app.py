"""``create_web_app(settings)``: the FastAPI application. Nothing happens on import; the catalog is
opened (and its schema brought up to date) when the application is made."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pipeline import __version__
from pipeline.runtime import open_catalog
from pipeline.settings import Settings
from pipeline.web import errors
from pipeline.web.headers import SecurityHeaders
from pipeline.web.i18n import Translations
from pipeline.web.pages import make_environment
from pipeline.web.routes import ROUTERS

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_web_app(settings: Settings) -> FastAPI:
    """The web application for ``settings``: pages, ``/api/v1``, ``/static``; security headers on
    every response; the project's errors answered as pages or JSON."""
    app = FastAPI(
        title="Evidence pipeline",
        version=__version__,
        openapi_url=None,  # served by routes.schema, for signed-in users only
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN and run inline scripts
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = open_catalog(settings)
    app.state.translations = Translations.load()
    app.state.templates = make_environment()
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeaders)
    return app
