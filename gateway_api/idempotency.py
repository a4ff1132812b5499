"""Idempotency-Key, as Stripe has it: a POST retried with the same key and the same body gets the
stored answer (status and body) without running again; with another body, 422. Answers are kept
`PGP_API_IDEMPOTENCY_HOURS`, then pruned (`prune_idempotency_records`).

The key is claimed first, as a unique row committed on its own, so of two concurrent requests
with one key only one runs. The request's work and its stored answer then commit together, under
that row's lock: a request that dies midway leaves the claim unanswered and unlocked, and its
retry runs it; a twin that finds the row locked is answered 409 (still running). A 5xx answer is
not stored (nothing was written), so a retry runs again.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .models import ApiKey, IdempotencyRecord, IdempotencyStatus

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class _NotStored(Exception):
    """Carries a 5xx answer out of the transaction, rolling back its work."""

    def __init__(self, response: Any) -> None:
        self.response = response


def body_fingerprint(request: Request) -> str:
    """The body's hash; JSON is compared by its content, whatever its key order or spacing."""
    raw = request.body
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = raw
    return hashlib.sha256(request.method.encode() + b" " + request.path.encode() + b"\n" + canonical).hexdigest()


def _problem(status: int, detail: str) -> Response:
    return Response({"detail": detail}, status=status)


def _claim(key: ApiKey, idempotency_key: str, request: Request, fingerprint: str) -> None:
    """The claim row, committed at once (autocommit: outside any transaction of the request)."""
    cutoff = timezone.now() - timedelta(hours=settings.PGP_API_IDEMPOTENCY_HOURS)
    IdempotencyRecord.objects.filter(api_key=key, key=idempotency_key, created_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(
                api_key=key,
                key=idempotency_key,
                method=request.method or "",
                path=request.path[:500],
                body_sha256=fingerprint,
            )
    except IntegrityError:
        pass  # claimed before: its answer is replayed, or it is still running


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        record.response_body,
        status=record.response_status or 200,
        content_type=record.response_content_type or "application/json",
    )
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(handler: Callable[..., Any]) -> Callable[..., Any]:
    """For a DRF view's `post`: honour an Idempotency-Key header when there is one."""

    @wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
        idempotency_key = request.headers.get(HEADER, "").strip()
        if not idempotency_key:
            return handler(view, request, *args, **kwargs)
        if len(idempotency_key) > MAX_KEY_LENGTH:
            return _problem(400, f"{HEADER} is at most {MAX_KEY_LENGTH} characters")
        key = request.auth
        assert isinstance(key, ApiKey)
        fingerprint = body_fingerprint(request)
        _claim(key, idempotency_key, request, fingerprint)
        try:
            return _answer(key, idempotency_key, fingerprint, lambda: _run(view, handler, request, *args, **kwargs))
        except _NotStored as not_stored:
            return not_stored.response

    return wrapper


def _answer(key: ApiKey, idempotency_key: str, fingerprint: str, run: Callable[[], Any]) -> Any:
    """Under the claim's row lock: refuse, replay, or run and store the answer with the work."""
    with transaction.atomic():
        record = (
            IdempotencyRecord.objects.select_for_update(skip_locked=True)
            .filter(api_key=key, key=idempotency_key)
            .first()
        )
        if record is None:
            return _problem(409, f"a request with this {HEADER} is still being processed; retry later")
        if record.body_sha256 != fingerprint:
            return _problem(422, f"this {HEADER} was used with another request body (or path); use a new key")
        if record.status == IdempotencyStatus.DONE:
            return _replay(record)
        response = run()
        if response.status_code >= 500:
            raise _NotStored(response)  # rolls the work back; the claim stays, unanswered, for a retry
        _store(record, response)
        return response


def _run(view: Any, handler: Callable[..., Any], request: Request, *args: Any, **kwargs: Any) -> Any:
    """The handler's answer, its refusals (4xx) included, as the view would send them."""
    try:
        with transaction.atomic():  # a refusal rolls back whatever it wrote, not the claim's lock
            return handler(view, request, *args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - DRF turns its own exceptions into answers; it re-raises the rest
        return view.handle_exception(exc)


# Answer fields that carry a secret shown once (a webhook endpoint's signing secret): the stored
# answer keeps them blank, so no table holds them in the clear and a replay never shows them again.
SECRET_FIELDS = ("secret",)


def _without_secrets(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: (None if key in SECRET_FIELDS else _without_secrets(value)) for key, value in data.items()}
    return data


def _store(record: IdempotencyRecord, response: Any) -> None:
    body = (
        JSONRenderer().render(_without_secrets(response.data)) if isinstance(response, Response) else response.content
    )
    record.status = IdempotencyStatus.DONE
    record.response_status = response.status_code
    record.response_body = body.decode()
    record.response_content_type = "application/json"
    record.completed_at = timezone.now()
    record.save(update_fields=["status", "response_status", "response_body", "response_content_type", "completed_at"])


def prune_idempotency_records() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.PGP_API_IDEMPOTENCY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
