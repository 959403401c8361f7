from django.db import migrations


def run_outputs_to_their_project(apps, schema_editor):
    """A model version a training run produced belongs to that run's project."""
    TrainingRun = apps.get_model("training", "TrainingRun")
    ModelVersion = apps.get_model("generation", "ModelVersion")
    for run in TrainingRun.objects.exclude(output_version=None).only("project_id", "output_version_id"):
        ModelVersion.objects.filter(pk=run.output_version_id, project=None).update(
            project_id=run.project_id
        )


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0003_job_heartbeat"),
        ("generation", "0005_owners_of_models_constitutions_judges"),
    ]

    operations = [migrations.RunPython(run_outputs_to_their_project, migrations.RunPython.noop)]
