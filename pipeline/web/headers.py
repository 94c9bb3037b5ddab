"""Security headers on every response: a Content-Security-Policy allowing only our own files (no
inline script or style), no MIME sniffing, no framing, no referrer beyond this site, and no caching
of anything but the static files."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
STATIC_PREFIX = "/static/"


def add_security_headers(headers: MutableHeaders, path: str) -> None:
    for name, value in HEADERS.items():
        headers[name] = value
    if not path.startswith(STATIC_PREFIX) and "cache-control" not in headers:
        headers["Cache-Control"] = "no-store"  # pages and API answers hold records: never cached


def secured(response: Response, path: str) -> Response:
    """``response`` with the security headers (for answers made outside the middleware: a 500)."""
    add_security_headers(response.headers, path)
    return response


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(MutableHeaders(scope=message), path)
            await send(message)

        await self.app(scope, receive, send_secured)
