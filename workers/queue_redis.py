"""The Redis broker: kombu's Redis transport, surviving the loss of the server while tasks run.

When the server goes away while a worker runs tasks whose messages are not yet acknowledged, Celery
collects the broken connection, which detaches its channels from it, and starts reconnecting. A
detached channel is still asked to put those messages back (when it is closed once more) and to
acknowledge them (when their tasks end); kombu then looks for the server's address on the missing
connection, and the AttributeError, not being a connection error, stops the worker with
"Unrecoverable error" instead of letting it reconnect.

Here a detached channel raises a connection error instead, which Celery and kombu already handle:
the messages are left to Redis, which delivers them again after the visibility timeout, and the
reconciler queues again from the catalog whatever is left undone.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES, redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the connection to the broker was lost; this channel is closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class Transport(redis.Transport):
    Channel = Channel


for _scheme in ("redis", "rediss"):
    TRANSPORT_ALIASES[_scheme] = f"{__name__}:Transport"
