"""The Celery application, made by :func:`create_app` from the settings: queues and routes in one
place, the tasks registered, nothing created when this module is imported.

Messages carry only sighting, item or package IDs, are acknowledged late and rejected when a worker
is lost; the reconciler in the catalog queues again whatever a lost message or a dead worker left
undone. Each process that needs the app (a worker, the watcher, a command that queues work) makes
it once.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from pipeline.settings import Settings, private_dir
from workers.queues import ROUTES, STAGES, broker_settings, queue_folders, queue_name
from workers.tasks import register


def create_app(settings: Settings) -> Celery:
    """A Celery app for these settings, with the pipeline's tasks registered."""
    for folder in queue_folders(settings):
        private_dir(folder)  # 0750 whatever the umask
    broker, options = broker_settings(settings)
    queues = {stage: queue_name(settings, stage) for stage in STAGES}
    app = Celery("evidence", set_as_current=False)
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
        task_routes={task: {"queue": queues[stage], "routing_key": queues[stage]} for task, stage in ROUTES.items()},
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
    register(app)
    return app
