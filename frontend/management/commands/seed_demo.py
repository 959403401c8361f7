from django.core.management.base import BaseCommand

from frontend.demo import seed_demo


class Command(BaseCommand):
    help = "Create the demo project, its prompts and tasks, and the demo accounts (idempotent)."

    def handle(self, *args, **options) -> None:
        project, accounts = seed_demo()
        self.stdout.write(self.style.SUCCESS(
            f"project {project.slug}: {project.prompts.count()} prompts, "
            f"{project.tasks.count()} tasks"
        ))
