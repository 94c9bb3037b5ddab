"""Sending work to the stage queues: what the watcher, the command line, the reconciler and one
stage's task use to hand items to the next. Messages carry only sighting, item or package IDs."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from kombu import Connection
from kombu.exceptions import OperationalError as KombuOperationalError

from pipeline.errors import TransientError
from pipeline.settings import Settings
from workers.queues import ROUTES, broker_settings, queue_name


class Dispatcher:
    """Queues tasks of ``app`` on the broker and queues its settings name.

    Satisfies :class:`pipeline.ingest.reconcile.StageQueue`. A broker that cannot be reached raises
    :class:`TransientError`; whatever was not queued stays pending in the catalog, and the
    reconciler queues it once the broker is back.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.settings: Settings = app.conf.evidence_settings

    def send(self, task: str, ids: Sequence[str]) -> None:
        """Queue ``task`` (a name of ``ROUTES``) for these IDs, on a connection of its own so a
        broken pooled connection from an earlier outage is never reused."""
        url, options = broker_settings(self.settings)
        queue = queue_name(self.settings, ROUTES[task])
        try:
            with Connection(url, transport_options=options) as connection:
                self.app.send_task(task, args=[list(ids)], queue=queue, routing_key=queue, connection=connection)
        except (KombuOperationalError, ConnectionError, OSError) as exc:
            raise TransientError(f"broker unavailable: {exc}") from exc

    def intake(self, sighting_ids: Sequence[str]) -> None:
        self.send("evidence.intake", sighting_ids)

    def probe(self, item_ids: Sequence[str]) -> None:
        self.send("evidence.probe", item_ids)

    def derive(self, item_ids: Sequence[str]) -> None:
        self.send("evidence.derive", item_ids)

    def package(self, package_ids: Sequence[str]) -> None:
        self.send("evidence.package", package_ids)

    def fixity(self, item_ids: Sequence[str]) -> None:
        self.send("evidence.fixity", item_ids)

    def archive(self, item_ids: Sequence[str]) -> None:
        self.send("evidence.archive", item_ids)

    def reconcile(self) -> None:
        """One reconciler pass on a maintenance worker."""
        queue = queue_name(self.settings, ROUTES["evidence.reconcile"])
        self.app.send_task("evidence.reconcile", queue=queue, routing_key=queue)
