"""Webhook endpoints (managed by staff in the admin, and by these functions, which an API may
call), the dispatcher that turns outbox events into deliveries, and the sender.

Every step is safe to run twice, concurrently, or after a worker died in the middle:
- dispatching an event creates at most one delivery per endpoint (a unique constraint) and marks
  the event dispatched in the same transaction, the event's row locked (SKIP LOCKED);
- an attempt is claimed by a compare-and-set that stamps a fresh claim token and a lease, so two
  workers never send one attempt; its outcome is written only by the claim that sent it; a
  worker killed mid-send leaves a lease that expires, and the delivery is sent again (at least
  once: the receiver deduplicates by webhook-id, the event's stable id).
"""

import base64
import json
import logging
import random
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from payments.models import Client
from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.state_machine import record_action
from pgp_project.outbox.models import OutboxEvent

from . import http
from .alerts import WEBHOOK_DELIVERY_FAILED, WEBHOOK_ENDPOINT_DISABLED
from .models import (
    ALL_EVENTS,
    EVENT_TYPES,
    DeliveryStatus,
    WebhookAttempt,
    WebhookCounter,
    WebhookDelivery,
    WebhookEndpoint,
)

logger = logging.getLogger(__name__)

ENDPOINT_SUBJECT = "webhook_endpoint"
DELIVERY_SUBJECT = "webhook_delivery"
# Set by the app's tasks module: enqueue the send of a delivery (after commit), with a countdown.
_enqueue_send: Callable[[int, float], None] | None = None


def set_sender(enqueue: Callable[[int, float], None]) -> None:
    global _enqueue_send
    _enqueue_send = enqueue


# --- endpoints ------------------------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks signing secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def clean_event_types(event_types: Iterable[str]) -> list[str]:
    types = sorted(set(event_types))
    unknown = [name for name in types if name != ALL_EVENTS and name not in EVENT_TYPES]
    if unknown or not types:
        raise ValidationError(
            f"unknown event types {unknown}" if unknown else "name at least one event type (or * for all)"
        )
    return [ALL_EVENTS] if ALL_EVENTS in types else types


def clean_url(url: str) -> str:
    try:
        http.check_destination_url(url)
    except ValueError as error:
        raise ValidationError(str(error)) from error
    return url


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once: only its owner keeps it


def create_endpoint(
    *,
    url: str,
    event_types: Iterable[str],
    client: Client | None = None,
    description: str = "",
    created_by: Any = None,
    reason: str = "",
) -> CreatedEndpoint:
    """`reason` follows the URL in the audit event's reason (which API key asked, say)."""
    secret = new_secret()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            url=clean_url(url),
            event_types=clean_event_types(event_types),
            client=client,
            description=description,
            secret=secret,
            created_by=created_by,
        )
        record_action(
            ENDPOINT_SUBJECT,
            endpoint.pk,
            action="created",
            status="enabled",
            actor=created_by,
            reason=f"{url}; {reason}" if reason else url,
        )
    return CreatedEndpoint(endpoint, secret)


def update_endpoint(
    endpoint_id: int,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    description: str | None = None,
    actor: Any = None,
    reason: str = "",
) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        if url is not None:
            endpoint.url = clean_url(url)
        if event_types is not None:
            endpoint.event_types = clean_event_types(event_types)
        if description is not None:
            endpoint.description = description
        endpoint.save()
        record_action(
            ENDPOINT_SUBJECT, endpoint.pk, action="updated", status=_state(endpoint), actor=actor, reason=reason
        )
    return endpoint


def rotate_secret(endpoint_id: int, *, actor: Any = None, reason: str = "") -> str:
    """A new signing secret (shown once); deliveries from now on are signed with it."""
    secret = new_secret()
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint_id).update(secret=secret)
        record_action(ENDPOINT_SUBJECT, endpoint_id, action="secret_rotated", status="", actor=actor, reason=reason)
    return secret


def disable_endpoint(endpoint_id: int, *, reason: str = "", actor: Any = None, for_failures: bool = False) -> bool:
    """Stop sending to it (its pending deliveries wait); True if this call disabled it."""
    with transaction.atomic():
        changed = WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=True).update(
            enabled=False, disabled_at=timezone.now(), disabled_reason=reason, disabled_for_failures=for_failures
        )
        if changed:
            record_action(
                ENDPOINT_SUBJECT, endpoint_id, action="disabled", status="disabled", actor=actor, reason=reason
            )
    return bool(changed)


def enable_endpoint(endpoint_id: int, *, actor: Any = None, reason: str = "") -> bool:
    """Send to it again; its pending deliveries resume. True if this call enabled it."""
    with transaction.atomic():
        changed = WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=False).update(
            enabled=True,
            disabled_at=None,
            disabled_reason="",
            disabled_for_failures=False,
            failing_since=None,
            consecutive_failures=0,
        )
        if changed:
            record_action(ENDPOINT_SUBJECT, endpoint_id, action="enabled", status="enabled", actor=actor, reason=reason)
    return bool(changed)


def _state(endpoint: WebhookEndpoint) -> str:
    return "enabled" if endpoint.enabled else "disabled"


# --- dispatch ---------------------------------------------------------------------------------------


def matching_endpoints(event: OutboxEvent) -> list[int]:
    client_rule = Q(client__isnull=True) | Q(client_id=event.client_id) if event.client_id else Q(client__isnull=True)
    wanted = Q(event_types__contains=[event.type]) | Q(event_types__contains=[ALL_EVENTS])
    return list(WebhookEndpoint.objects.filter(client_rule, wanted, enabled=True).values_list("pk", flat=True))


def dispatch_events(event_pks: Iterable[int] | None = None, *, limit: int = 500) -> list[int]:
    """Turn undispatched events (these, or the oldest `limit`) into deliveries, in one
    transaction with their rows locked (SKIP LOCKED: a concurrent dispatcher takes others);
    returns the new deliveries' ids, for the caller to send (they are due now: the sweep sends
    them too, should the caller die first)."""
    with transaction.atomic():
        events = OutboxEvent.objects.filter(dispatched_at__isnull=True).order_by("id")
        if event_pks is not None:
            events = events.filter(pk__in=list(event_pks))
        locked = list(events.select_for_update(skip_locked=True)[:limit])
        if not locked:
            return []
        now = timezone.now()
        rows = [
            WebhookDelivery(event=event, endpoint_id=endpoint_id, next_attempt_at=now, created_at=now)
            for event in locked
            for endpoint_id in matching_endpoints(event)
        ]
        WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
        OutboxEvent.objects.filter(pk__in=[event.pk for event in locked]).update(dispatched_at=now)
        return list(
            WebhookDelivery.objects.filter(event__in=locked, status=DeliveryStatus.PENDING, attempts=0).values_list(
                "pk", flat=True
            )
        )


def any_endpoint_enabled() -> bool:
    return WebhookEndpoint.objects.filter(enabled=True).exists()


def events_waiting() -> bool:
    return OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()


def _enqueue_all(delivery_ids: list[int], countdown: float = 0) -> None:
    if _enqueue_send is None:
        return
    for delivery_id in delivery_ids:
        try:
            _enqueue_send(delivery_id, countdown)
        except Exception:  # noqa: BLE001 - the sweep sends it anyway; the commit is done
            logger.warning("could not enqueue webhook delivery %s; the sweep will send it", delivery_id)


# --- sending ------------------------------------------------------------------------------------------


def _claim_sql(one: bool) -> str:
    delivery = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    endpoint = connection.ops.quote_name(WebhookEndpoint._meta.db_table)
    return (
        f"UPDATE {delivery} SET claim = %s, claimed_until = %s, attempts = attempts + 1, last_attempt_at = %s "  # noqa: S608 (names)
        f"WHERE id = (SELECT d.id FROM {delivery} d JOIN {endpoint} e ON e.id = d.endpoint_id "
        "WHERE d.status = 'pending' AND e.enabled AND d.next_attempt_at <= %s "
        "AND (d.claimed_until IS NULL OR d.claimed_until < %s) "
        + ("AND d.id = %s " if one else "")
        + "ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED) RETURNING id"
    )


def claim(delivery_id: int | None = None) -> tuple[int, uuid.UUID] | None:
    """Claim one due delivery (this one, or the one due first): (its id, the claim token), or
    None when there is none free. Its own statement, committed at once: the lease is what holds
    it, not a lock kept during the HTTP call."""
    token = uuid.uuid4()
    now = timezone.now()
    lease = now + timedelta(seconds=settings.PGP_WEBHOOK_LEASE_SECONDS)
    params: list[Any] = [token, lease, now, now, now]
    if delivery_id is not None:
        params.append(delivery_id)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_claim_sql(delivery_id is not None), params)
        row = cursor.fetchone()
    return (int(row[0]), token) if row else None


def message_body(event: OutboxEvent) -> bytes:
    body = {
        "id": event.event_id,
        "type": event.type,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "subject": {"type": event.subject_type, "id": event.subject_id},
        "sequence": event.sequence,
        "data": event.payload,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signed_headers(secret: str, event_id: str, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers: webhook-id (the event's stable id: the same on every
    retry), webhook-timestamp (now, seconds) and webhook-signature (v1,<base64 HMAC-SHA256>)."""
    now = timezone.now()
    signature = Webhook(secret).sign(event_id, now, body.decode())
    return {"webhook-id": event_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}


def send(delivery_id: int, token: uuid.UUID) -> bool:
    """Send a claimed delivery once and record the outcome; True if delivered."""
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    body = message_body(delivery.event)
    headers = signed_headers(delivery.endpoint.secret, delivery.event.event_id, body)
    answer = http.post(delivery.endpoint.url, body, headers)
    return record_outcome(delivery, token, answer)


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling from the base,
    capped, with full jitter over its upper half (so retries of many deliveries spread out)."""
    ceiling = min(
        settings.PGP_WEBHOOK_RETRY_MAX_DELAY_SECONDS, settings.PGP_WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    )
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


def record_outcome(delivery: WebhookDelivery, token: uuid.UUID, answer: http.Answer) -> bool:
    now = timezone.now()
    retry_in = 0.0
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            attempted_at=now,
            status_code=answer.status_code,
            error=answer.error,
            response_excerpt=answer.excerpt[:1000],
            duration_ms=answer.duration_ms,
        )
        ours = WebhookDelivery.objects.filter(pk=delivery.pk, claim=token, status=DeliveryStatus.PENDING)
        common = {"claim": None, "claimed_until": None, "last_status_code": answer.status_code}
        if answer.ok:
            changed = ours.update(status=DeliveryStatus.DELIVERED, delivered_at=now, last_error="", **common)
            if changed and (delivery.endpoint.failing_since is not None or delivery.endpoint.consecutive_failures):
                WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(
                    failing_since=None, consecutive_failures=0
                )
            count_outcome("delivered")
            return bool(changed)
        count_outcome("failed")
        given_up = now >= delivery.created_at + timedelta(seconds=settings.PGP_WEBHOOK_RETRY_FOR_SECONDS)
        if given_up:
            changed = ours.update(status=DeliveryStatus.FAILED, last_error=answer.error, **common)
        else:
            delivery.refresh_from_db(fields=["attempts"])
            retry_in = retry_delay(delivery.attempts)
            changed = ours.update(next_attempt_at=now + timedelta(seconds=retry_in), last_error=answer.error, **common)
        if changed:
            _endpoint_failed(delivery.endpoint_id, now)
            if given_up:
                count_outcome("given_up")
                alert(
                    WEBHOOK_DELIVERY_FAILED,
                    Subject(DELIVERY_SUBJECT, delivery.pk),
                    delivery=delivery.pk,
                    event=delivery.event.event_id,
                    endpoint=delivery.endpoint_id,
                    last_error=answer.error,
                )
            elif retry_in <= 60:
                # A short wait: a countdown well under the broker's visibility timeout; longer
                # ones are the sweep's (it sends whatever is due).
                transaction.on_commit(lambda: _enqueue_all([delivery.pk], retry_in))
    return False


def _endpoint_failed(endpoint_id: int, now: Any) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(failing_since=now)
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(consecutive_failures=F("consecutive_failures") + 1)
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    failing_for = (now - endpoint.failing_since).total_seconds() if endpoint.failing_since else 0
    if (
        endpoint.enabled
        and failing_for >= settings.PGP_WEBHOOK_DISABLE_AFTER_SECONDS
        and endpoint.consecutive_failures >= settings.PGP_WEBHOOK_DISABLE_AFTER_FAILURES
    ):
        reason = f"every attempt failed for {int(failing_for)} s, {endpoint.consecutive_failures} in a row"
        if disable_endpoint(endpoint_id, reason=reason, for_failures=True):
            alert(
                WEBHOOK_ENDPOINT_DISABLED,
                Subject(ENDPOINT_SUBJECT, endpoint_id),
                endpoint=endpoint_id,
                url=endpoint.url,
                failures=endpoint.consecutive_failures,
            )


def send_one(delivery_id: int) -> bool | None:
    """Claim and send this delivery if it is due and free; None when it was not to be sent."""
    claimed = claim(delivery_id)
    if claimed is None:
        return None
    return send(*claimed)


def send_due(*, budget_seconds: float = 60, limit: int = 1000) -> int:
    """Send due deliveries one claim at a time (each lease covers one send) until none is due,
    `limit` were sent or the time budget is spent; returns how many were attempted."""
    deadline = timezone.now() + timedelta(seconds=budget_seconds)
    sent = 0
    while sent < limit and timezone.now() < deadline:
        claimed = claim()
        if claimed is None:
            break
        send(*claimed)
        sent += 1
    return sent


def resend(delivery_id: int, *, actor: Any) -> None:
    """An operator sends a delivery again now, whatever its status (delivered ones included):
    it goes back to pending, due now, with a fresh retry window."""
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        was = delivery.status
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            created_at=now,
            delivered_at=None,
            claim=None,
            claimed_until=None,
        )
        record_action(DELIVERY_SUBJECT, delivery_id, action="resend", status=was, actor=actor)
        transaction.on_commit(lambda: _enqueue_all([delivery_id]))


def count_outcome(outcome: str) -> None:
    """Add one to a delivery counter (an upsert: concurrent workers each count)."""
    table = connection.ops.quote_name(WebhookCounter._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (outcome, total) VALUES (%s, 1) "  # noqa: S608 (table name only)
            f"ON CONFLICT (outcome) DO UPDATE SET total = {table}.total + 1",
            [outcome],
        )


def delivery_counters() -> dict[str, int]:
    """Attempts by outcome, ever: delivered, failed (an attempt without a 2xx answer), given_up."""
    counts = dict.fromkeys(("delivered", "failed", "given_up"), 0)
    counts.update(WebhookCounter.objects.values_list("outcome", "total"))
    return counts


def outbox_lag_seconds() -> float:
    """Age of the oldest event not yet delivered everywhere it is wanted: the oldest event not
    yet dispatched, or the event of the oldest pending delivery to an enabled endpoint (0:
    nothing waits). Two index reads."""
    oldest = (
        OutboxEvent.objects.filter(dispatched_at__isnull=True)
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )
    pending = (
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, endpoint__enabled=True)
        .order_by("id")
        .values_list("event__created_at", flat=True)
        .first()
    )
    moments = [moment for moment in (oldest, pending) if moment is not None]
    return max(0.0, (timezone.now() - min(moments)).total_seconds()) if moments else 0.0


def prune_history(*, now: Any = None) -> tuple[int, int]:
    """Forget what is older than PGP_WEBHOOK_RETENTION_DAYS and finished: deliveries delivered or
    given up (their attempts with them), then events dispatched with no delivery left. A
    subject's latest event is kept, so its next event continues its sequence instead of starting
    again at 1. Returns (deliveries, events) deleted."""
    horizon = (now or timezone.now()) - timedelta(days=settings.PGP_WEBHOOK_RETENTION_DAYS)
    finished = WebhookDelivery.objects.filter(
        status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED], created_at__lt=horizon
    )
    WebhookAttempt.objects.filter(delivery__in=finished).delete()
    deliveries, _ = finished.delete()
    later = OutboxEvent.objects.filter(
        subject_type=OuterRef("subject_type"), subject_id=OuterRef("subject_id"), sequence__gt=OuterRef("sequence")
    )
    events, _ = (
        OutboxEvent.objects.filter(created_at__lt=horizon, dispatched_at__isnull=False)
        .filter(Exists(later))
        .exclude(Exists(WebhookDelivery.objects.filter(event=OuterRef("pk"))))
        .delete()
    )
    return deliveries, events
