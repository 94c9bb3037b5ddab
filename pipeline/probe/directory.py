"""Reading ``config/devices.toml``: which officer a device belongs to, what each dock knows."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import ConfigFileError, read_toml
from pipeline.errors import PipelineError
from pipeline.probe.choose import Directory


class DirectoryError(PipelineError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def load_directory(path: Path) -> Directory:
    if not path.exists():
        return Directory({}, {}, {})
    try:
        data = read_toml(path)
    except ConfigFileError as exc:
        raise DirectoryError(path, exc.reason) from exc
    devices, docks = data.get("devices", {}), data.get("docks", {})
    if not isinstance(devices, dict) or not isinstance(docks, dict):
        raise DirectoryError(path, "[devices] and [docks] must be tables")
    device_officers = {}
    for serial, entry in devices.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("officer"), str):
            raise DirectoryError(path, f'devices."{serial}" needs officer = "…"')
        device_officers[str(serial)] = entry["officer"]
    places = {str(d): e["place"] for d, e in docks.items() if isinstance(e, dict) and isinstance(e.get("place"), str)}
    officers = {
        str(d): e["officer"] for d, e in docks.items() if isinstance(e, dict) and isinstance(e.get("officer"), str)
    }
    return Directory(device_officers, places, officers)
