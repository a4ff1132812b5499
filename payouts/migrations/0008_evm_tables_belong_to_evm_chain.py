"""The EVM nonce rows and transfers now belong to the EVM chain adapter's own app (evm_chain):
they leave this app's model state only; the tables stay as they are and evm_chain takes them
over under the same names."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("payouts", "0007_payout_memo")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="EvmTransfer"), migrations.DeleteModel(name="EvmSender")],
            database_operations=[],
        )
    ]
