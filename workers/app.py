"""The Celery application.

Embedded default: kombu's file-system transport under ``$EVIDENCE_HOME/queue`` (no server), with
messages written atomically (``workers/queue_folder.py``).
Cluster: ``EVIDENCE_BROKER_URL=redis://…`` (kombu's Redis transport, made to survive a server
restart in ``workers/queue_redis.py``). Either way messages carry only sighting/item IDs, are
acknowledged late and rejected when a worker is lost; the reconciler in the catalog re-enqueues
whatever a lost message or a dead worker left undone.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from pipeline.settings import Settings, load_settings
from workers import queue_folder, queue_redis  # noqa: F401  (queue_redis: redis:// URLs use its transport)

STAGES = ("intake", "probe", "transcode", "package", "maintenance")


def queue_name(settings: Settings, stage: str) -> str:
    return f"{settings.queue_prefix}.{stage}"


def broker_settings(settings: Settings) -> tuple[str, dict[str, object]]:
    if settings.broker_url:
        options: dict[str, object] = {"visibility_timeout": 3600}
        if settings.broker_url.startswith(("redis://", "rediss://")):
            options["global_keyprefix"] = f"{settings.queue_prefix}:"
        return settings.broker_url, options
    folder = settings.queue_dir
    for sub in ("messages", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return f"{queue_folder.SCHEME}://localhost/", {
        "data_folder_in": str(folder / "messages"),
        "data_folder_out": str(folder / "messages"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),  # kombu's default is relative to the cwd
        "store_processed": False,
        # The file-system transport polls; its default of 1 s caps a worker at one batch a second.
        "polling_interval": 0.1,
    }


def configure(app: Celery, settings: Settings) -> Celery:
    """Point the app at the broker and queues the settings name (again, if they changed)."""
    app.close()  # drop pooled broker connections made under earlier settings
    broker, options = broker_settings(settings)
    queues = {stage: queue_name(settings, stage) for stage in STAGES}
    app.conf.update(
        broker_url=broker,
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in queues.values()],
        task_default_queue=queues["intake"],
        task_routes={
            "evidence.intake": {"queue": queues["intake"], "routing_key": queues["intake"]},
            "evidence.probe": {"queue": queues["probe"], "routing_key": queues["probe"]},
            "evidence.derive": {"queue": queues["transcode"], "routing_key": queues["transcode"]},
            "evidence.package": {"queue": queues["package"], "routing_key": queues["package"]},
            "evidence.reconcile": {"queue": queues["maintenance"], "routing_key": queues["maintenance"]},
            "evidence.fixity": {"queue": queues["maintenance"], "routing_key": queues["maintenance"]},
        },
        worker_hijack_root_logger=False,
        # A broker blip does not stop a long transcode: its outcome goes to the catalog, and the
        # message delivered again later finds the stage no longer pending and skips it.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_send_task_events=False,
        # The file-system transport has no fan-out for remote control; the catalog is the control plane.
        worker_enable_remote_control=bool(settings.broker_url),
        beat_schedule={
            "reconcile": {"task": "evidence.reconcile", "schedule": settings.reconcile_interval},
        },
    )
    app.conf.evidence_settings = settings
    return app


app = configure(Celery("evidence", set_as_current=True), load_settings())

import workers.tasks  # noqa: E402,F401  (registers the tasks on the app)
