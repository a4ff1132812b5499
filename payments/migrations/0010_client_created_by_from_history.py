from django.db import migrations


def creators_from_history(apps, schema_editor):
    """Clients created in the admin before `created_by` existed: their creator is the actor of
    their "created" audit event. Without it, the person who set a client up (and its wallet)
    would count as nobody, and could alone approve payouts to that wallet."""
    Client = apps.get_model("payments", "Client")
    AuditEvent = apps.get_model("operations", "AuditEvent")
    created = AuditEvent.objects.filter(subject_type="client", action="created", actor__isnull=False)
    for subject_id, actor_id in created.order_by("subject_id", "created_at", "id").values_list("subject_id", "actor_id"):
        Client.objects.filter(pk=subject_id, created_by__isnull=True).update(created_by_id=actor_id)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0009_payout_memo"),
        ("operations", "0001_initial"),
    ]

    operations = [migrations.RunPython(creators_from_history, migrations.RunPython.noop)]
