"""Thin views: read the key's visible rows (selectors), write through the services."""

from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from console.statements import COLUMNS, shown_amount, statement_csv, statement_events
from payments.models import Client, PaymentStatus
from payouts.exchange_batches.states import BatchStatus
from webhooks.models import WebhookEndpoint

from . import selectors, services
from .idempotency import HEADER, idempotent
from .permissions import CanWriteClients, ManagesWebhooks, request_key
from .serializers import (
    BalanceSerializer,
    ChangeRequestedSerializer,
    ChangeRequestSerializer,
    ClientCreatedSerializer,
    ClientSerializer,
    PaymentSerializer,
    PayoutSerializer,
    PendingChangeSerializer,
    StatementSerializer,
    WebhookDisableSerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSecretSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
)


class NewestFirst(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        # DRF ignores a bad page size; a client that asked for one should hear that it was wrong.
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        if not given.isdigit() or not 1 <= int(given) <= self.max_page_size:
            raise serializers.ValidationError({"limit": f"a whole number from 1 to {self.max_page_size}"})
        return int(given)


class NewestRequestFirst(NewestFirst):
    ordering = ("-requested_at", "-id")


def _moment(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    refusal = serializers.ValidationError({name: "an ISO 8601 time, e.g. 2026-01-31T00:00:00Z"})
    try:
        moment = parse_datetime(text)
    except ValueError:
        raise refusal from None
    if moment is None:
        raise refusal
    try:
        # In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows.
        return moment.astimezone(UTC) if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
    except OverflowError:
        raise refusal from None


TIME_FILTERS = [
    OpenApiParameter("created_after", OpenApiTypes.DATETIME, description="Created at or after (ISO 8601)."),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME, description="Created before (ISO 8601)."),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Page size, 1 to 200 (default 50)."),
]
IDEMPOTENCY = OpenApiParameter(
    HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, description="Same key and body: the stored answer; 24 h."
)
REFUSALS = {
    400: OpenApiResponse(description="Invalid input; nothing changed"),
    401: OpenApiResponse(description="No key, or an invalid, revoked or expired one"),
    403: OpenApiResponse(description="The key may not do this"),
    404: OpenApiResponse(description="Not found, or not visible to this key"),
    409: OpenApiResponse(description="The same Idempotency-Key is still being processed"),
    422: OpenApiResponse(description="The Idempotency-Key was used with another body"),
    429: OpenApiResponse(description="Rate limit; see Retry-After"),
}
READ_REFUSALS = {code: REFUSALS[code] for code in (400, 401, 404, 429)}


# Refuses a query parameter the operation does not take (a typo such as `created_afer` would
# otherwise be ignored and answer with every row), after authentication. (A comment, not a
# docstring: drf-spectacular would describe every operation with it.)
class KnownQuery:
    query_names: frozenset[str] = frozenset()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        unknown = sorted(set(request.query_params) - self.query_names)
        if unknown:
            raise serializers.ValidationError({"query": f"unknown parameters {unknown}"})


LIST_QUERY = frozenset({"created_after", "created_before", "limit", "cursor"})


class FilteredList(KnownQuery, generics.ListAPIView):
    pagination_class = NewestFirst
    query_names = LIST_QUERY | {"status", "client"}
    statuses: tuple[str, ...] = ()

    def filter_rows(self, rows: QuerySet) -> QuerySet:
        request = self.request
        rows = selectors.within(
            rows, after=_moment(request, "created_after"), before=_moment(request, "created_before")
        )
        wanted = request.query_params.getlist("status")
        unknown = sorted(set(wanted) - set(self.statuses))
        if unknown:
            raise serializers.ValidationError({"status": f"unknown {unknown}; one of {list(self.statuses)}"})
        return rows.filter(status__in=wanted) if wanted else rows


def _of_client(request: Request, rows: QuerySet) -> QuerySet:
    client_id = request.query_params.get("client")
    if client_id is None:
        return rows
    if not client_id.isdigit():
        raise serializers.ValidationError({"client": "a client id"})
    return rows.filter(client_id=int(client_id))


def _status_filter(values: list[str]) -> OpenApiParameter:
    return OpenApiParameter("status", OpenApiTypes.STR, enum=values, many=True, description="Any of these statuses.")


@extend_schema(tags=["clients"])
class ClientList(FilteredList):
    query_names = LIST_QUERY | {"external_id", "is_active"}
    serializer_class = ClientSerializer
    permission_classes = [*generics.ListAPIView.permission_classes, CanWriteClients]

    def get_queryset(self) -> QuerySet[Client]:
        request = self.request
        rows = selectors.visible_clients(request_key(request))
        rows = selectors.within(
            rows, after=_moment(request, "created_after"), before=_moment(request, "created_before")
        )
        external_id = request.query_params.get("external_id")
        if external_id is not None:
            if "\x00" in external_id:  # PostgreSQL text holds no NUL: no client has one
                raise serializers.ValidationError({"external_id": "no NUL characters"})
            rows = rows.filter(external_id=external_id)
        active = request.query_params.get("is_active")
        if active is not None:
            if active not in ("true", "false"):
                raise serializers.ValidationError({"is_active": "true or false"})
            rows = rows.filter(is_active=active == "true")
        return rows

    @extend_schema(
        parameters=[
            *TIME_FILTERS,
            OpenApiParameter("external_id", OpenApiTypes.STR, description="The channel id."),
            OpenApiParameter("is_active", OpenApiTypes.BOOL),
        ],
        responses={200: ClientSerializer(many=True), **READ_REFUSALS},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=ClientSerializer,
        parameters=[IDEMPOTENCY],
        responses={201: ClientCreatedSerializer, **REFUSALS},
        description="A new client (channel), created inactive: its activation is a change an operator "
        "confirms in the console. Gateway keys with clients:write only.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        given = ClientSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        client, activation = services.create_client(request_key(request), given.validated_data)
        body = {"client": ClientSerializer(client).data, "activation": PendingChangeSerializer(activation).data}
        return Response(body, status=status.HTTP_201_CREATED)


def _client(request: Request, client_id: int) -> Client:
    return get_object_or_404(selectors.visible_clients(request_key(request)), pk=client_id)


@extend_schema(tags=["clients"], responses={200: ClientSerializer, **READ_REFUSALS})
class ClientDetail(KnownQuery, generics.RetrieveAPIView):
    serializer_class = ClientSerializer

    def get_object(self) -> Client:
        return _client(self.request, self.kwargs["client_id"])


@extend_schema(tags=["clients"])
class ClientChanges(KnownQuery, generics.ListAPIView):
    """The requested changes of a client's money controls, and how each was decided."""

    serializer_class = PendingChangeSerializer
    permission_classes = [*generics.ListAPIView.permission_classes, CanWriteClients]
    pagination_class = NewestRequestFirst
    query_names = frozenset({"limit", "cursor"})

    def get_queryset(self) -> QuerySet:
        return selectors.client_changes(_client(self.request, self.kwargs["client_id"]).pk)

    @extend_schema(responses={200: PendingChangeSerializer(many=True), **READ_REFUSALS})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=ChangeRequestSerializer,
        parameters=[IDEMPOTENCY],
        responses={202: ChangeRequestedSerializer, **REFUSALS},
        description="Request a change of the client's wallet, network, currency, memo, threshold, strategy or "
        "fee. It applies only once an operator confirms it in the console.",
    )
    @idempotent
    def post(self, request: Request, client_id: int) -> Response:
        client = _client(request, client_id)
        given = ChangeRequestSerializer(instance=client, data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        values = dict(given.validated_data)
        reason = values.pop("reason", "")
        change = services.request_client_change(request_key(request), client, values, reason)
        body = {"change": PendingChangeSerializer(change).data if change is not None else None}
        return Response(body, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["clients"], responses={200: BalanceSerializer, **READ_REFUSALS})
class ClientBalance(KnownQuery, generics.GenericAPIView):
    serializer_class = BalanceSerializer

    def get(self, request: Request, client_id: int) -> Response:
        balance = selectors.client_balance(_client(request, client_id))
        return Response(BalanceSerializer(balance).data)


def _range(request: Request) -> tuple[datetime, datetime]:
    start, end = _moment(request, "start"), _moment(request, "end")
    if start is None or end is None:
        raise serializers.ValidationError({"start": "start and end are both required (ISO 8601)"})
    if end <= start:
        raise serializers.ValidationError({"end": "end must be after start"})
    return start, end


RANGE = [
    OpenApiParameter("start", OpenApiTypes.DATETIME, required=True, description="From (inclusive)."),
    OpenApiParameter("end", OpenApiTypes.DATETIME, required=True, description="To (exclusive)."),
]


def _decimal_text(value: Any, unit: str) -> str | None:
    return None if value is None else format(shown_amount(value, unit), "f")


@extend_schema(tags=["clients"], parameters=RANGE, responses={200: StatementSerializer, **READ_REFUSALS})
class ClientStatement(KnownQuery, generics.GenericAPIView):
    """Every money event of the client in [start, end): payments, fees, credits, transactions, payouts."""

    serializer_class = StatementSerializer
    query_names = frozenset({"start", "end"})

    def get(self, request: Request, client_id: int) -> Response:
        client = _client(request, client_id)
        start, end = _range(request)
        events = [
            {
                "type": event.type,
                "time": event.time,
                "payment_id": event.payment_id,
                "payout_id": event.payout_id,
                "amount": _decimal_text(event.amount, event.unit),
                "unit": event.unit,
                "usd_value": _decimal_text(event.usd_value, "USD"),
                "tx_hash": event.tx_hash,
                "detail": event.detail,
            }
            for event in statement_events(client, start, end)
        ]
        return Response(
            StatementSerializer({"client_id": client.pk, "start": start, "end": end, "events": events}).data
        )


@extend_schema(
    tags=["clients"],
    parameters=RANGE,
    responses={
        (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=f"Columns: {', '.join(COLUMNS)}"),
        **READ_REFUSALS,
    },
)
class ClientStatementCsv(KnownQuery, generics.GenericAPIView):
    """The same statement as CSV, one row per event."""

    query_names = frozenset({"start", "end"})

    def get(self, request: Request, client_id: int) -> HttpResponse:
        client = _client(request, client_id)
        start, end = _range(request)
        response = HttpResponse(statement_csv(client, start, end), content_type="text/csv; charset=utf-8")
        name = f"statement-{client.external_id}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


@extend_schema(tags=["payments"])
class PaymentList(FilteredList):
    serializer_class = PaymentSerializer
    statuses = tuple(PaymentStatus.values)

    def get_queryset(self) -> QuerySet:
        rows = self.filter_rows(selectors.visible_payments(request_key(self.request)))
        return _of_client(self.request, rows)

    @extend_schema(
        parameters=[*TIME_FILTERS, _status_filter(PaymentStatus.values), OpenApiParameter("client", OpenApiTypes.INT)],
        responses={200: PaymentSerializer(many=True), **READ_REFUSALS},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


@extend_schema(tags=["payments"], responses={200: PaymentSerializer, **READ_REFUSALS})
class PaymentDetail(KnownQuery, generics.RetrieveAPIView):
    serializer_class = PaymentSerializer
    lookup_url_kwarg = "payment_id"

    def get_queryset(self) -> QuerySet:
        return selectors.visible_payments(request_key(self.request))


@extend_schema(tags=["payouts"])
class PayoutList(FilteredList):
    serializer_class = PayoutSerializer
    statuses = tuple(BatchStatus.values)

    def get_queryset(self) -> QuerySet:
        rows = self.filter_rows(selectors.visible_payouts(request_key(self.request)))
        return _of_client(self.request, rows)

    @extend_schema(
        parameters=[*TIME_FILTERS, _status_filter(BatchStatus.values), OpenApiParameter("client", OpenApiTypes.INT)],
        responses={200: PayoutSerializer(many=True), **READ_REFUSALS},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


@extend_schema(tags=["payouts"], responses={200: PayoutSerializer, **READ_REFUSALS})
class PayoutDetail(KnownQuery, generics.RetrieveAPIView):
    serializer_class = PayoutSerializer
    lookup_url_kwarg = "payout_id"

    def get_queryset(self) -> QuerySet:
        return selectors.visible_payouts(request_key(self.request))


# --- webhook endpoints ----------------------------------------------------------------------------

WEBHOOK_WRITE = "Gateway keys with webhooks:write only."


def _endpoint(request: Request, endpoint_id: int) -> WebhookEndpoint:
    return get_object_or_404(selectors.webhook_endpoints(request_key(request)), pk=endpoint_id)


def _with_secret(endpoint: WebhookEndpoint, secret: str, code: int) -> Response:
    body = {"endpoint": WebhookEndpointSerializer(endpoint).data, "secret": secret}
    return Response(body, status=code)


@extend_schema(tags=["webhooks"])
class WebhookEndpointList(KnownQuery, generics.ListAPIView):
    serializer_class = WebhookEndpointSerializer
    permission_classes = [*generics.ListAPIView.permission_classes, ManagesWebhooks]
    pagination_class = NewestFirst
    query_names = LIST_QUERY | {"client", "enabled"}

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        request = self.request
        rows = selectors.within(
            selectors.webhook_endpoints(request_key(request)),
            after=_moment(request, "created_after"),
            before=_moment(request, "created_before"),
        )
        enabled = request.query_params.get("enabled")
        if enabled is not None:
            if enabled not in ("true", "false"):
                raise serializers.ValidationError({"enabled": "true or false"})
            rows = rows.filter(enabled=enabled == "true")
        return _of_client(request, rows)

    @extend_schema(
        parameters=[
            *TIME_FILTERS,
            OpenApiParameter("client", OpenApiTypes.INT, description="Endpoints of this client only."),
            OpenApiParameter("enabled", OpenApiTypes.BOOL),
        ],
        responses={200: WebhookEndpointSerializer(many=True), **READ_REFUSALS, 403: REFUSALS[403]},
        description="Every webhook endpoint, without its secret. Gateway keys only.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=WebhookEndpointCreateSerializer,
        parameters=[IDEMPOTENCY],
        responses={201: WebhookEndpointSecretSerializer, **REFUSALS},
        description="A new endpoint, enabled. Its signing secret is in this answer only (and in its replay "
        f"with the same {HEADER}): keep it. {WEBHOOK_WRITE}",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        given = WebhookEndpointCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        created = services.create_webhook_endpoint(request_key(request), given.validated_data)
        return _with_secret(created.endpoint, created.secret, status.HTTP_201_CREATED)


@extend_schema(tags=["webhooks"])
class WebhookEndpointDetail(KnownQuery, generics.GenericAPIView):
    serializer_class = WebhookEndpointSerializer
    permission_classes = [*generics.GenericAPIView.permission_classes, ManagesWebhooks]

    @extend_schema(
        responses={200: WebhookEndpointSerializer, **READ_REFUSALS, 403: REFUSALS[403]},
        description="One endpoint, without its secret. Gateway keys only.",
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        return Response(WebhookEndpointSerializer(_endpoint(request, endpoint_id)).data)

    @extend_schema(
        request=WebhookEndpointUpdateSerializer,
        responses={200: WebhookEndpointSerializer, **{code: REFUSALS[code] for code in (400, 401, 403, 404, 429)}},
        description=f"Change its url, event types or description (its client is set at creation). {WEBHOOK_WRITE}",
    )
    def patch(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        given = WebhookEndpointUpdateSerializer(data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        updated = services.update_webhook_endpoint(request_key(request), endpoint, given.validated_data)
        return Response(WebhookEndpointSerializer(updated).data)


class WebhookEndpointAction(KnownQuery, generics.GenericAPIView):
    serializer_class = WebhookEndpointSerializer
    permission_classes = [*generics.GenericAPIView.permission_classes, ManagesWebhooks]


@extend_schema(
    tags=["webhooks"],
    request=WebhookDisableSerializer,
    parameters=[IDEMPOTENCY],
    responses={200: WebhookEndpointSerializer, **REFUSALS},
    description="Stop sending to it; its pending deliveries wait until it is enabled. Disabling a disabled "
    f"endpoint changes nothing. {WEBHOOK_WRITE}",
)
class WebhookEndpointDisable(WebhookEndpointAction):
    @idempotent
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        given = WebhookDisableSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        services.disable_webhook_endpoint(request_key(request), endpoint, given.validated_data.get("reason", ""))
        endpoint.refresh_from_db()
        return Response(WebhookEndpointSerializer(endpoint).data)


@extend_schema(
    tags=["webhooks"],
    request=None,
    parameters=[IDEMPOTENCY],
    responses={200: WebhookEndpointSerializer, **REFUSALS},
    description="Send to it again (also after the sender disabled it for failing); its pending deliveries "
    f"resume. Enabling an enabled endpoint changes nothing. {WEBHOOK_WRITE}",
)
class WebhookEndpointEnable(WebhookEndpointAction):
    @idempotent
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        services.enable_webhook_endpoint(request_key(request), endpoint)
        endpoint.refresh_from_db()
        return Response(WebhookEndpointSerializer(endpoint).data)


@extend_schema(
    tags=["webhooks"],
    request=None,
    parameters=[IDEMPOTENCY],
    responses={200: WebhookEndpointSecretSerializer, **REFUSALS},
    description="A new signing secret, in this answer only (and in its replay with the same "
    f"{HEADER}); deliveries from now on are signed with it, the old one no longer. {WEBHOOK_WRITE}",
)
class WebhookEndpointRotateSecret(WebhookEndpointAction):
    @idempotent
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        secret = services.rotate_webhook_secret(request_key(request), endpoint)
        return _with_secret(endpoint, secret, status.HTTP_200_OK)
