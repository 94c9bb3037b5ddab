"""The API fuzzed from its own OpenAPI document (schemathesis), on SQLite, as a custodian's script
with a bearer token over a few real records: whatever the generated parameters and bodies, no
answer is a server error, the token is never turned away, and every successful JSON answer is of
the schema the document gives."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from itertools import cycle
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from pipeline.accounts.tokens import create_token
from pipeline.catalog.cases import set_classification
from pipeline.catalog.db import dispose_engines, session_scope
from pipeline.catalog.viewer import Viewer
from pipeline.cli import main
from pipeline.probe.assign import assign_facts
from pipeline.runtime import probe_context
from pipeline.settings import load_settings
from pipeline.stage import TOOL
from pipeline.web.app import create_web_app
from tests.conftest import MediaMaker

SERVER = Viewer.local("root")
CLASSES = {"n": "none", "p": "privacy", "t": "trade-secret"}
CASE = "F-1"
EXAMPLES = 12  # per operation: the whole test stays well within a minute and a half


class Fuzzed:
    """The application under test, its custodian token and the IDs of its records."""

    app: FastAPI
    headers: dict[str, str]
    ids: Iterator[str]
    cases: Iterator[str]


FUZZED = Fuzzed()


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> Iterator[Any]:
    """A clip of each class in CLASSES (taken in and derived, with facts), a custodian token
    cleared for every class, and the schema as that token reads it from ``/openapi.json``."""
    home = tmp_path_factory.mktemp("fuzz")
    values = {
        "EVIDENCE_HOME": str(home / "data"),
        "EVIDENCE_DATABASE_URL": "",
        "EVIDENCE_QUEUE_PREFIX": f"test{uuid.uuid4().hex[:8]}",
        "EVIDENCE_ACTOR": "tester",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in values.items():
            patch.setenv(key, value)
        settings_ = load_settings()
        for n, name in enumerate(CLASSES, start=1):
            MediaMaker(media_dir).variant("clip.mp4", settings_.inbox_dir / "dock1" / f"{name}.mp4", n)
        result = CliRunner().invoke(main, ["ingest", str(settings_.inbox_dir), "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        ids = {Path(str(r["path"])).stem: str(r["item"]) for r in records}
        ctx = probe_context(settings_)
        for name in CLASSES:
            facts = {"case_number": CASE, "collector": f"officer-{name}", "captured_at": "2025-09-30T10:00"}
            assign_facts(ctx, ident=ids[name], facts=facts, viewer=SERVER)
        app = create_web_app(settings_)
        with session_scope(app.state.engine) as session:
            for name, own in CLASSES.items():
                set_classification(session, viewer=SERVER, item_id=ids[name], classification=own, tool=TOOL)
            made = create_token(
                session,
                name="fuzzer",
                role="custodian",
                clearances=("privacy", "trade-secret", "state-secret"),
                actor="tester",
                tool=TOOL,
            )
        FUZZED.app = app
        FUZZED.headers = {"Authorization": f"Bearer {made.token}"}
        FUZZED.ids = cycle([*ids.values(), "0" * 26])
        FUZZED.cases = cycle([CASE, "NO-SUCH-CASE"])
        yield schemathesis.openapi.from_asgi("/openapi.json", app, headers=FUZZED.headers)
        dispose_engines()


def conforms_when_done(ctx: Any, response: Any, case: Any) -> bool | None:
    """A successful JSON answer is of the schema the document gives (errors are the project's
    ``{"detail": …, "error": …}``, which FastAPI's document does not describe)."""
    content_type = response.headers.get("content-type", [""])[0]
    if 200 <= response.status_code < 300 and content_type.startswith("application/json"):
        conforms: bool | None = response_schema_conformance(ctx, response, case)
        return conforms
    return None


def token_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """The token is never turned away (a sign-in attempt made with it may be, for its own reasons)."""
    if case.path != "/login":
        assert response.status_code != 401, f"{case.method} {case.formatted_path}: the token was refused"
    return None


def fuzz(operation: Any, mode: GenerationMode) -> None:
    """EXAMPLES cases of ``operation`` in ``mode``, each sent and checked."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        # the real records and case in turn, and ones nothing has
        if "ident" in (case.path_parameters or {}) and "/access" not in case.path:
            case.path_parameters["ident"] = next(FUZZED.ids)
        if "number" in (case.path_parameters or {}):
            case.path_parameters["number"] = next(FUZZED.cases)
        case.call_and_validate(headers=FUZZED.headers, checks=[not_a_server_error, conforms_when_done, token_accepted])

    run()


class TestFuzzedApi:
    def test_no_server_errors_and_successes_as_documented(self, api_schema: Any) -> None:
        """Every operation of the document, with valid and with invalid parameters and bodies:
        never a 500, never the token refused, every success of its documented shape."""
        failed: list[str] = []
        operations = [result.ok() for result in api_schema.get_all_operations()]
        assert len(operations) >= 10
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz(operation, mode)
                except Unsatisfiable:  # nothing of it can be made invalid: no parameters, no body
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except Exception as exc:  # every operation is tried; what failed is listed together
                    failed.append(f"{operation.label} ({mode.value}): {str(exc)[:2000]}")
        assert failed == [], "\n\n".join(failed)

    def test_a_package_that_cannot_be_made_is_refused_as_invalid(self, api_schema: Any) -> None:
        """A package asked for on a medium there is none of is a 422 saying so, not a server error."""
        client = TestClient(FUZZED.app, headers=FUZZED.headers)
        response = client.post(f"/api/v1/cases/{CASE}/packages", json={"media": "floppy"})
        assert response.status_code == 422
        assert response.json()["error"] == "PackageError" and "unknown medium" in response.json()["detail"]
