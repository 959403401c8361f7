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

WORKERS = (("gpu-worker", "default,gpu"), ("train-worker", "train"))


class Command(BaseCommand):
    help = "Set up and run the demo site with its workers (Ctrl-C stops everything)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("PREFLOOP_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PREFLOOP_PORT", 8000)))
        parser.add_argument("--no-serve", action="store_true", help="Set up only, then exit.")

    def handle(self, *args, host: str, port: int, no_serve: bool, **options) -> None:
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        call_command("build_demo_model")
        _, accounts = seed_demo()
        self.stdout.write(f"setup done in {time.perf_counter() - started:.1f} s")
        if no_serve:
            return
        children = self._start(host, port)
        url = f"http://{host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nPrefloop is running: open {url}"))
        self.stdout.write(f"  owner:      {accounts.owner[0]} / {accounts.owner[1]}")
        for name, password in accounts.annotators:
            self.stdout.write(f"  annotator:  {name} / {password}")
        self.stdout.write(f"  API docs:   {url}api/docs/\nPress Ctrl-C to stop.\n")
        self._wait(children)

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
            self.stdout.write("\nstopping…")
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
