from django.db import migrations

from pgp_project.operations.status_counts import install_sql, uninstall_sql

TABLES = ['batch_conversions']


class Migration(migrations.Migration):
    dependencies = [
        ("batching", "0005_metrics_indexes"),
        ("operations", "0008_status_counts"),
    ]

    # Rows by status kept by triggers, so /metrics never counts these tables (status_counts.py).
    operations = [
        migrations.RunSQL(install_sql(table), reverse_sql=uninstall_sql(table)) for table in TABLES
    ]
