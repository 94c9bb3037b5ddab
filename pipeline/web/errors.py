"""HTTP errors live here and only here: the project's errors (``pipeline.errors``) become a status
by a small table, and every failure is answered as JSON under ``/api/`` and as a page elsewhere,
never with a traceback. A bug is logged with its traceback and answered with a plain 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from pipeline import errors
from pipeline.errors import PipelineError, describe
from pipeline.package.errors import PackageError
from pipeline.web.headers import secured

log = logging.getLogger("evidence.web")

API_PREFIX = "/api/"


class SignInRequired(Exception):
    """No valid session cookie or bearer token: pages go to the sign-in page, the API answers 401."""


class PasswordChangeRequired(Exception):
    """The account must choose a new password before anything else."""


class CsrfRefused(Exception):
    """A form without this browser's token."""


def _table() -> list[tuple[type[PipelineError], int]]:
    """The project's errors and their statuses; an error takes the status of the first of its
    classes (most derived first) found here. Names the errors module may not have are skipped."""
    wanted = [
        ("NotFoundError", 404),
        ("ForbiddenError", 403),
        ("ConflictError", 409),
        ("PasswordRejected", 422),
        ("LoginThrottled", 429),
        ("AccountLocked", 429),
        ("AuthError", 401),
        ("InvalidValueError", 422),
        ("ContentError", 422),
        ("SystemFault", 503),
    ]
    found = [(getattr(errors, name, None), status) for name, status in wanted]
    found.append((PackageError, 422))  # a package that cannot be made as asked
    return [(cls, status) for cls, status in found if isinstance(cls, type) and issubclass(cls, PipelineError)]


STATUSES: dict[type[PipelineError], int] = dict(_table())


def status_for(exc: PipelineError) -> int:
    """The HTTP status of one of the project's errors (500 for one the table does not name)."""
    for cls in type(exc).__mro__:
        if cls in STATUSES:
            return STATUSES[cls]
    return 500


def wants_json(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX) or request.url.path == "/openapi.json"


def error_response(request: Request, status: int, message: str, *, code: str | None = None) -> Response:
    """The answer to a failure: ``{"detail": …, "error": …}`` for the API, the error page otherwise."""
    if wants_json(request):
        body: dict[str, Any] = {"detail": message}
        if code:
            body["error"] = code
        return JSONResponse(body, status_code=status)
    from pipeline.web.pages import render_error

    return render_error(request, status, message)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(PipelineError)
    async def pipeline_error(request: Request, exc: PipelineError) -> Response:
        status = status_for(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, describe(exc))
        return error_response(request, status, describe(exc), code=type(exc).__name__)

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, exc: SignInRequired) -> Response:
        if wants_json(request):
            response = error_response(request, 401, "sign in or send an API token (Authorization: Bearer …)")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        target = "/login"
        if request.method == "GET" and request.url.path != "/":
            from urllib.parse import quote

            target += "?next=" + quote(request.url.path, safe="/")
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(PasswordChangeRequired)
    async def password_change_required(request: Request, exc: PasswordChangeRequired) -> Response:
        if wants_json(request):
            return error_response(request, 403, "the account must change its password first (/account/password)")
        return RedirectResponse("/account/password", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        from pipeline.web.pages import translations_of

        lang = translations_of(request).choose(request.cookies.get("lang"), request.headers.get("accept-language"))
        return error_response(request, 403, translations_of(request).text(lang, "error.csrf"), code="CsrfRefused")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        response = error_response(request, exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # Said without echoing the values (they may be hostile, or long).
        problems = [
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in exc.errors()[:20]
        ]
        return error_response(request, 422, "; ".join(problems) or "invalid request", code="InvalidRequest")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        # Runs outside the other middleware (Starlette's outermost layer): headers added here.
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        try:
            response = error_response(request, 500, "internal error")
        except Exception:  # the error page itself failed: say it plainly
            response = JSONResponse({"detail": "internal error"}, status_code=500)
        return secured(response, request.url.path)
