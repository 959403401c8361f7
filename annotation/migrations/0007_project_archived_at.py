from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotation", "0006_invitations_and_project_creators")]

    operations = [
        migrations.AddField(
            model_name="project",
            name="archived_at",
            field=models.DateTimeField(
                blank=True,
                help_text="Archived: read-only, hidden from annotators' lists.",
                null=True,
            ),
        ),
    ]
