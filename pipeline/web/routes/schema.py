"""``GET /openapi.json``: the API's description, for a signed-in person or a token. There is no
``/docs`` page (it would load a script from elsewhere)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from pipeline.web.deps import CurrentUser

router = APIRouter(tags=["schema"])


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, viewer: CurrentUser) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema
