"""Training runs and rounds share the job lifecycle (``prefloop.jobs``): rounds get the
heartbeat fields, and a waiting run is "pending" like every job's (it was "queued"). The
data migration renames the value in place, so no run loses its history."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


RENAMED = {"queued": "pending"}  # old TrainingRun status -> the job status


def _rename(apps, mapping: dict[str, str]) -> None:
    TrainingRun = apps.get_model("training", "TrainingRun")
    for old, new in mapping.items():
        TrainingRun.objects.filter(status=old).update(status=new)


def forwards(apps, schema_editor):
    _rename(apps, RENAMED)


def backwards(apps, schema_editor):
    _rename(apps, {new: old for old, new in RENAMED.items()})


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0005_trainingrun_processes_nodes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='round',
            name='attempts',
            field=models.PositiveIntegerField(default=0, help_text='Times a worker started it.'),
        ),
        migrations.AddField(
            model_name='round',
            name='cancel_requested',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='round',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text='Last sign of life of the worker running it.', null=True),
        ),
        migrations.AddField(
            model_name='round',
            name='worker',
            field=models.CharField(blank=True, help_text='host:pid running it.', max_length=200),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='attempts',
            field=models.PositiveIntegerField(default=0, help_text='Times a worker started it.'),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='pending', max_length=10),
        ),
        migrations.RunPython(forwards, backwards),
    ]
