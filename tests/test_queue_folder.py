"""The embedded queue never shows a consumer a half-written message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kombu import Connection

from workers import queue_folder


def connection(folder: Path) -> Connection:
    for sub in ("messages", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return Connection(
        f"{queue_folder.SCHEME}://localhost/",
        transport_options={
            "data_folder_in": str(folder / "messages"),
            "data_folder_out": str(folder / "messages"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
        },
    )


class TestQueueFolder:
    def test_message_appears_only_when_complete(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Until the rename, the folder holds no name a consumer would take; after it, the whole message."""
        seen: list[list[str]] = []
        real_rename = os.rename

        def watching_rename(src: str, dst: str) -> None:
            seen.append(sorted(name for name in os.listdir(tmp_path / "messages") if name.endswith(".msg")))
            real_rename(src, dst)

        monkeypatch.setattr(queue_folder.os, "rename", watching_rename)
        with connection(tmp_path) as conn:
            queue = conn.SimpleQueue("evidence.intake")
            queue.put({"ids": ["01J0"]})
            monkeypatch.undo()
            message = queue.get(timeout=5)
            assert message.payload == {"ids": ["01J0"]}
            message.ack()
            queue.close()
        assert seen and all(names == [] for names in seen)
