"""Validation of a NOWPayments IPN body: types, required fields, sane amounts.

Django's form fields do the field work (clear per-field errors, Decimal parsing); the strict
fields refuse JSON types they would otherwise coerce (true -> "True", {} -> "{}"). They are used
without a form: a form deep-copies every field for each request, which cost the IPN path more
than its validation, on every IPN. The fields are stateless, so one set serves every request.
"""

import re
from decimal import ROUND_DOWN, Context, Decimal
from typing import Any

from django import forms

from .models import PaymentStatus

MAX_PRICE_USD = Decimal("1000000")  # no single channel payment comes near this
MAX_COIN_AMOUNT = Decimal("1000000000000")
ORDER_ID_PATTERN = re.compile(r"^PGP-(?P<user_id>\d{1,19})\|(?P<client_external_id>[^\s|]{1,64})$")


class StrictCharField(forms.CharField):
    def to_python(self, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise forms.ValidationError("must be a string", code="type")
        return super().to_python(value)


class StrictDecimalField(forms.DecimalField):
    """A JSON number or numeric string; never a bool, object or array."""

    # django-stubs types DecimalField.to_python as its base IntegerField's.
    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]
        if isinstance(value, (bool, dict, list)):
            raise forms.ValidationError("must be a number", code="type")
        return super().to_python(value)


class StrictIntegerField(forms.IntegerField):
    def to_python(self, value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, (int, str, type(None))):
            raise forms.ValidationError("must be an integer", code="type")
        return super().to_python(value)


class RoundedDownDecimalField(StrictDecimalField):
    """An amount rounded DOWN to the places its column holds, never refused for having more.

    NOWPayments sends amounts as JavaScript numbers, unrounded (its documented webhook example
    carries `0.09853637216235617`), so a genuine notification may hold more decimals than we store.
    Refusing it would lose a real payment; rounding it up would credit more than was received. So
    the amount is cut to the column's places (ROUND_DOWN, towards zero), and the body is kept as
    received in the payment's raw_payload and its event. The cut is at most one unit of the last
    place kept: a cent of an invoice, 10^-18 of a coin."""

    # Enough digits for any amount the range check then accepts (at most 18 before the point).
    _CONTEXT = Context(prec=60)

    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]
        number = super().to_python(value)
        places = self.decimal_places
        if number is None or places is None or not number.is_finite():
            return number
        exponent = number.as_tuple().exponent
        # An absurdly large number is left whole: the range check refuses it, with its message.
        if isinstance(exponent, int) and exponent < -places and number.adjusted() < 40:
            return number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN, context=self._CONTEXT)
        return number


def _coin_amount(required: bool = False) -> StrictDecimalField:
    return RoundedDownDecimalField(
        required=required, min_value=0, max_value=MAX_COIN_AMOUNT, max_digits=36, decimal_places=18
    )


# The statuses NOWPayments documents (its API docs' payment status list); any other is recorded,
# never refused, and moves nothing (payments/intake.py).
DOCUMENTED_STATUSES = frozenset(PaymentStatus.values)
# The column an IPN's reported status is kept in (PaymentEvent.reported_status).
REPORTED_STATUS_MAX_LENGTH = 40

IPN_FIELDS: dict[str, forms.Field] = {
    "payment_id": StrictIntegerField(min_value=1, max_value=2**63 - 1),
    # Any string: a status outside the documented nine is recorded and held, not refused.
    "payment_status": StrictCharField(),
    # NOWPayments sends null for a payment created without one: re-deposits and wrong-asset
    # deposits arrive as payments of their own, its own webhook example has `"order_id": null`.
    "order_id": StrictCharField(required=False, max_length=200),
    # A repeated deposit to a payment's address is a new payment naming its parent.
    "parent_payment_id": StrictIntegerField(required=False, min_value=1, max_value=2**63 - 1),
    "order_description": StrictCharField(required=False, max_length=2000),
    "price_amount": RoundedDownDecimalField(min_value=0, max_value=MAX_PRICE_USD, max_digits=14, decimal_places=2),
    "price_currency": StrictCharField(max_length=20),
    "pay_amount": _coin_amount(),
    "pay_currency": StrictCharField(required=False, max_length=20),
    "actually_paid": _coin_amount(),
    "outcome_amount": _coin_amount(),
    "outcome_currency": StrictCharField(required=False, max_length=20),
}


def clean_ipn_payload(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(the cleaned fields, the errors by field name): valid when there are no errors. Unknown
    keys are ignored, as NOWPayments adds fields over time. A null or missing order_id is ""
    (the payment is held at routing: "no order_id"); amounts are rounded down to their column's
    places (RoundedDownDecimalField)."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, field in IPN_FIELDS.items():
        try:
            cleaned[name] = field.clean(payload.get(name))
        except forms.ValidationError as error:
            errors[name] = list(error.messages)
    if cleaned.get("order_id") is None and "order_id" in cleaned:
        cleaned["order_id"] = ""
    if cleaned.get("payment_status") == PaymentStatus.FINISHED:
        if not cleaned.get("outcome_amount"):
            errors.setdefault("outcome_amount", []).append("a finished payment needs an outcome_amount above 0")
        if not cleaned.get("outcome_currency"):
            errors.setdefault("outcome_currency", []).append("a finished payment needs an outcome_currency")
    return cleaned, errors


def rounded_amounts(payload: dict[str, Any], cleaned: dict[str, Any]) -> list[str]:
    """What rounding changed, for the event's reason: `price_amount 19.999 -> 19.99`."""
    notes = []
    for name, field in IPN_FIELDS.items():
        if isinstance(field, RoundedDownDecimalField) and cleaned.get(name) is not None:
            raw = payload.get(name)
            if isinstance(raw, (int, Decimal, str)) and not isinstance(raw, bool) and Decimal(raw) != cleaned[name]:
                notes.append(f"{name} {raw} -> {cleaned[name]}")
    return notes


# PostgreSQL text and jsonb refuse NUL, and UTF-8 has no lone surrogates (JSON's "\ud800" is one).
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def escape_unstorable(value: Any) -> Any:
    """The parsed body with every character PostgreSQL cannot store written as its JSON escape
    (`\\u0000`, `\\ud800`), in keys and strings at any depth. A signed body is then always
    storable: a field that matters and holds such a character no longer matches what it must
    (an order id, a currency), so the payment is held for review instead of failing forever."""
    if isinstance(value, str):
        return _UNSTORABLE_CHARACTER.sub(lambda found: f"\\u{ord(found.group()):04x}", value)
    if isinstance(value, dict):
        return {escape_unstorable(key): escape_unstorable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape_unstorable(item) for item in value]
    return value


def parse_order_id(order_id: str) -> tuple[int, str] | None:
    """(user_id, client external id) from `PGP-{user_id}|{client_external_id}`, else None."""
    match = ORDER_ID_PATTERN.match(order_id)
    if match is None or int(match["user_id"]) >= 2**63:
        return None  # a user id no bigint holds would fail the write forever: held instead
    return int(match["user_id"]), match["client_external_id"]
