"""Thin tasks: load by id, call a service. Every one is safe to run twice (see services)."""

import logging

from celery import shared_task

from pgp_project.operations.services import job_heartbeat

from . import services

logger = logging.getLogger(__name__)

DISPATCH_EVENT_TASK = "webhooks.dispatch_event"
SEND_DELIVERY_TASK = "webhooks.send_delivery"
SWEEP_TASK = "webhooks.sweep"
PRUNE_TASK = "webhooks.prune_history"


# A receiver that answers a byte at a time must not hold a worker (the default queue's money tasks
# share it) for the global limits' minutes: each send's own timeouts are per read, so the task
# has a total limit; the delivery is claimed again, and backs off, after its lease.
@shared_task(name=DISPATCH_EVENT_TASK, soft_time_limit=60, time_limit=75)
def dispatch_event(event_pk: int) -> None:
    """Right after an event's transaction commits: its deliveries, each sent at once, here (no
    further task per delivery: the lag was mostly task overhead). Under load it takes every
    event not yet dispatched, its own among them (SKIP LOCKED: two such tasks split them), so
    one task serves a burst and the tasks after it find nothing left to do. With no endpoint
    enabled there is nothing to send: the sweep marks such events dispatched later, in bulk,
    and no task locks outbox rows after every transition for nothing."""
    if not services.any_endpoint_enabled():
        return
    for delivery_pk in services.dispatch_events(limit=100):
        services.send_one(delivery_pk)
    # Its own event, should a concurrent task have it locked and die (the sweep would, later).
    for delivery_pk in services.dispatch_events([event_pk]):
        services.send_one(delivery_pk)


@shared_task(name=SEND_DELIVERY_TASK, soft_time_limit=30, time_limit=40)
def send_delivery(delivery_pk: int) -> None:
    services.send_one(delivery_pk)


@shared_task(name=SWEEP_TASK)
def sweep() -> None:
    """Beat job: dispatch what no enqueue did (a lost message, the IPN intake's events) and send
    every delivery that is due (retries included)."""
    with job_heartbeat(SWEEP_TASK):
        # Batches of 500 until none is left (events with no endpoint make no delivery, so the
        # question is whether events wait, not whether deliveries were made); bounded, since
        # events locked by a concurrent dispatcher stay undispatched until it commits.
        for _ in range(20):
            if not services.events_waiting():
                break
            services.dispatch_events()
        sent = services.send_due(budget_seconds=60)
        if sent:
            logger.info("webhook sweep: %s attempt(s)", sent)


@shared_task(name=PRUNE_TASK)
def prune_history() -> None:
    """Beat job: forget finished deliveries and their events past the retention."""
    with job_heartbeat(PRUNE_TASK):
        deliveries, events = services.prune_history()
        logger.info("pruned %s webhook deliveries and %s outbox events", deliveries, events)


def enqueue_dispatch(event_pk: int) -> None:
    """An outbox listener: runs after the event's transaction commits."""
    try:
        dispatch_event.delay(event_pk)
    except Exception:  # noqa: BLE001 - committed already; the sweep dispatches it
        logger.warning("could not enqueue the dispatch of event %s; the sweep will", event_pk)


def enqueue_send(delivery_pk: int, countdown: float) -> None:
    send_delivery.apply_async((delivery_pk,), countdown=countdown or None)
