"""``GET /api/v1/health``: for load balancers and supervisors, without credentials."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from pipeline import __version__
from pipeline.runtime import catalog_reachable

router = APIRouter(prefix="/api/v1", tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    catalog: Literal["ok", "unreachable"]


@router.get("/health")
def health(request: Request) -> Health:
    """The application answers; whether the catalog does too."""
    reachable = catalog_reachable(request.app.state.engine)
    return Health(status="ok", version=__version__, catalog="ok" if reachable else "unreachable")
