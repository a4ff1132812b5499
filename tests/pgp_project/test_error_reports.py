"""Secrets never reach an error report: not the IPN secret, not a private key, whatever holds them."""

import secrets
import sys
from collections.abc import Callable

import pytest


def error_report_of(call: Callable[[], object]) -> str:
    """The text and HTML Django would show (DEBUG page) or mail (admins) for what `call` raises."""
    from django.test import RequestFactory
    from django.views.debug import ExceptionReporter

    try:
        call()
    except Exception:  # noqa: BLE001 - any exception is what we report on
        info = sys.exc_info()
    else:
        pytest.fail("expected the call to raise")
    request = RequestFactory().post("/webhooks/nowpayments/", data=b"{}", content_type="application/json")
    reporter = ExceptionReporter(request, *info)
    return reporter.get_traceback_text() + reporter.get_traceback_html()


def test_an_exception_inside_the_signature_check_reports_no_ipn_secret(settings) -> None:
    from integrations.nowpayments_signature import sign

    # Made at run time: a literal would show in the report's source context lines.
    settings.NOWPAYMENTS_IPN_SECRET = secrets.token_urlsafe(24)
    report = error_report_of(lambda: sign(None, settings.NOWPAYMENTS_IPN_SECRET))
    assert "canonical_body" in report  # the report does show where it failed
    assert settings.NOWPAYMENTS_IPN_SECRET not in report


def test_an_exception_inside_signing_reports_no_private_key(monkeypatch) -> None:
    from evm_chain.node import EvmNode

    key = "0x" + secrets.token_hex(32)
    monkeypatch.setenv("HOT_WALLET_PRIVATE_KEY", key)
    node = EvmNode("http://127.0.0.1:9", chain_id=31337)
    report = error_report_of(
        lambda: node.sign_eth_transfer(private_key=key, to="not-an-address", amount_wei=1, nonce=0, fees=(1, 1), gas=1)
    )
    assert "sign_eth_transfer" in report
    assert key[2:] not in report.lower()


def test_a_secret_in_a_local_of_any_name_is_hidden(settings) -> None:
    settings.NOWPAYMENTS_IPN_SECRET = secrets.token_urlsafe(24)

    def careless() -> None:
        copied = {"header": settings.NOWPAYMENTS_IPN_SECRET}
        raise RuntimeError(f"boom with {len(copied)} entries")

    report = error_report_of(careless)
    assert "careless" in report
    assert settings.NOWPAYMENTS_IPN_SECRET not in report
