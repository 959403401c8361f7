"""One command for the whole demo: migrate, build the model, seed, serve, work.

Starts the web server, two Celery workers (``default,gpu`` and ``train``) and beat on
the embedded broker, prints where to open the site, and stops everything on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from frontend.demo import seed_demo
from frontend.demo_progress import BuildProgress
from frontend.selectors import project_counts

WORKERS = (("gpu-worker", "default,gpu"), ("train-worker", "train"))
STAGES = 4


class Command(BaseCommand):
    help = "Set up and run the demo site with its workers (Ctrl-C stops everything)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("PREFLOOP_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PREFLOOP_PORT", 8000)))
        parser.add_argument("--no-serve", action="store_true", help="Set up only, then exit.")

    def handle(self, *args, host: str, port: int, no_serve: bool, **options) -> None:
        started = time.perf_counter()
        self._stage(1, "database: applying migrations")
        call_command("migrate", verbosity=0)
        self._stage(2, "demo model: building it (a few minutes the first time, then cached)")
        call_command("build_demo_model", stdout=BuildProgress(self.stdout._out))
        self._stage(3, "demo project: seeding accounts, prompts and first tasks")
        project, accounts = seed_demo()
        counts = project_counts(project=project)
        self.stdout.write(f"  {counts['prompts']} prompts, {counts['pairwise_tasks']} pairwise "
                          f"and {counts['binary_tasks']} thumbs tasks")
        self.stdout.write(f"setup done in {time.perf_counter() - started:.1f} s")
        if no_serve:
            return
        self._stage(4, "starting the web server, two workers and beat")
        children = self._start(host, port)
        url = f"http://{host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nPrefloop is running: open {url}"))
        self.stdout.write(f"  owner:      {accounts.owner[0]} / {accounts.owner[1]}")
        for name, password in accounts.annotators:
            self.stdout.write(f"  annotator:  {name} / {password}")
        self.stdout.write(f"  API docs:   {url}api/docs/\nPress Ctrl-C to stop.\n")
        self._wait(children)

    def _stage(self, number: int, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"[{number}/{STAGES}] {text}"))

    def _start(self, host: str, port: int) -> list[subprocess.Popen]:
        python = sys.executable
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        web = [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"]
        children = [subprocess.Popen(web, cwd=settings.BASE_DIR, env=env)]
        for name, queues in WORKERS:
            cmd = [python, "-m", "celery", "-A", "prefloop", "worker", "--pool=solo",
                   "-Q", queues, "-n", f"{name}@%h", "--loglevel=INFO"]
            children.append(subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=env))
        # Beat runs the rounds' periodic checks (waiting for labels, auto-start).
        beat = [python, "-m", "celery", "-A", "prefloop", "beat", "--loglevel=INFO",
                "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")]
        children.append(subprocess.Popen(beat, cwd=settings.BASE_DIR, env=env))
        return children

    def _wait(self, children: list[subprocess.Popen]) -> None:
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            self.stderr.write("a child process exited; stopping the demo")
        except KeyboardInterrupt:
            self.stdout.write("\nstopping the web server, the workers and beat…")
        finally:
            killed = stop_children(children)
            if killed:
                self.stderr.write(f"stopped, but {', '.join(killed)} had to be killed")
            else:
                self.stdout.write(self.style.SUCCESS(
                    "Everything stopped cleanly (web server, 2 workers, beat). "
                    "Run make demo again to continue where you left off."))


def stop_children(children: list[subprocess.Popen], *, grace: float = 20.0) -> list[str]:
    """SIGTERM every child still running, wait up to ``grace`` seconds each, kill what is
    left; returns the commands that had to be killed."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    killed = []
    for child in children:
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            killed.append(" ".join(map(str, child.args[2:4])))
    return killed
