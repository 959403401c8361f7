from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0004_model_version_owners"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingrun",
            name="processes",
            field=models.PositiveSmallIntegerField(
                default=1, help_text="Trainer processes per node (torchrun --nproc-per-node)."
            ),
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="nodes",
            field=models.PositiveSmallIntegerField(
                default=1,
                help_text="Nodes; more than 1 rendezvous at PREFLOOP_TRAINING_RDZV_ENDPOINT.",
            ),
        ),
    ]
