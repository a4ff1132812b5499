"""NOWPayments IPN intake: verify, validate, record and advance a payment, route it when finished.

Answers (reliability rule 7): 401 bad signature, 400/408/411/413/422 bad input (recorded, nothing
else changes), 200 once the payment is durably recorded (including duplicates, stale statuses and
payments held for review), 503 when the database fails or the answer budget runs out
(payments/ipn_deadline.py: NOWPayments gives us 3 s) so that NOWPayments retries.

A genuine signed notification is never refused for what NOWPayments itself sends (its documented
webhook example is the reference):
- `"order_id": null` (re-deposits, wrong-asset deposits): recorded; held "no order_id" when it
  finishes, unless it is a repeated deposit whose parent names the order (routing.py);
- amounts with more decimals than the column holds: rounded DOWN to its places
  (ipn_payload.RoundedDownDecimalField), the body kept as received;
- a status outside the nine documented ones: recorded as an `unknown_status` event with the status
  as sent; it moves no payment's status and routes nothing. A payment first heard of that way is
  created `waiting` (the start of the machine, from which any documented status moves it on) and
  held with the reason, so that an operator sees it.

Before the signature is checked, a body is refused (400) when it was not read whole (broken
framing, cut short; 408 when it stopped arriving), is not UTF-8, nests deeper than MAX_JSON_DEPTH,
is not JSON, or has a `__proto__` key. NOWPayments' JavaScript would sign a body that is not UTF-8
or has a `__proto__` key, but it signs a text other than the one we read and store
(integrations/nowpayments_signature.py), so those are refused on purpose, as malformed.

A refused request is recorded by its SHA-256, size, reason and time, never its body: anyone can
send one, and they must not be able to fill the database (a retention job prunes them). The one
exception is bounded: a few bodies refused for their signature alone that look genuine are kept
aside for a week, for replay (unverified_ipns.py).
"""

import enum
import hashlib
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction

from integrations.json_depth import nesting_exceeds
from integrations.nowpayments_signature import PROTOTYPE_KEY, is_valid_signature, reject_non_json_constant

from .events import payment_event_types, payment_payload, record_payment_events
from .first_notification import write_first_notification
from .ipn_deadline import BudgetExceeded, answer_deadline, within_answer_budget
from .ipn_event_write import insert_counted_event
from .ipn_payload import (
    DOCUMENTED_STATUSES,
    REPORTED_STATUS_MAX_LENGTH,
    clean_ipn_payload,
    escape_unstorable,
    rounded_amounts,
)
from .late_payments import (
    announce_partial_payment,
    handle_refund_of_routed_payment,
    hold_partial_payment,
    hold_topped_up_partial_payment,
    is_late_finish,
    is_refund_after_finish,
    mark_partial_payment_held,
    route_late_payment,
)
from .models import Client, IpnOutcome, Payment, PaymentEvent, PaymentStatus, RoutingStatus
from .routing import RoutingPlan, apply_routing, link_parent, log_hold, plan_routing, route_finished_payment
from .unverified_ipns import keep_if_genuine_looking

logger = logging.getLogger(__name__)

# A NOWPayments notification nests 2 levels at most (the body, its `fee` object). Deeper bodies are
# refused before they are parsed (integrations/json_depth.py): the parser, and everything that walks
# what it returns, recurses once per level.
MAX_JSON_DEPTH = 8

# Forward-only: a status may replace another only when its rank is higher. Final statuses
# (rank 9) never change again; a late IPN for them is recorded as stale.
STATUS_RANK = {
    PaymentStatus.WAITING: 0,
    PaymentStatus.CONFIRMING: 1,
    PaymentStatus.CONFIRMED: 2,
    PaymentStatus.SENDING: 3,
    PaymentStatus.PARTIALLY_PAID: 4,
    PaymentStatus.FINISHED: 9,
    PaymentStatus.FAILED: 9,
    PaymentStatus.EXPIRED: 9,
    PaymentStatus.REFUNDED: 9,
}
PAYMENT_FIELDS = (
    "order_id",
    "order_description",
    "price_amount",
    "price_currency",
    "pay_amount",
    "pay_currency",
    "actually_paid",
    "outcome_amount",
    "outcome_currency",
)


@dataclass(frozen=True)
class IpnResponse:
    http_status: int
    body: dict[str, Any] = field(default_factory=dict)


class UnreadableBody(enum.Enum):
    """Why a body could not be read whole: (HTTP status, error code, reason recorded)."""

    TIMED_OUT = (408, "body_timeout", "the body stopped arriving before it was complete")
    INCOMPLETE = (400, "body_incomplete", "the connection ended before the body was complete")
    BROKEN_FRAMING = (400, "body_unreadable", "the body's chunked framing is broken")


@dataclass(frozen=True)
class IncomingIpn:
    raw_body: bytes
    signature: str | None
    remote_addr: str | None
    too_large: bool = False
    # Chunked, on a server that does not end the input for us: its length cannot be known safely.
    length_unknown: bool = False
    unreadable: UnreadableBody | None = None


def receive_ipn(ipn: IncomingIpn) -> IpnResponse:
    deadline = answer_deadline()
    refused = _refuse_unreadable(ipn)
    if refused is not None:
        return refused
    if not ipn.signature:
        _record_rejection(ipn, IpnOutcome.REJECTED_SIGNATURE, "missing x-nowpayments-sig header")
        return IpnResponse(401, {"error": "missing_signature"})
    parsed, refused = _parse(ipn)
    if refused is not None:
        return refused
    # The signature is checked on the raw bytes below; from here on every string is storable.
    payload = escape_unstorable(parsed)
    if not is_valid_signature(ipn.raw_body, ipn.signature, settings.NOWPAYMENTS_IPN_SECRET):
        reason = f"signature does not match{_unverified_claim(payload)}"
        event = _record_rejection(ipn, IpnOutcome.REJECTED_SIGNATURE, reason)
        if event is not None:
            # Kept (bounded) for replay, should NOWPayments sign in a form we do not reproduce.
            keep_if_genuine_looking(event, ipn.raw_body, ipn.signature, payload)
        return IpnResponse(401, {"error": "invalid_signature"})
    if not isinstance(payload, dict):
        _record_rejection(ipn, IpnOutcome.REJECTED_PAYLOAD, "body is not a JSON object", signed=True)
        return IpnResponse(422, {"error": "invalid_payload", "fields": {"__all__": ["expected a JSON object"]}})
    data, errors = clean_ipn_payload(payload)
    if errors:
        _record_rejection(ipn, IpnOutcome.REJECTED_PAYLOAD, json.dumps(errors), payload=payload, signed=True)
        return IpnResponse(422, {"error": "invalid_payload", "fields": errors})
    return _record_within_budget(ipn, data, payload, deadline)


def _record_within_budget(ipn: IncomingIpn, data: dict[str, Any], payload: Any, deadline: float) -> IpnResponse:
    """Record a validly signed, valid notification, or answer 503 (not recorded: its transaction
    rolled back) so that NOWPayments retries: never 200 for what was not recorded."""
    try:
        _limit_lock_wait()
        with within_answer_budget(deadline):
            if data["payment_status"] not in DOCUMENTED_STATUSES:
                return _record_unknown_status(ipn, data, payload)
            return _apply_ipn(ipn, data, payload)
    except (OperationalError, BudgetExceeded) as exc:
        # A lock wait, a cancel at the answer budget or a lost connection: an expected condition
        # with a retry coming, worth one line, not a traceback.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.error(  # noqa: TRY400 - expected and retried: no traceback
            "IPN for payment %s could not be recorded in time, answered 503 for a retry: %s",
            data["payment_id"],
            first_line,
        )
    except DatabaseError:
        logger.exception("IPN for payment %s could not be recorded", data["payment_id"])
    return IpnResponse(503, {"error": "temporarily_unavailable"})


def _refuse_unreadable(ipn: IncomingIpn) -> IpnResponse | None:
    """The answer to a body that was not read whole (too large, unbounded, broken or cut short),
    else None."""
    if ipn.too_large:
        _record_rejection(ipn, IpnOutcome.REJECTED_TOO_LARGE, "body exceeds the size limit")
        return IpnResponse(413, {"error": "body_too_large", "limit_bytes": settings.IPN_MAX_BODY_BYTES})
    if ipn.length_unknown:
        _record_rejection(ipn, IpnOutcome.REJECTED_PAYLOAD, "chunked body this server cannot bound")
        return IpnResponse(411, {"error": "length_required"})
    if ipn.unreadable is not None:
        status, error, reason = ipn.unreadable.value
        _record_rejection(ipn, IpnOutcome.REJECTED_PAYLOAD, reason)
        return IpnResponse(status, {"error": error})
    return None


def _parse(ipn: IncomingIpn) -> tuple[Any, IpnResponse | None]:
    """(the parsed body, None), or (None, the 400 that refuses it). The nesting is measured before
    anything parses the body, since the parser recurses once per level. The encoding and the
    `__proto__` key are refused before the signature is checked: NOWPayments' JavaScript would sign
    such bodies as a text other than the one we read (integrations/nowpayments_signature.py)."""
    try:
        text = ipn.raw_body.decode("utf-8")  # strict: no replacement character, no surrogate
    except UnicodeDecodeError:
        return None, _refuse_malformed(ipn, "invalid_encoding", "body is not valid UTF-8 (RFC 8259)")
    if nesting_exceeds(ipn.raw_body, MAX_JSON_DEPTH):
        reason = f"body nests objects or arrays deeper than {MAX_JSON_DEPTH} levels"
        return None, _refuse_malformed(ipn, "too_deeply_nested", reason)
    try:
        parsed = json.loads(text, parse_float=Decimal, parse_constant=reject_non_json_constant)
    except (ValueError, ArithmeticError):
        # ArithmeticError: a number whose exponent no Decimal can hold (1e99999999999999999999).
        return None, _refuse_malformed(ipn, "malformed_json", "body is not valid JSON")
    if _holds_prototype_key(ipn.raw_body, parsed):
        return None, _refuse_malformed(ipn, "prototype_key", f"body holds a {PROTOTYPE_KEY} key")
    return parsed, None


def _refuse_malformed(ipn: IncomingIpn, error: str, reason: str) -> IpnResponse:
    _record_rejection(ipn, IpnOutcome.REJECTED_PAYLOAD, reason)
    return IpnResponse(400, {"error": error, "detail": reason})


_PROTOTYPE_KEY_BYTES = PROTOTYPE_KEY.encode()


def _holds_prototype_key(raw_body: bytes, parsed: Any) -> bool:
    """Whether any object in the body, at any depth, has the key `__proto__`."""
    if _PROTOTYPE_KEY_BYTES not in raw_body and b"\\u" not in raw_body:
        return False  # the key can only be spelt literally or with an escape: a real IPN stops here
    pending = [parsed]  # a walk without recursion (the depth is bounded already, this is cheap)
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            if PROTOTYPE_KEY in value:
                return True
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def _payment_fields(data: dict[str, Any]) -> dict[str, Any]:
    fields = {name: data.get(name) for name in PAYMENT_FIELDS}
    for text_field in ("order_id", "order_description", "pay_currency", "outcome_currency"):
        fields[text_field] = fields[text_field] or ""
    if data.get("parent_payment_id") is not None:
        fields["parent_provider_payment_id"] = data["parent_payment_id"]
    return fields


def _rounding_note(payload: dict[str, Any], data: dict[str, Any]) -> str:
    rounded = rounded_amounts(payload, data)
    return f"; rounded down to the places stored: {', '.join(rounded)}" if rounded else ""


def _apply_ipn(ipn: IncomingIpn, data: dict[str, Any], payload: dict[str, Any]) -> IpnResponse:
    new_status = PaymentStatus(data["payment_status"])
    fields = _payment_fields(data)
    # Most notifications are a payment's first: decide what it means before writing anything, then
    # write it all at once. Only when the payment exists already, the locked path.
    payment = Payment(
        provider_payment_id=data["payment_id"], status=new_status, raw_payload=_json_safe(payload), **fields
    )
    if payment.is_repeated_deposit:
        link_parent(payment)  # one more query, for repeated deposits only
    note, plan = _plan_first_notification(payment)
    rounding = _rounding_note(payload, data)
    event = _event(ipn, payment, new_status, IpnOutcome.APPLIED, f"first notification{note}{rounding}")
    if plan.opens_instant_payout:
        written = _write_first_notification_opening_its_payout(payment, plan, event)
    else:
        # Its outbox event (received or held, if either) in the same one statement: one more INSERT.
        types = payment_event_types(payment, "", RoutingStatus.NOT_FINISHED)
        outbox = (types[0], payment_payload(payment)) if types else None
        written = write_first_notification(payment, plan.accumulation, event, outbox)  # its own transaction
    if written:
        _announce_first_notification(payment)
        return _answer(IpnOutcome.APPLIED, payment)
    return _apply_to_stored_payment(
        ipn, data["payment_id"], fields, new_status, payload, payment.client, rounding=rounding
    )


def _write_first_notification_opening_its_payout(payment: Payment, plan: RoutingPlan, event: PaymentEvent) -> bool:
    """The instant payout is opened through the ORM, in the payment's transaction."""
    with transaction.atomic():
        if not write_first_notification(payment, None, event):
            return False
        stored = _column_values(payment)
        apply_routing(payment, plan)
        changed = [name for name, value in _column_values(payment).items() if stored[name] != value]
        if changed:
            payment.save(update_fields=[*changed, "updated_at"])
        record_payment_events(payment, "", RoutingStatus.NOT_FINISHED)
    return True


def _apply_to_stored_payment(
    ipn: IncomingIpn,
    provider_payment_id: int,
    fields: dict[str, Any],
    new_status: PaymentStatus,
    payload: Any,
    read_client: Client | None,
    *,
    rounding: str = "",
) -> IpnResponse:
    """The locked path: the payment exists. (Its creation here is only a fallback: a first
    notification that waited on a concurrent one which rolled back has written itself.)
    `read_client`: the client of this IPN's order id as planning its first notification read it
    a moment ago (None: not read, or not found), so routing does not read it twice. It was read
    before the payment's lock, so it may be older by that wait (at most IPN_LOCK_TIMEOUT_MS); the
    client row was never locked, so a change committed meanwhile could be missed before too."""
    with transaction.atomic():
        payment, created = Payment.objects.select_for_update().get_or_create(
            provider_payment_id=provider_payment_id,
            defaults={**fields, "status": new_status, "raw_payload": _json_safe(payload)},
        )
        stored = _column_values(payment)
        was = payment.status
        was_routing = RoutingStatus.NOT_FINISHED if created else payment.routing_status
        outcome, reason = _outcome(created, was, new_status)
        if outcome == IpnOutcome.APPLIED and not created:
            if payment.parent_provider_payment_id is not None:
                # Once a repeated deposit, always the same one: its link is never undone or moved.
                fields = {name: value for name, value in fields.items() if name != "parent_provider_payment_id"}
            for name, value in fields.items():
                setattr(payment, name, value)
            payment.status = new_status
            payment.raw_payload = _json_safe(payload)
        if outcome == IpnOutcome.APPLIED:
            if payment.is_repeated_deposit and payment.parent_id is None:
                link_parent(payment)  # its parent may have been recorded since
            reason += _act_on(payment, was if not created else "", new_status, read_client)
            reason += rounding
            changed = [name for name, value in _column_values(payment).items() if stored[name] != value]
            if changed:
                payment.save(update_fields=[*changed, "updated_at"])
            record_payment_events(payment, "" if created else was, was_routing)
        insert_counted_event(_event(ipn, payment, new_status, outcome, reason))
    return _answer(outcome, payment)


def _plan_first_notification(payment: Payment) -> tuple[str, RoutingPlan]:
    """What a first notification means for the money, decided on the payment before it is in the
    database, writing and logging nothing (the write may find the payment exists): a note for the
    event's reason, and what routing must write besides the payment."""
    if payment.status == PaymentStatus.FINISHED:
        plan = plan_routing(payment)
    elif payment.status == PaymentStatus.PARTIALLY_PAID:
        mark_partial_payment_held(payment)
        plan = RoutingPlan()
    else:
        return "", RoutingPlan()
    return (f"; held for review: {payment.hold_reason}" if payment.routing_status == RoutingStatus.HELD else ""), plan


def _announce_first_notification(payment: Payment) -> None:
    """The log lines and alerts of a first notification, once it is written."""
    if payment.status == PaymentStatus.PARTIALLY_PAID:
        announce_partial_payment(payment)
    elif payment.routing_status == RoutingStatus.HELD:
        log_hold(payment)


def _event(
    ipn: IncomingIpn, payment: Payment, reported_status: PaymentStatus, outcome: IpnOutcome, reason: str
) -> PaymentEvent:
    return PaymentEvent(
        payment=payment,
        provider_payment_id=payment.provider_payment_id,
        reported_status=reported_status,
        outcome=outcome,
        reason=reason,
        signature_valid=True,
        body=_body_text(ipn.raw_body),
        body_sha256=hashlib.sha256(ipn.raw_body).hexdigest(),
        body_size=len(ipn.raw_body),
        remote_addr=ipn.remote_addr,
    )


def _answer(outcome: IpnOutcome, payment: Payment) -> IpnResponse:
    return IpnResponse(
        200,
        {
            "result": str(outcome),
            "payment_id": payment.provider_payment_id,
            "status": payment.status,
            "routing": payment.routing_status,
        },
    )


_PAYMENT_COLUMNS = [field for field in Payment._meta.concrete_fields if not field.primary_key]


def _column_values(payment: Payment) -> dict[str, Any]:
    return {field.attname: getattr(payment, field.attname) for field in _PAYMENT_COLUMNS}


def _outcome(created: bool, stored: str, new: PaymentStatus) -> tuple[IpnOutcome, str]:
    """Statuses only move forward, except for money that comes late or goes back (see
    late_payments.py)."""
    if created:
        return IpnOutcome.APPLIED, "first notification"
    if new == stored:
        return IpnOutcome.DUPLICATE, f"already {stored}"
    if is_late_finish(stored, new):
        return IpnOutcome.APPLIED, f"{stored} -> {new}: a late payment"
    if is_refund_after_finish(stored, new):
        return IpnOutcome.APPLIED, f"{stored} -> {new}: refunded after it finished"
    if STATUS_RANK[new] <= STATUS_RANK[PaymentStatus(stored)]:
        return IpnOutcome.STALE, f"stored status {stored} is not older than {new}"
    return IpnOutcome.APPLIED, f"{stored} -> {new}"


def _act_on(payment: Payment, was: str, new: PaymentStatus, read_client: Client | None) -> str:
    """What an applied status means for the money; a note for the event's reason."""
    if new == PaymentStatus.FINISHED and payment.accepted_price_amount is not None:
        # Routed already, for the part an operator accepted: never a second row or payout.
        return f"; {hold_topped_up_partial_payment(payment)}"
    if new == PaymentStatus.FINISHED:
        if is_late_finish(was, new):
            route_late_payment(payment, was, read_client=read_client)
        else:
            route_finished_payment(payment, read_client=read_client)
        return f"; held for review: {payment.hold_reason}" if payment.routing_status == RoutingStatus.HELD else ""
    if new == PaymentStatus.PARTIALLY_PAID and payment.routing_status != RoutingStatus.ROUTED:
        hold_partial_payment(payment)
        return f"; held for review: {payment.hold_reason}"
    if new == PaymentStatus.REFUNDED and payment.routing_status == RoutingStatus.ROUTED:
        # After it finished, or after an operator accepted part of it: its value is being paid.
        return f"; {handle_refund_of_routed_payment(payment)}"
    return ""


def _record_unknown_status(ipn: IncomingIpn, data: dict[str, Any], payload: dict[str, Any]) -> IpnResponse:
    """A signed notification whose status NOWPayments does not document (its help centre names a
    custom `cancelled` an account may set on a partially paid payment; new ones may come). What it
    means for the money is unknown, so it moves nothing: the payment keeps its status and routing,
    and the event keeps the status as sent. A payment not yet recorded is created `waiting` and
    held with the reason, so that the money it may stand for is in the operators' queue."""
    status = str(data["payment_status"])
    reason = (
        f"status {status!r} is not one NOWPayments documents: recorded, nothing moved{_rounding_note(payload, data)}"
    )
    fields = _payment_fields(data)
    with transaction.atomic():
        payment, created = Payment.objects.select_for_update().get_or_create(
            provider_payment_id=data["payment_id"],
            defaults={
                **fields,
                "status": PaymentStatus.WAITING,
                "routing_status": RoutingStatus.HELD,
                "hold_reason": f"first heard of with status {status!r}, which NOWPayments does not document; "
                "check the payment in NOWPayments' dashboard",
                "raw_payload": _json_safe(payload),
            },
        )
        if created and payment.is_repeated_deposit:
            link_parent(payment)
            if payment.parent_id is not None:
                payment.save(update_fields=["parent", "updated_at"])
        if created:
            record_payment_events(payment, "", RoutingStatus.NOT_FINISHED)
        event = _event(ipn, payment, PaymentStatus.WAITING, IpnOutcome.UNKNOWN_STATUS, reason)
        event.reported_status = status[:REPORTED_STATUS_MAX_LENGTH]
        insert_counted_event(event)
    logger.warning(
        "IPN with an undocumented status: provider_payment_id=%s status=%r (%s)",
        payment.provider_payment_id,
        status,
        "recorded and held" if created else f"payment stays {payment.status}",
    )
    return _answer(IpnOutcome.UNKNOWN_STATUS, payment)


def _limit_lock_wait() -> None:
    """IPN_LOCK_TIMEOUT_MS as the session's lock_timeout, set once per database connection (a
    web thread keeps its connection: CONN_MAX_AGE), before the intake's transaction. Workers keep
    their own PGP_LOCK_TIMEOUT_MS: payouts/locking.py sets it for each of their transactions,
    which overrides the session's, here too."""
    timeout = f"{int(settings.IPN_LOCK_TIMEOUT_MS)}ms"
    if connection.in_atomic_block:
        # Inside a transaction the caller opened (a test's): for that transaction only, since
        # its rollback would undo a session-wide SET behind our back.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = %s", [timeout])
        return
    connection.ensure_connection()
    # Keyed by the driver's connection object: a reconnect (CONN_MAX_AGE, a failed health check)
    # gets a new one, and so its own SET.
    if getattr(connection, "pgp_session_lock_timeout", None) == (connection.connection, timeout):
        return
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = %s", [timeout])  # autocommit: no rollback can undo it
    setattr(connection, "pgp_session_lock_timeout", (connection.connection, timeout))  # noqa: B010


def _record_rejection(
    ipn: IncomingIpn,
    outcome: IpnOutcome,
    reason: str,
    *,
    payload: Any = None,
    signed: bool = False,
) -> PaymentEvent | None:
    """Keep a trace of a refused IPN for operators: its hash, size, reason and time; and only when
    it is signed (it came from NOWPayments, so it is bounded and worth reading) its body, payment
    id and status. Anyone can send an unsigned body: what it says is no fact, and is not stored as
    one (a bounded few are kept aside for replay: unverified_ipns.py). A failure to record must not
    turn a 4xx into a 5xx (a retry would be refused again): it returns None."""
    payment_id, status = _claimed_payment(payload) if signed else (None, None)
    event = None
    try:
        event = insert_counted_event(  # with its count, in one statement
            PaymentEvent(
                provider_payment_id=payment_id,
                reported_status=status or "",
                outcome=outcome,
                reason=reason,
                signature_valid=signed,
                body=_body_text(ipn.raw_body) if signed else "",
                body_sha256=hashlib.sha256(ipn.raw_body).hexdigest(),
                body_size=len(ipn.raw_body),
                remote_addr=ipn.remote_addr,
            )
        )
    except DatabaseError:
        logger.exception("could not record a rejected IPN (%s)", outcome)
    logger.warning("IPN rejected: %s (%s)", outcome, reason)
    return event


def _claimed_payment(payload: Any) -> tuple[int | None, str | None]:
    """(payment id, status) as the body states them, each None unless it is one we could hold: an
    id a bigint holds, a status (cut to its column) that is a string."""
    if not isinstance(payload, dict):
        return None, None
    payment_id = payload.get("payment_id")
    if isinstance(payment_id, bool) or not isinstance(payment_id, int) or not 0 < payment_id < 2**63:
        payment_id = None
    status = payload.get("payment_status")
    return payment_id, status[:40] if isinstance(status, str) else None


def _unverified_claim(payload: Any) -> str:
    """What a body whose signature does not match says it is, for the refusal's reason, labelled as
    a claim; only the id and a known status, so that no sender's free text is kept."""
    payment_id, status = _claimed_payment(payload)
    claims = [f"payment_id {payment_id}"] if payment_id is not None else []
    if status in PaymentStatus.values:
        claims.append(f"payment_status {status}")
    return f"; unverified claim: {', '.join(claims)}" if claims else ""


def _body_text(raw_body: bytes) -> str:
    # PostgreSQL text cannot hold NUL; keep everything else as received.
    return raw_body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _json_safe(payload: Any) -> Any:
    """The payload with amounts as strings (JSON amounts are strings in our storage)."""
    return json.loads(json.dumps(payload, default=str))
