"""The IPN signature matches NOWPayments' documented forms byte for byte.

NOWPayments' API documentation (https://documenter.getpostman.com/view/7907941/2s93JusNJt,
"Instant Payments Notifications") gives the signed string as JSON.stringify(sortObject(params))
in its Node example, JSON.stringify(params, Object.keys(params).sort()) in its steps, tksort then
json_encode(..., JSON_UNESCAPED_SLASHES) in its PHP example, and json.dumps(message,
separators=(',', ':'), sort_keys=True) in its Python example. Each form's vectors were produced by
its own language (tests/signature_vectors/generate_vectors.py: Node, Debian's php-cli, CPython's
json); the live tests run Node (and PHP, where installed) again on those bodies and on generated
ones, so a divergence from the real serialiser fails here.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.json_depth import nesting_exceeds
from integrations.nowpayments_signature import (
    FORMS,
    canonical_body,
    canonical_forms,
    is_valid_signature,
    js_number_to_string,
    matching_form,
    sign,
)
from standins.ipn_fuzz import dumps_as_javascript

VECTORS_DIR = Path(__file__).parent.parent / "signature_vectors"
VECTORS = json.loads((VECTORS_DIR / "vectors.json").read_text())
SECRET = VECTORS["secret"]
# The form each committed file holds, as its own language wrote it.
VECTOR_FILES = {
    "sortObject": "vectors.json",
    "replacer": "vectors_replacer.json",
    "php": "vectors_php.json",
    "python": "vectors_python.json",
}
FORM_VECTORS = [
    pytest.param(form, vector, id=f"{form}-{index}")
    for form, file_name in VECTOR_FILES.items()
    for index, vector in enumerate(json.loads((VECTORS_DIR / file_name).read_text())["vectors"])
]


def _raw(body: str) -> bytes:
    return body.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["body"][:40])
def test_committed_vectors(vector: dict[str, str]) -> None:
    assert canonical_body(_raw(vector["body"])) == _raw(vector["canonical"])
    assert sign(_raw(vector["body"]), SECRET) == vector["signature"]
    assert is_valid_signature(_raw(vector["body"]), vector["signature"], SECRET)


@pytest.mark.parametrize(
    ("literal", "javascript"),
    [
        ("1e-7", "1e-7"),
        ("2.5E-5", "0.000025"),
        ("123.0", "123"),
        ("1e21", "1e+21"),
        ("1e20", "100000000000000000000"),
        ("0.0000001", "1e-7"),
        ("0.000001", "0.000001"),
        ("-0.0", "0"),
        ("155.38559757", "155.38559757"),
        ("12345678901234567890", "12345678901234567000"),
        ("1.5e300", "1.5e+300"),
        ("5e-324", "5e-324"),
        # Where Python's repr changes notation (1e-4, 1e16) and ECMAScript's does not.
        ("0.0001", "0.0001"),
        ("0.00001", "0.00001"),
        ("-0.00012345", "-0.00012345"),
        ("1e15", "1000000000000000"),
        ("1e16", "10000000000000000"),
        ("9999999999999998", "9999999999999998"),
        ("0.1", "0.1"),
        ("-42", "-42"),
    ],
)
def test_number_formatting_matches_javascript(literal: str, javascript: str) -> None:
    assert js_number_to_string(float(literal)) == javascript


def test_tampered_body_wrong_secret_and_garbage_are_rejected() -> None:
    vector = VECTORS["vectors"][0]
    body = _raw(vector["body"])
    assert not is_valid_signature(body.replace(b"170", b"171"), vector["signature"], SECRET)
    assert not is_valid_signature(body, vector["signature"], "another-secret")
    assert not is_valid_signature(body, "", SECRET)
    assert not is_valid_signature(body, None, SECRET)
    assert not is_valid_signature(b"{not json", vector["signature"], SECRET)
    assert not is_valid_signature(b'{"a": NaN}', sign(b'{"a": 1}', SECRET), SECRET)
    # Key order and whitespace in the body do not matter: the canonical form is signed.
    reordered = json.dumps(dict(reversed(list(json.loads(body).items()))), indent=2).encode()
    assert is_valid_signature(reordered, vector["signature"], SECRET)


@pytest.mark.parametrize(("form", "vector"), FORM_VECTORS)
def test_each_documented_form_matches_its_own_language(form: str, vector: dict[str, str]) -> None:
    body = _raw(vector["body"])
    assert dict(canonical_forms(body))[form] == _raw(vector["canonical"])
    assert sign(body, SECRET, form=form) == vector["signature"]
    assert is_valid_signature(body, vector["signature"], SECRET)
    # The first form that signs this text alike is the one reported (the primary one first).
    same_text = [name for name, text in canonical_forms(body) if text == _raw(vector["canonical"])]
    assert matching_form(body, vector["signature"], SECRET) == same_text[0]
    assert not is_valid_signature(body, vector["signature"], "another-secret")


def test_the_forms_disagree_where_the_documentation_says_they_do() -> None:
    """On a real notification with a `fee` object, a non-ASCII description and a small number, all
    four texts differ, so each form's vector really tests that form."""
    body = _raw(VECTORS["vectors"][-1]["body"])
    texts = dict(canonical_forms(body))
    assert list(texts) == list(FORMS)
    assert len(set(texts.values())) == 4
    assert b'"fee":{}' in texts["replacer"]  # a replacer array filters nested objects' keys
    assert b'"depositFee":0.00001' in texts["sortObject"]
    assert b'"depositFee":1.0e-5' in texts["php"]
    assert b'"depositFee":1e-05' in texts["python"]
    assert "🚀".encode() in texts["sortObject"]
    assert b"\\ud83d\\ude80" in texts["php"]
    assert b"\\ud83d\\ude80" in texts["python"]


def test_arrays_stay_arrays_except_in_sort_object() -> None:
    """sortObject's reduce starts from `{}`, so Node turns an array into an object keyed by index
    (the committed Node vectors show it); the other forms keep arrays."""
    texts = dict(canonical_forms(b'{"a":[2,1]}'))
    assert texts == {
        "sortObject": b'{"a":{"0":2,"1":1}}',
        "replacer": b'{"a":[2,1]}',
        "php": b'{"a":[2,1]}',
        "python": b'{"a":[2,1]}',
    }


def test_the_other_forms_are_computed_only_when_the_primary_fails() -> None:
    body = _raw(VECTORS["vectors"][-1]["body"])
    forms = canonical_forms(body)
    assert next(forms)[0] == "sortObject"  # a generator: nothing else is computed yet
    assert matching_form(body, sign(body, SECRET), SECRET) == "sortObject"


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=5),
    max_leaves=20,
)


LIVE_REFERENCES = [
    pytest.param("sortObject", ["node", str(VECTORS_DIR / "nowpayments_reference.js")], id="node-sortObject"),
    pytest.param("replacer", ["node", str(VECTORS_DIR / "nowpayments_reference.js"), "replacer"], id="node-replacer"),
    pytest.param("php", ["php", str(VECTORS_DIR / "nowpayments_reference.php")], id="php"),
]


@pytest.mark.parametrize(("form", "command"), LIVE_REFERENCES)
@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=8), min_size=300, max_size=300))
def test_matches_the_real_serialiser_on_generated_bodies(form: str, command: list[str], bodies: list[dict]) -> None:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is required for the live cross-check (CI reads the committed vectors)")
    # A lone surrogate goes on the wire \u-escaped, as JSON.stringify writes it: raw, it is no UTF-8.
    raw_bodies = [dumps_as_javascript(b).decode() for b in bodies] + [v["body"] for v in VECTORS["vectors"]]
    lines = "".join(json.dumps({"secret": SECRET, "body": body}) + "\n" for body in raw_bodies)
    result = subprocess.run(
        command, input=lines.encode("utf-8", "surrogatepass"), capture_output=True, check=True, timeout=60
    )
    answers = [json.loads(line) for line in result.stdout.decode("utf-8", "surrogatepass").split("\n") if line]
    assert len(answers) == len(raw_bodies)
    for body, answer in zip(raw_bodies, answers, strict=True):
        texts = dict(canonical_forms(_raw(body)))
        if "error" in answer:  # PHP refuses a lone surrogate: so does our PHP form
            assert form not in texts, body
            continue
        assert texts[form] == _raw(answer["canonical"]), body
        assert sign(_raw(body), SECRET, form=form) == answer["signature"]


# --- what the canonical form refuses, and the nesting bound under it ------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b'{"a": "\xed\xa0\x80"}', "utf-8", id="encoded-surrogate"),
        pytest.param(b'{"a": "\xff"}', "utf-8", id="invalid-byte"),
        pytest.param('{"a": 1}'.encode("utf-16"), "utf-8", id="utf-16"),
        pytest.param(b'{"__proto__": {"a": 1}, "b": 2}', "__proto__", id="proto-key"),
        pytest.param(b'{"b": [{"\\u005f_proto__": null}]}', "__proto__", id="escaped-proto-key-in-an-array"),
        pytest.param(b"[" * 33 + b"]" * 33, "nested deeper than 32", id="33-arrays"),
        pytest.param(b'{"a":' * 100000 + b"1" + b"}" * 100000, "nested deeper than 32", id="100000-objects"),
    ],
)
def test_the_canonical_form_refuses_what_javascript_would_sign_differently(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        canonical_body(body)
    assert not is_valid_signature(body, "ab" * 64, SECRET)


def test_32_levels_are_signed() -> None:
    body = b"[" * 32 + b"]" * 32
    assert canonical_body(body) == b'{"0":' * 31 + b"{}" + b"}" * 31


def reference_depth(text: str) -> int:
    """The depth a JSON parser reaches, by the obvious loop (too slow for the intake)."""
    depth = deepest = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth -= 1
            if depth < 0:
                break
    return deepest


json_texts = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(alphabet='[]{}"\\a'), children, max_size=3),
    max_leaves=30,
).map(json.dumps)


@settings(max_examples=500, deadline=None)
@given(text=json_texts | st.text(alphabet='[]{}"\\a,:'), limit=st.integers(min_value=0, max_value=10))
def test_the_nesting_scan_agrees_with_the_obvious_loop(text: str, limit: int) -> None:
    assert nesting_exceeds(text.encode(), limit) == (reference_depth(text) > limit), text


@pytest.mark.parametrize(
    "body",
    [
        b'"' + b'\\"' * 32000,  # a string never closed, full of escaped quotes: no backtracking
        b'["' + b"[" * 60000 + b'"]',
        b"[]," * 21000,
        (b"[" * 8 + b"]" * 8 + b",") * 3600,
        b"[" * 60000,
    ],
    ids=["unclosed-escapes", "brackets-in-a-string", "flat", "8-deep-many-times", "60000-open"],
)
def test_the_nesting_scan_is_linear_on_hostile_64k_bodies(body: bytes) -> None:
    import time

    started = time.perf_counter()
    nesting_exceeds(body, 8)
    # Measured at about 1 ms on a busy 2-core machine; a quadratic scan takes seconds.
    assert time.perf_counter() - started < 0.25


# --- through the real view ----------------------------------------------------------------------


@pytest.mark.parametrize("form", list(VECTOR_FILES))
def test_a_notification_signed_by_each_language_is_recorded(form: str, threshold_client: object) -> None:
    """The committed complete notification (a `fee` object, nulls, `parent_payment_id`, non-ASCII
    text, a small number), posted with the signature its language made, is answered 200 and
    recorded: NOWPayments may sign with any documented form."""
    from django.test import Client as HttpClient
    from django.test import override_settings

    from payments.models import Payment, PaymentEvent

    from ..conftest import IPN_URL

    vectors = json.loads((VECTORS_DIR / VECTOR_FILES[form]).read_text())
    vector = vectors["vectors"][-1]
    with override_settings(NOWPAYMENTS_IPN_SECRET=vectors["secret"]):
        response = HttpClient().post(
            IPN_URL,
            data=_raw(vector["body"]),
            content_type="application/json",
            HTTP_X_NOWPAYMENTS_SIG=vector["signature"],
        )
    assert response.status_code == 200, response.content
    payment = Payment.objects.get(provider_payment_id=5077125060)
    assert payment.status == "finished"
    assert PaymentEvent.objects.get(payment=payment).signature_valid


def test_the_other_forms_are_tried_only_on_a_body_of_notification_size() -> None:
    """Past 16 KiB (a real notification is under 4 KiB) only the primary form is tried, so a
    large body with a wrong signature costs what it cost before there were four forms."""
    from integrations.nowpayments_signature import FALLBACK_MAX_BYTES

    small = json.dumps({"payment_id": 1, "fee": 0.00001}).encode()  # 1e-05 in Python, 1.0e-5 in PHP
    large = json.dumps({"payment_id": 1, "fee": 0.00001, "note": "x" * FALLBACK_MAX_BYTES}).encode()
    for body, expected in [(small, "python"), (large, None)]:
        assert matching_form(body, sign(body, SECRET, form="python"), SECRET) == expected
    assert matching_form(large, sign(large, SECRET), SECRET) == "sortObject"
