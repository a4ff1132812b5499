"""Broker options: Redis and RabbitMQ each keep a held task from a second worker (settings/brokers.py)."""

import os

import pytest
from django.core.exceptions import ImproperlyConfigured
from kombu import Connection, Exchange, Queue

from pgp_project.settings.brokers import broker_kind, check_redelivery_window, transport_options
from standins.queues import remove_queue

from ..conftest import BROKERS, reachable

LIMITS = {"longest_countdown": 300.0, "soft_time_limit": 120, "hard_time_limit": 180}


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://cache:6380/1", "redis"),
        ("sentinel://s1:26379", "redis"),
        ("amqp://guest:guest@127.0.0.1:5672//", "amqp"),
        ("pyamqp://mq/pgp", "amqp"),
        ("amqps://mq:5671/pgp", "amqp"),
        ("filesystem://", "filesystem"),
    ],
)
def test_each_broker_url_is_known_by_its_scheme(url: str, kind: str) -> None:
    assert broker_kind(url) == kind


def test_an_unknown_broker_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="sqs"):
        broker_kind("sqs://")


def test_redis_gets_its_visibility_timeout_and_rabbitmq_publisher_confirms() -> None:
    assert transport_options("redis://127.0.0.1:6379/0", visibility_timeout=3600) == {"visibility_timeout": 3600}
    assert transport_options("amqp://guest:guest@127.0.0.1:5672//", visibility_timeout=3600) == {
        "confirm_publish": True
    }
    assert transport_options("filesystem://", visibility_timeout=3600) == {}


def test_the_defaults_fit_both_brokers() -> None:
    for url in ("redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672//"):
        check_redelivery_window(url, **LIMITS, visibility_timeout=3600, consumer_timeout=1800)


def test_a_countdown_outliving_redis_visibility_timeout_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="visibility timeout 400s"):
        check_redelivery_window("redis://127.0.0.1:6379/0", **LIMITS, visibility_timeout=400, consumer_timeout=1800)
    # The same limits are fine on RabbitMQ, whose window is its consumer_timeout.
    check_redelivery_window("amqp://mq//", **LIMITS, visibility_timeout=400, consumer_timeout=1800)


def test_a_countdown_outliving_rabbitmq_consumer_timeout_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="consumer_timeout 450s"):
        check_redelivery_window("amqp://mq//", **LIMITS, visibility_timeout=3600, consumer_timeout=450)


def test_the_soft_limit_stays_under_the_hard_one() -> None:
    with pytest.raises(ImproperlyConfigured, match="soft time limit"):
        check_redelivery_window(
            "redis://r",
            longest_countdown=1,
            soft_time_limit=180,
            hard_time_limit=180,
            visibility_timeout=3600,
            consumer_timeout=1800,
        )


def test_settings_check_the_window_at_start(settings) -> None:
    """The settings apply the check to the configured countdowns: the longest is the retry cap."""
    assert settings.PGP_LONGEST_COUNTDOWN_SECONDS >= settings.PGP_RETRY_MAX_COUNTDOWN_SECONDS
    held = settings.PGP_LONGEST_COUNTDOWN_SECONDS + settings.CELERY_TASK_TIME_LIMIT
    assert held < settings.PGP_BROKER_CONSUMER_TIMEOUT_SECONDS
    assert held < settings.CELERY_BROKER_VISIBILITY_TIMEOUT


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_private_queue_is_taken_away_with_its_messages_and_binding(broker: str, settings) -> None:
    """What the flow tests and the pipeline benchmark do at their end: nothing of theirs is left."""
    url = BROKERS[broker] or settings.CELERY_BROKER_URL
    if not reachable(url):
        pytest.skip(f"{broker} is not reachable")
    name = f"pgp-test-remove-{os.getpid()}"
    with Connection(
        url, connect_timeout=3, transport_options=transport_options(url, visibility_timeout=3600)
    ) as connection:
        exchange = Exchange(name, "direct")
        queue = Queue(name, exchange, routing_key=name)
        connection.Producer().publish({"id": 1}, exchange=exchange, routing_key=name, declare=[queue])
        assert queue(connection.default_channel).queue_declare(passive=True).message_count == 1
    remove_queue(url, name)
    with Connection(url, connect_timeout=3) as connection:
        if broker == "redis":
            client = connection.default_channel.client
            assert not client.exists(name)
            assert not client.exists(f"_kombu.binding.{name}")
        else:
            with pytest.raises(Exception, match="NOT_FOUND"):
                connection.default_channel.queue_declare(name, passive=True)
