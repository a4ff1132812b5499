"""Takes over the EVM tables the payouts app created (evm_senders, evm_transfers) without
touching them: only Django's model state moves (payouts 0008 lets go of it)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("payouts", "0008_evm_tables_belong_to_evm_chain")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="EvmSender",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("address", models.CharField(max_length=42, unique=True)),
                        ("next_nonce", models.BigIntegerField(default=0)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        "db_table": "evm_senders",
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("next_nonce__gte", 0)), name="evm_sender_nonce_nonneg"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="EvmTransfer",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("sender", models.CharField(max_length=42)),
                        ("nonce", models.BigIntegerField()),
                        ("gas_limit", models.BigIntegerField()),
                        ("max_fee_per_gas", models.DecimalField(decimal_places=0, max_digits=78)),
                        ("max_priority_fee_per_gas", models.DecimalField(decimal_places=0, max_digits=78)),
                        (
                            "host_payment",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="evm",
                                to="payouts.hostpayment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "evm_transfers",
                        "constraints": [
                            models.UniqueConstraint(fields=("sender", "nonce"), name="evm_transfer_unique_sender_nonce"),
                            models.CheckConstraint(
                                condition=models.Q(("gas_limit__gt", 0), ("nonce__gte", 0)),
                                name="evm_transfer_nonce_and_gas",
                            ),
                        ],
                    },
                ),
            ],
            database_operations=[],
        )
    ]
