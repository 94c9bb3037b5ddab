"""``GET /upload``: the custodian's upload page. Files dropped on it (or chosen) are sent by the
page's own script (``static/upload.js``) to the resumable uploads at ``/api/v1/uploads`` with the
browser's session and its CSRF token, each file's SHA-256 declared and each chunk's checked, one
progress bar per file; an upload broken by a reload resumes when the same file is chosen again.
The page itself only renders the form: what an upload may do is the upload routes' to decide."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from pipeline.catalog.people import Role
from pipeline.errors import ForbiddenError
from pipeline.settings import Settings
from pipeline.web.deps import CurrentUser, PageDep, SettingsDep

router = APIRouter(tags=["pages"])

CHUNK_SIZE = 8 * 1024 * 1024  # bytes the page sends per request, each with its own SHA-256


def known_docks(settings: Settings) -> list[str]:
    """The docks that have a watched folder, offered as choices (any other name may be typed)."""
    try:
        return sorted(p.name for p in settings.inbox_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


@router.get("/upload", response_class=HTMLResponse)
def upload_page(viewer: CurrentUser, settings: SettingsDep, page: PageDep) -> HTMLResponse:
    """The drop zone, the file chooser and the dock, for custodians (403 for others)."""
    if not viewer.has(Role.CUSTODIAN):
        raise ForbiddenError(f"{viewer.name} may not upload files: that needs the custodian role")
    return page.render("upload.html", {"docks": known_docks(settings), "chunk_size": CHUNK_SIZE})
