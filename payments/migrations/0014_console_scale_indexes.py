import django.contrib.postgres.indexes
import django.db.models.deletion
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built CONCURRENTLY: these tables take the IPN intake and every transition; a plain CREATE
    # INDEX would block their writes for the whole build on a large table.
    atomic = False

    dependencies = [
        ("payments", "0013_alert_throttle_replaces_stamp"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="payment",
            index=models.Index(fields=["order_id"], name="payment_order_id_idx"),
        ),
        AddIndexConcurrently(
            model_name="payment",
            index=models.Index(fields=["created_at"], name="payment_created_idx"),
        ),
        AddIndexConcurrently(
            model_name="payment",
            index=models.Index(fields=["client", "created_at"], name="payment_client_time_idx"),
        ),
        # The client's own index is now the leading column of payment_client_time_idx. Its name
        # is Django's generated one; dropped concurrently, then the field's state follows.
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX CONCURRENTLY IF EXISTS payments_payment_client_id_fcbb7eb4",
                    reverse_sql="CREATE INDEX CONCURRENTLY IF NOT EXISTS payments_payment_client_id_fcbb7eb4 "
                    "ON payments_payment (client_id)",
                )
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="payment",
                    name="client",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="payments",
                        to="payments.client",
                    ),
                )
            ],
        ),
        AddIndexConcurrently(
            model_name="payoutaccumulation",
            index=models.Index(
                condition=models.Q(("status", "paid_out"), _negated=True), fields=["status"], name="accum_open_status_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="payoutaccumulation",
            index=models.Index(
                condition=models.Q(("status", "paid_out")), fields=["paid_out_at"], name="accum_paid_out_at_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="payoutaccumulation",
            index=django.contrib.postgres.indexes.BrinIndex(fields=["created_at"], name="accum_created_brin"),
        ),
    ]
