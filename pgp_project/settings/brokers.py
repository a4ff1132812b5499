"""What each broker needs so that an acks_late task is never handed to a second worker while
the first still holds it (reliability rule 6), on Redis and on RabbitMQ alike.

A worker receives a task with a countdown at once and holds it, unacknowledged, until it is due
and then for as long as it runs (acks_late). Each broker takes back a message held too long:

- Redis: after the transport's `visibility_timeout`, counted from delivery, the message is
  restored and delivered again (to another worker, while the first still holds it).
- RabbitMQ: after the server's `consumer_timeout` (rabbitmq.conf, 30 min by default), the
  server closes the worker's channel and redelivers everything it held. It is a server setting,
  not a client one: `PGP_BROKER_CONSUMER_TIMEOUT_SECONDS` states what the server is set to.

Either window must exceed the longest countdown we schedule plus the hard time limit. On
RabbitMQ, publisher confirms make a message the broker did not take an error at the send
(logged as an alert; the recovery sweep re-drives the object), never a silent loss.
"""

from typing import Any

from django.core.exceptions import ImproperlyConfigured

RABBITMQ_DEFAULT_CONSUMER_TIMEOUT_SECONDS = 30 * 60

_SCHEMES = {
    "redis": "redis",
    "rediss": "redis",
    "sentinel": "redis",
    "amqp": "amqp",
    "amqps": "amqp",
    "pyamqp": "amqp",
    "filesystem": "filesystem",
    "memory": "memory",
}


def broker_kind(url: str) -> str:
    """'redis', 'amqp', 'filesystem' or 'memory' for a broker URL; anything else is refused."""
    scheme = url.partition("://")[0].partition("+")[0].lower()
    try:
        return _SCHEMES[scheme]
    except KeyError:
        raise ImproperlyConfigured(f"CELERY_BROKER_URL: unsupported broker scheme {scheme!r}") from None


def transport_options(url: str, *, visibility_timeout: int) -> dict[str, Any]:
    """kombu transport options for this broker (the filesystem broker's folders are added by
    the settings that use it)."""
    kind = broker_kind(url)
    if kind == "redis":
        return {"visibility_timeout": visibility_timeout}
    if kind == "amqp":
        return {"confirm_publish": True}
    return {}


def check_redelivery_window(
    url: str,
    *,
    longest_countdown: float,
    soft_time_limit: int,
    hard_time_limit: int,
    visibility_timeout: int,
    consumer_timeout: int,
) -> None:
    """Refuse to start with limits under which the broker would redeliver a task still held."""
    if not soft_time_limit < hard_time_limit:
        raise ImproperlyConfigured("Celery limits must satisfy soft time limit < hard time limit")
    held = longest_countdown + hard_time_limit
    kind = broker_kind(url)
    if kind == "redis" and not held < visibility_timeout:
        raise ImproperlyConfigured(
            f"Redis visibility timeout {visibility_timeout}s must exceed the longest countdown plus the hard "
            f"time limit ({held:.0f}s), or Redis would hand a held task to a second worker"
        )
    if kind == "amqp" and not held < consumer_timeout:
        raise ImproperlyConfigured(
            f"RabbitMQ consumer_timeout {consumer_timeout}s (PGP_BROKER_CONSUMER_TIMEOUT_SECONDS, as set on the "
            f"server) must exceed the longest countdown plus the hard time limit ({held:.0f}s)"
        )
