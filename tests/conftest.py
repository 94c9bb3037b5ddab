"""Shared fixtures: tiny real media made by ffmpeg, a data directory per test, and the catalog on
SQLite or on a PostgreSQL schema of its own."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from pipeline.catalog.db import dispose_engines
from pipeline.cli import main
from pipeline.ingest.intake import IntakeContext
from pipeline.runtime import intake_context
from pipeline.settings import Settings, load_settings
from tests.s3server import s3_server  # noqa: F401  (a fixture: SeaweedFS per session)

POSTGRES_URL = os.environ.get("EVIDENCE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EVIDENCE_TEST_REDIS", "redis://127.0.0.1:6379/0")
EVIDENCE = [sys.executable, "-m", "pipeline"]


# ------------------------------------------------------------------------------------------- media
def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; tests make their media with it."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_clip(path: Path, *options: str) -> Path:
    """A one-second 160x120 H.264 + AAC clip; ``options`` go before the output (tags, muxer flags)."""
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", *options, str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny clip, recording and photo per session, made by ffmpeg."""
    folder = tmp_path_factory.mktemp("media")
    make_clip(folder / "clip.mp4")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=880:duration=1", str(folder / "voice.wav"))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:duration=1", "-frames:v", "1", str(folder / "photo.jpg"))
    return folder


@dataclass(frozen=True)
class Samples:
    """Sample files made once per module, looked up by name."""

    folder: Path

    def __getitem__(self, name: str) -> Path:
        return self.folder / name


@dataclass(frozen=True)
class MediaMaker:
    folder: Path

    def variant(self, source: str, dest: Path, n: int = 0) -> Path:
        """A copy of a sample with distinct bytes: MP4 gets a trailing ``free`` box numbered n (still a
        valid file); other formats get n appended after their end, which players ignore."""
        data = (self.folder / source).read_bytes()
        if n:
            payload = f"variant {n}".encode()
            data += struct.pack(">I4s", 8 + len(payload), b"free") + payload
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return dest


@pytest.fixture
def media(media_dir: Path) -> MediaMaker:
    return MediaMaker(media_dir)


# ----------------------------------------------------------------------------------------- catalog
@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # the suite needs the real server; say so plainly
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    yield POSTGRES_URL
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """A schema of its own per test, so tests never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{postgres_admin}?options=-csearch_path%3D{schema}"
    dispose_engines()
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return ""
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """EVIDENCE_* settings for one test (also applied to this process)."""
    values = {
        "EVIDENCE_HOME": str(tmp_path / "data"),
        "EVIDENCE_DATABASE_URL": database_url,
        "EVIDENCE_QUIET_PERIOD": "0.3",
        "EVIDENCE_RESCAN_INTERVAL": "2",
        "EVIDENCE_QUEUE_PREFIX": f"test{uuid.uuid4().hex[:8]}",
        "EVIDENCE_ACTOR": "tester",
        "EVIDENCE_WEB_BIND": "127.0.0.1:0",  # `serve` listens on a free port: tests run side by side
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings()


@pytest.fixture
def ctx(settings: Settings) -> Iterator[IntakeContext]:
    yield intake_context(settings)
    dispose_engines()


@pytest.fixture
def dock(settings: Settings) -> Path:
    folder = settings.inbox_dir / "dock1"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --------------------------------------------------------------------------------------------- CLI
@dataclass(frozen=True)
class CliResult:
    exit_code: int
    output: str
    errors: str = ""

    @property
    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.output.splitlines() if line.startswith("{")]


@pytest.fixture
def cli(env: dict[str, str]) -> Callable[..., CliResult]:
    """Run the ``evidence`` command in this process (standard output, and standard error apart)."""
    runner = CliRunner()

    def run(*args: str) -> CliResult:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


# ------------------------------------------------------------------------------------- processes
@dataclass
class Service:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start ``evidence ARGS…`` as a real process group; all are stopped at the end of the test."""
    services: list[Service] = []

    def launch(*args: str, extra_env: dict[str, str] | None = None) -> Service:
        log = tmp_path / f"{args[0]}-{len(services)}.log"
        if args[0] in ("worker", "serve"):
            args = (*args, "--verbose")  # the tests read what they log, which goes to a file by default
        process = subprocess.Popen(
            [*EVIDENCE, *args],
            env={**os.environ, **env, **(extra_env or {}), "EVIDENCE_LOG_LEVEL": "INFO"},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=tmp_path,
        )
        service = Service(process, log)
        services.append(service)
        return service

    yield launch
    for service in services:
        service.stop()


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def flip_byte(path: Path, offset: int) -> None:
    """Alter one byte of a file in place (made writable first: stored objects are read-only)."""
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def sha256_of(path: Path) -> str:
    """A file's SHA-256, read in chunks (some test files are several GiB, mostly sparse)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
