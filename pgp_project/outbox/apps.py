from django.apps import AppConfig


class OutboxConfig(AppConfig):
    """The transactional outbox: events written in the same transaction as the change that causes
    them. A kernel app of its own, below every domain app, so payments, payouts and batching can
    all write it; it knows none of them, nor who reads it (the webhooks app does)."""

    name = "pgp_project.outbox"
    label = "outbox"
    verbose_name = "Outbox"
