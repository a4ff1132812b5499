"""NOWPayments' answer deadline, checked when settings load.

NOWPayments counts an IPN not answered within 3,000 ms as failed (its help centre, "IPN and how to
set up": "The endpoint shall respond within 3000 ms") and sends it again later. A lock wait or an
answer budget at or above that would let us record a payment after NOWPayments stopped listening,
and keep a web thread for nothing: settings refuse to load.
"""

from django.core.exceptions import ImproperlyConfigured

NOWPAYMENTS_ANSWER_DEADLINE_MS = 3000


def check_ipn_answer_budget(lock_timeout_ms: int, answer_budget_ms: int) -> None:
    if not 0 < answer_budget_ms < NOWPAYMENTS_ANSWER_DEADLINE_MS:
        raise ImproperlyConfigured(
            f"IPN_ANSWER_BUDGET_MS={answer_budget_ms}: it must be above 0 and under NOWPayments' "
            f"{NOWPAYMENTS_ANSWER_DEADLINE_MS} ms, with room for the network"
        )
    if not 0 < lock_timeout_ms < NOWPAYMENTS_ANSWER_DEADLINE_MS:
        raise ImproperlyConfigured(
            f"IPN_LOCK_TIMEOUT_MS={lock_timeout_ms}: it must be above 0 and under NOWPayments' "
            f"{NOWPAYMENTS_ANSWER_DEADLINE_MS} ms"
        )
    if lock_timeout_ms > answer_budget_ms:
        raise ImproperlyConfigured(
            f"IPN_LOCK_TIMEOUT_MS={lock_timeout_ms} exceeds IPN_ANSWER_BUDGET_MS={answer_budget_ms}: "
            "a lock wait could never end on its own"
        )
