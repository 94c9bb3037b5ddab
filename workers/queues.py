"""The queues: one per stage, named after the stage, and the broker the settings name.

Embedded default: kombu's file-system transport under ``$EVIDENCE_HOME/queue`` (no server), with
messages written atomically (``workers/queue_folder.py``). Cluster: ``EVIDENCE_BROKER_URL=redis://…``
(kombu's Redis transport, made to survive a server restart in ``workers/queue_redis.py``).
Nothing here touches the disk or the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from pipeline.settings import Settings
from workers import queue_folder, queue_redis  # noqa: F401  (each names the transport of its URLs)

# One queue per stage; "maintenance" carries the reconciler, the scheduled fixity checks and the
# archive stage (copies of originals to S3).
STAGES = ("intake", "probe", "derive", "package", "maintenance")
# Names an earlier release used, still accepted by `evidence worker --queues`.
OLD_NAMES: Mapping[str, str] = {"transcode": "derive"}
# Task name -> the stage queue it runs on.
ROUTES: Mapping[str, str] = {
    "evidence.intake": "intake",
    "evidence.probe": "probe",
    "evidence.derive": "derive",
    "evidence.package": "package",
    "evidence.reconcile": "maintenance",
    "evidence.fixity": "maintenance",
    "evidence.archive": "maintenance",
}


class UnknownStageError(ValueError):
    """A queue name that is no stage."""


def queue_name(settings: Settings, stage: str) -> str:
    return f"{settings.queue_prefix}.{stage}"


def parse_stages(text: str) -> list[str]:
    """Comma-separated stage names, old names translated, in the order given without repeats."""
    stages = [OLD_NAMES.get(name, name) for part in text.split(",") if (name := part.strip())]
    if unknown := sorted(set(stages) - set(STAGES)):
        raise UnknownStageError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    return list(dict.fromkeys(stages))


def queue_folders(settings: Settings) -> Iterable[Path]:
    """The folders the file-system transport needs (none for a broker server)."""
    if settings.broker_url:
        return ()
    return tuple(settings.queue_dir / sub for sub in ("messages", "processed", "control"))


def broker_settings(settings: Settings) -> tuple[str, dict[str, object]]:
    """The broker URL and transport options the settings name."""
    if settings.broker_url:
        options: dict[str, object] = {"visibility_timeout": 3600}
        if settings.broker_url.startswith(("redis://", "rediss://")):
            options["global_keyprefix"] = f"{settings.queue_prefix}:"
        return settings.broker_url, options
    folder = settings.queue_dir
    return f"{queue_folder.SCHEME}://localhost/", {
        "data_folder_in": str(folder / "messages"),
        "data_folder_out": str(folder / "messages"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),  # kombu's default is relative to the cwd
        "store_processed": False,
        # The file-system transport polls; its default of 1 s caps a worker at one batch a second.
        "polling_interval": 0.1,
    }
