"""Refused IPNs that may be genuine: the bodies kept for replay, and the bound on them.

NOWPayments documents its signed text four ways (integrations/nowpayments_signature.py). Should it
sign in a fifth, real payments would be refused with 401 and, after NOWPayments' retries, lost. So
when a signature matches no form, a body that looks like a real notification is kept whole, with
the signature sent, for PGP_UNVERIFIED_IPN_BODY_RETENTION_DAYS; once the canonical form is fixed,
`manage.py replay_ipn <event id>` re-verifies it and, if it now verifies, records it as if it had
just arrived.

Anyone can send such a body, so it must not become a way to fill the database:
* only a body that looks genuine is kept: at most PGP_UNVERIFIED_IPN_BODY_MAX_BYTES, a JSON object
  with an integer payment_id and a string payment_status, sent with a 128-hex-digit signature
  (the length of a hex HMAC-SHA512);
* at most PGP_UNVERIFIED_IPN_BODIES_PER_DAY are kept in any 24 hours and
  PGP_UNVERIFIED_IPN_BODIES_MAX in all; past either, the refusal keeps only its hash and size, as
  every other refusal does. The check and the insert run under one advisory lock, taken without
  waiting (a request that finds it taken keeps nothing), so concurrent requests cannot pass the
  bounds together and none waits on another;
* the daily pruning job (payments.prune_rejected_ipn_events) deletes kept bodies past their
  retention, and the oldest beyond the total bound.
Nothing the body says is stored as a fact: the refusal record names no payment, and the body is
read only by replay, which verifies it first.
"""

import logging
import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from pgp_project.operations.locks import try_advisory_xact_lock

from .models import PaymentEvent, UnverifiedIpnBody

logger = logging.getLogger(__name__)

KEEP_LOCK = "payments.unverified_ipn_bodies"
_HMAC_SHA512_HEX = re.compile(r"[0-9a-fA-F]{128}")
STATUS_MAX_LENGTH = 40  # the refusal record's reported_status column


def looks_genuine(raw_body: bytes, signature: str | None, payload: Any) -> bool:
    """Whether a body whose signature did not match has the size and shape of a notification."""
    if len(raw_body) > settings.PGP_UNVERIFIED_IPN_BODY_MAX_BYTES:
        return False
    if not signature or not _HMAC_SHA512_HEX.fullmatch(signature.strip()):
        return False
    if not isinstance(payload, dict):
        return False
    payment_id = payload.get("payment_id")
    if isinstance(payment_id, bool) or not isinstance(payment_id, int) or not 0 < payment_id < 2**63:
        return False
    status = payload.get("payment_status")
    return isinstance(status, str) and 0 < len(status) <= STATUS_MAX_LENGTH


def keep_if_genuine_looking(event: PaymentEvent, raw_body: bytes, signature: str | None, payload: Any) -> bool:
    """Keep the body of this signature refusal if it looks genuine and the bounds allow; True when
    kept. Never raises a database error: a refusal stays a 401 whatever happens here."""
    if not looks_genuine(raw_body, signature, payload):
        return False
    assert signature is not None  # looks_genuine checked it
    try:
        with transaction.atomic():
            if not try_advisory_xact_lock(KEEP_LOCK):
                return False
            if _bound_reached():
                return False
            UnverifiedIpnBody.objects.create(
                event=event, body=raw_body.decode("utf-8"), signature=signature.strip().lower()
            )
    except (DatabaseError, UnicodeDecodeError) as exc:
        # Best effort, never a traceback: a busy database (a lock wait past its timeout) only means
        # this one body is not kept; its refusal record is.
        logger.warning("could not keep the body of refused IPN event %s: %s", event.pk, exc)
        return False
    logger.warning("kept the body of refused IPN event %s for replay", event.pk)
    return True


def _bound_reached() -> bool:
    kept = UnverifiedIpnBody.objects
    if kept.count() >= settings.PGP_UNVERIFIED_IPN_BODIES_MAX:
        return True
    day_ago = timezone.now() - timedelta(days=1)
    return kept.filter(kept_at__gte=day_ago).count() >= settings.PGP_UNVERIFIED_IPN_BODIES_PER_DAY


def prune_unverified_bodies(retention_days: int | None = None) -> int:
    """Delete kept bodies past their retention, and the oldest beyond the total bound; return how
    many went. (Their refusal records stay until the refusal retention prunes them.)"""
    days = settings.PGP_UNVERIFIED_IPN_BODY_RETENTION_DAYS if retention_days is None else retention_days
    deleted = UnverifiedIpnBody.objects.filter(kept_at__lt=timezone.now() - timedelta(days=days)).delete()[0]
    newest = UnverifiedIpnBody.objects.order_by("-kept_at", "-id").values_list("id", flat=True)
    excess = list(newest[settings.PGP_UNVERIFIED_IPN_BODIES_MAX :])
    if excess:
        deleted += UnverifiedIpnBody.objects.filter(id__in=excess).delete()[0]
    return deleted
