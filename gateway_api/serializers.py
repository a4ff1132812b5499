"""The API's shapes. Money is an exact decimal string; every amount keeps its stored places."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from payments.models import Client, Payment
from payouts.models import PayoutBatch
from pgp_project.money_display import explorer_url
from pgp_project.operations.models import PendingChange
from webhooks import services as webhooks
from webhooks.models import ALL_EVENTS, EVENT_TYPES, WebhookEndpoint

from .services import CHANGEABLE_FIELDS


class ClientSerializer(serializers.ModelSerializer):
    class Meta:
        model = Client
        fields = [
            "id",
            "external_id",
            "name",
            "payout_strategy",
            "payout_threshold_usd",
            "payout_currency",
            "payout_network",
            "wallet_address",
            "payout_extra_id",
            "fee_percent_override",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "is_active", "created_at", "updated_at"]


class PendingChangeSerializer(serializers.ModelSerializer):
    changes = serializers.DictField(
        child=serializers.DictField(child=serializers.CharField(allow_null=True)),
        help_text='field -> {"old": ..., "new": ...}, as text',
    )

    class Meta:
        model = PendingChange
        fields = ["id", "status", "changes", "reason", "requested_at", "decided_at", "decision_note"]


class ClientCreatedSerializer(serializers.Serializer):
    client = ClientSerializer()
    activation = PendingChangeSerializer(help_text="The activation an operator confirms in the console.")


class ChangeRequestSerializer(serializers.ModelSerializer):
    """Any of the money controls; each applies only once an operator confirms the change."""

    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000)

    class Meta:
        model = Client
        fields = [*CHANGEABLE_FIELDS, "reason"]
        extra_kwargs = {name: {"required": False} for name in CHANGEABLE_FIELDS}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not set(attrs) & set(CHANGEABLE_FIELDS):
            raise serializers.ValidationError(f"name at least one of {', '.join(CHANGEABLE_FIELDS)}")
        return attrs


class ChangeRequestedSerializer(serializers.Serializer):
    change = PendingChangeSerializer(allow_null=True, help_text="null when every value is already the stored one")


class BalanceSerializer(serializers.Serializer):
    client_id = serializers.IntegerField()
    pending_usd = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="Net USD awaiting conversion.")
    converting_usd = serializers.DecimalField(
        max_digits=14, decimal_places=2, help_text="Net USD in a conversion under way."
    )
    credited_usdt = serializers.DecimalField(
        max_digits=24, decimal_places=6, help_text="USDT credited, not yet claimed by a payout."
    )
    in_payout_usdt = serializers.DecimalField(max_digits=24, decimal_places=6, help_text="In a payout under way.")
    paid_out_usdt = serializers.DecimalField(max_digits=24, decimal_places=6)
    held_usd = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="Held for an operator's review.")
    payout_threshold_usd = serializers.DecimalField(max_digits=14, decimal_places=2)
    fee_percent = serializers.DecimalField(max_digits=5, decimal_places=2)


class PaymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = [
            "id",
            "provider_payment_id",
            "client",
            "status",
            "routing_status",
            "order_id",
            "price_amount",
            "price_currency",
            "pay_amount",
            "pay_currency",
            "actually_paid",
            "outcome_amount",
            "outcome_currency",
            "created_at",
            "updated_at",
        ]


class TransactionSerializer(serializers.Serializer):
    role = serializers.ChoiceField(
        choices=["funding", "payout"],
        help_text="funding: our hot wallet's send to the exchange (or to the client); payout: the exchange's "
        "send to the client.",
    )
    network = serializers.CharField()
    tx_hash = serializers.CharField()
    explorer_url = serializers.URLField(allow_null=True)
    status = serializers.CharField(help_text="The funding send's status; the payout's is the payout's own.")


class PayoutSerializer(serializers.ModelSerializer):
    transactions = serializers.SerializerMethodField()

    class Meta:
        model = PayoutBatch
        fields = [
            "id",
            "client",
            "kind",
            "status",
            "source_currency",
            "source_amount",
            "fee_amount",
            "total_usdt",
            "payout_currency",
            "payout_network",
            "payout_amount",
            "wallet_address",
            "payout_extra_id",
            "transactions",
            "created_at",
            "completed_at",
        ]

    @extend_schema_field(TransactionSerializer(many=True))
    def get_transactions(self, payout: PayoutBatch) -> list[dict[str, Any]]:
        found = []
        host = payout.host_payment
        if host is not None and host.tx_hash:
            found.append(
                {
                    "role": "funding",
                    "network": host.chain,
                    "tx_hash": host.tx_hash,
                    "explorer_url": explorer_url(host.chain, "tx", host.tx_hash),
                    "status": host.status,
                }
            )
        if payout.payout_tx_hash:
            found.append(
                {
                    "role": "payout",
                    "network": payout.payout_network,
                    "tx_hash": payout.payout_tx_hash,
                    "explorer_url": explorer_url(payout.payout_network, "tx", payout.payout_tx_hash),
                    "status": payout.status,
                }
            )
        return TransactionSerializer(found, many=True).data


class StatementEventSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["payment", "fee", "credit", "transaction", "payout"])
    time = serializers.DateTimeField()
    payment_id = serializers.IntegerField(allow_null=True)
    payout_id = serializers.IntegerField(allow_null=True)
    amount = serializers.CharField(help_text="Exact decimal")
    unit = serializers.CharField()
    usd_value = serializers.CharField(allow_null=True, help_text="Exact decimal")
    tx_hash = serializers.CharField(allow_blank=True)
    detail = serializers.CharField(allow_blank=True)


class StatementSerializer(serializers.Serializer):
    client_id = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    events = StatementEventSerializer(many=True)


# --- webhook endpoints -------------------------------------------------------------------------

EVENT_TYPE_HELP = f'Event types ({", ".join(EVENT_TYPES)}), or ["{ALL_EVENTS}"] for all.'


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """An endpoint as read: never its secret."""

    event_types = serializers.ListField(child=serializers.CharField(), help_text=EVENT_TYPE_HELP)

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "client",
            "enabled",
            "created_at",
            "disabled_at",
            "disabled_reason",
            "disabled_for_failures",
            "failing_since",
            "consecutive_failures",
        ]
        read_only_fields = fields


def _checked(check: Any, value: Any) -> Any:
    """The webhooks services' own check (the admin's), its refusal as this field's error."""
    try:
        return check(value)
    except DjangoValidationError as error:
        raise serializers.ValidationError(error.messages) from error


class WebhookEndpointWriteSerializer(serializers.Serializer):
    """What a write may set. A field it does not know is refused, not ignored: a `client` sent to
    narrow an existing endpoint would otherwise leave it receiving every client's events."""

    url = serializers.URLField(max_length=2000, help_text="http(s); a private or loopback address is refused.")
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=[ALL_EVENTS, *EVENT_TYPES]), min_length=1, help_text=EVENT_TYPE_HELP
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)

    def validate_url(self, url: str) -> str:
        return _checked(webhooks.clean_url, url)

    def validate_event_types(self, event_types: list[str]) -> list[str]:
        return _checked(webhooks.clean_event_types, event_types)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError(f"unknown fields {unknown}; known: {', '.join(self.fields)}")
        if self.partial and not attrs:
            raise serializers.ValidationError(f"name at least one of {', '.join(self.fields)}")
        return attrs


class WebhookEndpointCreateSerializer(WebhookEndpointWriteSerializer):
    client = serializers.PrimaryKeyRelatedField(
        queryset=Client.objects.all(),
        required=False,
        allow_null=True,
        help_text="Only this client's events (omitted or null: every event, those of no client included). "
        "Set at creation only.",
    )


class WebhookEndpointUpdateSerializer(WebhookEndpointWriteSerializer):
    """Any of url, event_types, description (the client is set at creation only)."""


class WebhookEndpointSecretSerializer(serializers.Serializer):
    endpoint = WebhookEndpointSerializer()
    secret = serializers.CharField(
        help_text="The signing secret (whsec_...), shown in this answer only: no read returns it again."
    )


class WebhookDisableSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000)
