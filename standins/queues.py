"""Taking a private queue away after a run (the test suite's, a benchmark's), on any broker."""

from kombu import Connection, Exchange, Queue


def remove_queue(broker_url: str, name: str) -> None:
    """Purge and delete the queue `name` and Celery's direct exchange of the same name.

    Declared first, so the channel knows the binding: Redis keeps bindings in a key of their own
    (`_kombu.binding.<name>`), which a bare delete would leave behind; RabbitMQ keeps a durable
    queue and its exchange after their consumers leave."""
    with Connection(broker_url, connect_timeout=5) as connection:
        channel = connection.default_channel
        queue = Queue(name, Exchange(name, "direct"), routing_key=name, channel=channel)
        queue.declare()
        queue.purge()
        queue.delete()
        queue.exchange.delete()
