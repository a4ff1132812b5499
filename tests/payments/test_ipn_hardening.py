"""The public IPN endpoint under hostile input: every bad request gets a clear 4xx and changes no
money; a signed body PostgreSQL could not store is stored escaped instead of failing forever;
refused requests leave only a hash, a size, a reason and a time, and are pruned."""

import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.test import Client as HttpClient
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from integrations.nowpayments_signature import sign
from payments.models import Client, IpnOutcome, Payment, PaymentEvent, PayoutAccumulation, RoutingStatus
from payments.retention import prune_rejected_ipn_events
from payouts.models import PayoutBatch
from standins.ipn_fuzz import dumps_as_javascript, fuzz_cases, javascript_signature

from ..conftest import IPN_URL, PROJECT_ROOT, ipn_body, post_ipn, wait_until, worker_environment
from ..factories import StaffUserFactory
from ..pgp_project.test_settings_and_demo import free_port

pytestmark = pytest.mark.django_db


def money_rows() -> tuple[Any, ...]:
    """Everything that says where money is: payments, accumulation rows and payouts."""
    return (
        tuple(Payment.objects.aggregate(n=Count("id"), paid=Sum("outcome_amount")).values()),
        tuple(PayoutAccumulation.objects.aggregate(n=Count("id"), amount=Sum("source_amount")).values()),
        PayoutBatch.objects.count(),
    )


def post_raw(http: HttpClient, body: bytes, signature: bytes | None) -> Any:
    headers = {}
    if signature is not None:
        # WSGI hands a header to the app as latin-1 text, whatever bytes it was.
        headers["HTTP_X_NOWPAYMENTS_SIG"] = signature.decode("latin-1")
    return http.post(IPN_URL, data=body, content_type="application/json", **headers)


def signed(body: dict[str, Any]) -> tuple[bytes, bytes]:
    from django.conf import settings

    raw = dumps_as_javascript(body)
    return raw, sign(raw, settings.NOWPAYMENTS_IPN_SECRET).encode()


# --- each bad input the attack run found --------------------------------------------------------

VALID = json.dumps(ipn_body()).encode()


@pytest.mark.parametrize(
    ("body", "signature", "status"),
    [
        pytest.param(VALID, "é".encode() * 64, 401, id="non-ascii-signature-utf8"),
        pytest.param(VALID, b"\xff\xfe" * 64, 401, id="non-ascii-signature-latin1"),
        pytest.param(json.dumps(ipn_body(order_description="a\x00b")).encode(), b"0" * 128, 401, id="nul-unsigned"),
        pytest.param(b'{"payment_id": 1, "payment_status": "\\ud800"}', b"0" * 128, 401, id="surrogate-unsigned"),
        pytest.param(b'{"payment_status": "\\udfff", "x": "\\u0000"}', None, 401, id="surrogate-nul-no-signature"),
        pytest.param(b'{"payment_id": 1e99999999999999999999}', b"0" * 128, 400, id="huge-exponent-unsigned"),
        pytest.param(b'{"price_amount": -1e99999999999999999999}', None, 401, id="huge-exponent-no-signature"),
        pytest.param(b'{"payment_id": 1, "x": "\xff\xfe"}', b"0" * 128, 400, id="invalid-utf8"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_changes_no_money(
    client: HttpClient, threshold_client: Client, body: bytes, signature: bytes | None, status: int
) -> None:
    before = money_rows()
    response = post_raw(client, body, signature)
    assert response.status_code == status
    assert "error" in response.json()
    assert money_rows() == before
    event = PaymentEvent.objects.get()
    assert event.outcome.startswith("rejected")
    assert event.body == ""  # an unsigned request's body is never stored


@pytest.mark.parametrize(
    "number", ["1e99999999999999999999", "-1e99999999999999999999", "1e-99999999999999999999", "1E+400", "1e999999999"]
)
@pytest.mark.parametrize("field", ["payment_id", "price_amount", "outcome_amount", "extra"])
def test_a_signed_number_beyond_every_range_gets_a_4xx(client: HttpClient, field: str, number: str) -> None:
    body = json.dumps(ipn_body(**{field: "__N__"})).replace('"__N__"', number).encode()
    response = post_raw(client, body, sign(body, "test-ipn-secret").encode())
    if field == "extra" and number in ("1E+400", "1e999999999"):
        assert response.status_code == 200  # a field we do not read: stored as text, payment recorded
    else:
        assert 400 <= response.status_code < 500, response.content
    assert response.status_code in (200, 400, 422)


@pytest.mark.parametrize(
    "character", [chr(0), chr(0xD800), chr(0xDFFF)], ids=["nul", "high-surrogate", "low-surrogate"]
)
def test_a_signed_body_with_characters_jsonb_refuses_is_stored_escaped_and_recorded(
    client: HttpClient, threshold_client: Client, character: str
) -> None:
    raw, signature = signed(ipn_body(order_description=f"sub{character}scription", note=f"x{character}"))
    response = post_raw(client, raw, signature)
    assert response.status_code == 200, response.content
    payment = Payment.objects.get()
    escaped = f"\\u{ord(character):04x}"
    assert payment.order_description == f"sub{escaped}scription"
    assert payment.raw_payload["note"] == f"x{escaped}"
    assert payment.routing_status == RoutingStatus.ROUTED
    # The next delivery of the same notification is a duplicate, not a 503 for ever.
    again = post_raw(client, raw, signature)
    assert again.status_code == 200
    assert again.json()["result"] == IpnOutcome.DUPLICATE


def test_a_signed_payment_whose_order_id_holds_such_a_character_is_held_not_lost(
    client: HttpClient, threshold_client: Client
) -> None:
    raw, signature = signed(ipn_body(order_id=f"PGP-7|{threshold_client.external_id}\x00"))
    response = post_raw(client, raw, signature)
    assert response.status_code == 200
    payment = Payment.objects.get()
    assert payment.routing_status == RoutingStatus.HELD
    assert "\\u0000" in payment.order_id
    assert PayoutAccumulation.objects.count() == 0


def test_a_status_holding_such_a_character_is_recorded_as_undocumented_and_moves_nothing(client: HttpClient) -> None:
    # Signed, so genuine: a status NOWPayments does not document is recorded and held, never lost.
    raw, signature = signed(ipn_body(payment_status="finished\x00"))
    response = post_raw(client, raw, signature)
    assert response.status_code == 200
    assert response.json()["result"] == IpnOutcome.UNKNOWN_STATUS
    payment = Payment.objects.get()
    assert (payment.status, payment.routing_status) == ("waiting", RoutingStatus.HELD)
    assert PayoutAccumulation.objects.count() == 0
    assert PaymentEvent.objects.get().reported_status == "finished\\u0000"


# --- nesting, encoding and __proto__: refused before the signature is checked ----------------------


def assert_refused_before_anything(response: Any, error: str) -> PaymentEvent:
    assert response.status_code == 400, response.content
    assert response.json()["error"] == error
    assert response.json()["detail"]  # says why, in words
    assert Payment.objects.count() == 0
    event = PaymentEvent.objects.get()
    assert event.outcome == IpnOutcome.REJECTED_PAYLOAD
    assert (event.provider_payment_id, event.reported_status, event.body) == (None, "", "")
    return event


def nested_field(depth: int) -> bytes:
    """A whole signed-looking notification with one more field, objects nested `depth` deep in it."""
    raw = json.dumps(ipn_body()).encode()
    return raw[:1] + b'"deep": ' + b'{"a": ' * depth + b"null" + b"}" * depth + b", " + raw[1:]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 20000, id="20000-unclosed-arrays"),
        pytest.param(b"[" * 3000 + b"]" * 3000, id="3000-arrays"),
        pytest.param(b"[" * 990 + b"]" * 990, id="990-arrays-under-the-parser-limit"),
        pytest.param(b'{"a":' * 5000 + b"1" + b"}" * 5000, id="5000-objects"),
        pytest.param(nested_field(3000), id="notification-with-a-field-3000-deep"),
        pytest.param(b"[" * 9 + b"]" * 9, id="9-arrays"),
    ],
)
def test_deep_nesting_gets_a_400_before_it_is_parsed(client: HttpClient, threshold_client: Client, body: bytes):
    try:
        signature = sign(body, "test-ipn-secret").encode()
    except ValueError:
        signature = b"0" * 128  # too deep for our signer too: the intake never gets to the signature
    response = post_raw(client, body, signature)
    event = assert_refused_before_anything(response, "too_deeply_nested")
    assert event.reason == "body nests objects or arrays deeper than 8 levels"


def test_a_signed_notification_nested_past_the_limit_is_refused_and_one_at_it_accepted(
    client: HttpClient, threshold_client: Client
) -> None:
    # The body is one level, the field's objects the rest: 9 levels in all.
    too_deep = nested_field(8)
    response = post_raw(client, too_deep, sign(too_deep, "test-ipn-secret").encode())
    assert_refused_before_anything(response, "too_deeply_nested")
    at_the_limit = nested_field(7)
    response = post_raw(client, at_the_limit, sign(at_the_limit, "test-ipn-secret").encode())
    assert response.status_code == 200, response.content
    assert Payment.objects.get().raw_payload["deep"]["a"]["a"]["a"]["a"]["a"]["a"]["a"] is None


def test_brackets_inside_strings_are_not_nesting(client: HttpClient, threshold_client: Client) -> None:
    raw, signature = signed(ipn_body(order_description='[[[[[[[[[[{{{{{{{{{{ \\" [[[[[[[[[['))
    assert post_raw(client, raw, signature).status_code == 200


# Bytes Node would read as U+FFFD and sign: a UTF-8-encoded surrogate (Python's json would read it),
# a lone continuation byte, an overlong "/", a cut sequence; and whole bodies in another encoding.
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps(ipn_body(note="__BAD__")).encode().replace(b"__BAD__", bad), id=name)
        for name, bad in [
            ("encoded-surrogate", b"\xed\xa0\x80"),
            ("continuation-byte", b"\x80"),
            ("overlong", b"\xc0\xaf"),
            ("cut-sequence", b"\xf0\x9f\x92"),
            ("latin-1", "é".encode("latin-1")),
        ]
    ]
    + [
        pytest.param(json.dumps(ipn_body()).encode("utf-16"), id="utf-16"),
        pytest.param(json.dumps(ipn_body()).encode("utf-32"), id="utf-32"),
    ],
)
def test_a_body_that_is_not_utf8_is_a_400_even_signed_as_javascript_would(
    client: HttpClient, threshold_client: Client, body: bytes
) -> None:
    try:
        signature = javascript_signature(body, "test-ipn-secret")  # what NOWPayments' Node would send
    except ValueError:
        signature = b"0" * 128  # no JavaScript signs a body it cannot parse (utf-16, a BOM)
    response = post_raw(client, body, signature)
    event = assert_refused_before_anything(response, "invalid_encoding")
    assert event.reason == "body is not valid UTF-8 (RFC 8259)"
    assert event.body_size == len(body)


def test_a_byte_order_mark_is_not_json(client: HttpClient, threshold_client: Client) -> None:
    # Valid UTF-8, but JSON has no byte order mark (RFC 8259), and Node's JSON.parse refuses one.
    raw, signature = signed(ipn_body())
    response = post_raw(client, b"\xef\xbb\xbf" + raw, signature)
    assert_refused_before_anything(response, "malformed_json")


@pytest.mark.parametrize(
    "key", ['"__proto__"', '"\\u005f_proto__"', '"__pro\\u0074o__"'], ids=["literal", "escaped", "escaped-inside"]
)
@pytest.mark.parametrize("value", ['{"payment_status": "finished"}', "null", '"x"'], ids=["object", "null", "text"])
@pytest.mark.parametrize("where", ["top", "nested"])
def test_a_proto_key_is_a_400_even_signed_as_javascript_would(
    client: HttpClient, threshold_client: Client, key: str, value: str, where: str
) -> None:
    raw = json.dumps(ipn_body()).encode()
    entry = f"{key}: {value}".encode()
    body = b"{" + entry + b", " + raw[1:] if where == "top" else raw[:-1] + b', "fee": {' + entry + b"}}"
    # sortObject's `result.__proto__ = ...` drops the key: JavaScript signs the body without it.
    signature = javascript_signature(body, "test-ipn-secret")
    assert signature == sign(raw if where == "top" else raw[:-1] + b', "fee": {}}', "test-ipn-secret").encode()
    event = assert_refused_before_anything(post_raw(client, body, signature), "prototype_key")
    assert event.reason == "body holds a __proto__ key"


def test_proto_as_a_value_or_part_of_a_key_is_accepted(client: HttpClient, threshold_client: Client) -> None:
    raw, signature = signed(ipn_body(order_description="__proto__", __proto__x=1, x__proto__="__proto__"))
    assert post_raw(client, raw, signature).status_code == 200


def test_refusal_records_without_a_payment_id_show_in_the_admin(client: HttpClient, threshold_client: Client) -> None:
    post_raw(client, b"[" * 50, b"0" * 128)
    post_raw(client, json.dumps(ipn_body(payment_id=99)).encode(), b"0" * 128)
    post_ipn(client, ipn_body(payment_id=98, price_amount="lots"))  # signed, 422: carries its id
    client.force_login(StaffUserFactory(username="ipn-reader"))
    listing = client.get("/admin/payments/paymentevent/")
    assert listing.status_code == 200
    assert b"unverified claim: payment_id 99" in listing.content
    for event in PaymentEvent.objects.all():
        assert client.get(f"/admin/payments/paymentevent/{event.pk}/change/").status_code == 200
    found = client.get("/admin/payments/paymentevent/", {"q": "99"})
    assert found.context["cl"].result_count == 0  # the unsigned claim is no record of payment 99
    assert client.get("/admin/payments/paymentevent/", {"q": "98"}).context["cl"].result_count == 1


@pytest.mark.parametrize("length", ["\u00b2", "\u0661\u0662", "-1", "1e3", " 12"])
def test_a_content_length_of_no_ascii_digits_is_a_4xx(client: HttpClient, length: str) -> None:
    # gunicorn refuses these itself (400); another WSGI server may hand them on.
    raw, signature = signed(ipn_body())
    response = client.post(
        IPN_URL, data=raw, content_type="application/json", CONTENT_LENGTH=length, HTTP_X_NOWPAYMENTS_SIG=signature
    )
    assert response.status_code == 400
    assert Payment.objects.count() == 0


# --- refused requests cannot fill the database ----------------------------------------------------


def test_refused_requests_keep_only_hash_size_reason_and_time(client: HttpClient) -> None:
    """The attack run: 100 refused 60 KiB bodies added 6.7 MB. Now each leaves one small row."""
    import hashlib

    bodies = [os.urandom(30 * 1024).hex().encode()[: 60 * 1024] for _ in range(100)]
    for body in bodies:
        assert post_raw(client, body, b"0" * 128).status_code in (400, 401)
    events = list(PaymentEvent.objects.order_by("id"))
    assert len(events) == 100
    assert all(event.body == "" for event in events)
    assert [event.body_sha256 for event in events] == [hashlib.sha256(body).hexdigest() for body in bodies]
    assert {event.body_size for event in events} == {60 * 1024}
    assert all(event.reason for event in events)
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(pg_column_size(t.*)) FROM payments_paymentevent t")
        (stored_bytes,) = cursor.fetchone()
    assert stored_bytes < 100 * 400  # under 400 bytes a request, against 67 KB before


def test_the_retention_job_prunes_old_refused_requests_only(client: HttpClient, threshold_client: Client) -> None:
    post_raw(client, b"{}", b"0" * 128)  # refused
    post_ipn(client, ipn_body())  # accepted: part of the payment's record
    old = timezone.now() - timedelta(days=31)
    PaymentEvent.objects.update(received_at=old)
    post_raw(client, b"{}", None)  # refused, recent
    assert prune_rejected_ipn_events(retention_days=30) == 1
    remaining = sorted(PaymentEvent.objects.values_list("outcome", flat=True))
    assert remaining == [IpnOutcome.APPLIED, IpnOutcome.REJECTED_SIGNATURE]
    assert prune_rejected_ipn_events(retention_days=30) == 0  # safe to run twice


# --- no 5xx, no money changed: the property, and the committed fuzz corpus ------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.decimals(allow_nan=False).map(str),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
ipn_like = st.fixed_dictionaries(
    {},
    optional={
        name: json_values | st.just(ipn_body()[name])
        for name in ("payment_id", "payment_status", "order_id", "price_amount", "outcome_amount", "outcome_currency")
    },
)


@pytest.mark.slow  # hundreds of generated requests: the second tier, after the fast unit tier
@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=512) | ipn_like.map(lambda v: json.dumps(v, default=str).encode("utf-8", "surrogatepass")),
    signature=st.none() | st.binary(max_size=200),
)
def test_no_unsigned_or_malformed_body_gets_a_5xx_or_changes_money(
    client: HttpClient, threshold_client: Client, body: bytes, signature: bytes | None
) -> None:
    before = money_rows()
    response = post_raw(client, body, signature)
    assert 400 <= response.status_code < 500
    assert money_rows() == before


@pytest.mark.slow
@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=ipn_like)
def test_no_signed_body_gets_a_5xx(client: HttpClient, threshold_client: Client, body: dict[str, Any]) -> None:
    # allow_nan=False: NaN and Infinity are not JSON, so nobody can sign them.
    raw = dumps_as_javascript(body, default=str, allow_nan=False)
    response = post_raw(client, raw, sign(raw, "test-ipn-secret").encode())
    assert response.status_code < 500


def test_the_fuzz_corpus_of_3000_bodies_gets_no_5xx_and_unsigned_ones_change_no_money(
    client: HttpClient, threshold_client: Client
) -> None:
    answers: dict[int, int] = {}
    for case in fuzz_cases(3000, "test-ipn-secret"):
        before = None if case.validly_signed else money_rows()
        response = post_raw(client, case.body, case.signature)
        answers[response.status_code] = answers.get(response.status_code, 0) + 1
        assert response.status_code < 500, (case.kind, case.body[:200], response.content)
        if before is not None:
            assert money_rows() == before, case.kind
    assert sum(answers.values()) == 3000
    assert answers.get(200, 0) > 0  # some signed cases were accepted: the fuzz reached past the signature
    assert {401, 400, 413, 422} <= set(answers)


# --- chunked bodies, over a real server -------------------------------------------------------------


GUNICORN_READ_TIMEOUT = 2  # seconds a stalled body holds a thread before its 408 (10 in production)


@pytest.fixture
def gunicorn_log(tmp_path: Path) -> Path:
    return tmp_path / "gunicorn.log"


@pytest.fixture
def gunicorn_url(django_db_setup: None, django_db_blocker: Any, gunicorn_log: Path) -> Iterator[str]:
    port = free_port()
    env = {**worker_environment(), "GUNICORN_READ_TIMEOUT": str(GUNICORN_READ_TIMEOUT)}
    with gunicorn_log.open("w") as log:
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "pgp_project.wsgi", f"--bind=127.0.0.1:{port}", "--workers=1"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: _answers(port), timeout=30, interval=0.3)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=20)


def _answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/health/")
        connection.getresponse().read()
    except OSError:
        return False
    return True


@pytest.mark.django_db(transaction=True)
def test_a_chunked_signed_ipn_is_read_whole_and_recorded(gunicorn_url: str, threshold_client: Client) -> None:
    raw, signature = signed(ipn_body(payment_id=7700001))
    host, port = gunicorn_url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    chunks = [raw[i : i + 50] for i in range(0, len(raw), 50)]
    connection.request(
        "POST",
        IPN_URL,
        body=iter(chunks),
        headers={"Content-Type": "application/json", "x-nowpayments-sig": signature.decode()},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 200, response.read()
    assert Payment.objects.filter(provider_payment_id=7700001).exists()


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_over_the_limit_is_refused(gunicorn_url: str) -> None:
    host, port = gunicorn_url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(
        "POST", IPN_URL, body=iter([b" " * 16384] * 5), headers={"x-nowpayments-sig": "00"}, encode_chunked=True
    )
    response = connection.getresponse()
    assert response.status == 413
    assert Payment.objects.count() == 0


# --- broken framing and bodies that stop early, over a real server ----------------------------------


def exchange(address: str, request: bytes, then: str) -> tuple[int | None, str | None]:
    """Send `request` on a raw socket, then half-close ("close"), go away ("reset") or wait
    ("stall"); the answer's status and error code ((None, None): the server closed without one)."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=GUNICORN_READ_TIMEOUT + 10) as sock:
        sock.sendall(request)
        if then == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return None, None
        if then == "close":
            sock.shutdown(socket.SHUT_WR)
        answer = sock.makefile("rb").read()  # the server closes after its answer (keepalive = 0)
    if not answer:
        return None, None
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body).get("error") if body.startswith(b"{") else None


def head(signature: bytes, *lines: str) -> bytes:
    return b"\r\n".join(
        [f"POST {IPN_URL} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"x-nowpayments-sig: " + signature]
        + [line.encode() for line in lines]
    )


def framed_cases(raw: bytes, signature: bytes) -> list[tuple[str, bytes, str, int | None, str | None]]:
    """(name, request, then, status, error) for each way of breaking a validly signed IPN's body."""
    chunked = head(signature, "Transfer-Encoding: chunked") + b"\r\n\r\n"
    whole = b"%x\r\n%s\r\n" % (len(raw), raw)
    short = head(signature, f"Content-Length: {len(raw) + 10}") + b"\r\n\r\n"
    unterminated = b"%x\r\n%sXX0\r\n\r\n" % (len(raw), raw)
    return [
        ("bad chunk size", chunked + b"zz\r\n" + whole + b"0\r\n\r\n", "close", 400, "body_unreadable"),
        ("missing chunk terminator", chunked + unterminated, "close", 400, "body_unreadable"),
        ("malformed trailer", chunked + whole + b"0\r\nno colon here\r\n\r\n", "close", 400, "body_unreadable"),
        ("chunk larger than what comes", chunked + b"f" * 40 + b"\r\n" + raw, "close", 400, "body_incomplete"),
        ("chunked, cut, closed", chunked + whole[: len(whole) // 2], "close", 400, "body_incomplete"),
        ("Content-Length, cut, closed", short + raw, "close", 400, "body_incomplete"),
        ("chunked, cut, stalled", chunked + whole[: len(whole) // 2], "stall", 408, "body_timeout"),
        ("Content-Length, cut, stalled", short + raw, "stall", 408, "body_timeout"),
        ("Content-Length, cut, reset", short + raw, "reset", None, None),  # nobody left to answer
    ]


@pytest.mark.django_db(transaction=True)
def test_broken_or_short_bodies_get_400_or_408_and_store_only_their_refusal(
    gunicorn_url: str, gunicorn_log: Path, threshold_client: Client
) -> None:
    raw, signature = signed(ipn_body(payment_id=7700002))
    cases = framed_cases(raw, signature)
    for name, request, then, status, error in cases:
        assert exchange(gunicorn_url, request, then) == (status, error), name
    # The reset one is answered to nobody, but recorded like the others once the server has read it.
    wait_until(lambda: PaymentEvent.objects.count() == len(cases), timeout=10)
    assert Payment.objects.count() == 0
    assert PayoutAccumulation.objects.count() == 0
    events = list(PaymentEvent.objects.order_by("id"))
    assert {event.outcome for event in events} == {IpnOutcome.REJECTED_PAYLOAD}
    assert all((e.provider_payment_id, e.reported_status, e.body) == (None, "", "") for e in events)
    reasons = {event.reason for event in events}
    assert reasons == {
        "the body's chunked framing is broken",
        "the connection ended before the body was complete",
        "the body stopped arriving before it was complete",
    }
    # The same body, framed well, is accepted: what was refused was the framing.
    well_framed = head(signature, f"Content-Length: {len(raw)}") + b"\r\n\r\n" + raw
    assert exchange(gunicorn_url, well_framed, "close")[0] == 200
    log = gunicorn_log.read_text()
    assert "Traceback" not in log
    assert " 500 " not in log


@pytest.mark.django_db(transaction=True)
def test_stalled_headers_and_unknown_codings_are_refused_without_a_traceback(
    gunicorn_url: str, gunicorn_log: Path
) -> None:
    stalled = exchange(gunicorn_url, head(b"00", "Content-Le"), "stall")
    assert stalled == (None, None)  # closed after the read timeout: there is no request to answer
    unknown = exchange(gunicorn_url, head(b"00", "Transfer-Encoding: x-unknown") + b"\r\n\r\n{}", "close")
    assert unknown[0] == 400  # gunicorn's own answer would be 501
    assert PaymentEvent.objects.count() == 0  # neither reached the application
    log = gunicorn_log.read_text()
    assert "stalled for 2.0s: connection closed" in log
    assert "Traceback" not in log
