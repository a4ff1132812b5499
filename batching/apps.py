from django.apps import AppConfig


class BatchingConfig(AppConfig):
    """Micro-batch ETH -> USDT conversion: threshold check, exchange, distribution."""

    name = "batching"
