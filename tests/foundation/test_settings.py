"""Settings come from the environment and refuse unsafe production configurations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "x" * 20 + "a-real-secret-key-with-enough-entropy-0123456789",
    "DJANGO_ALLOWED_HOSTS": "prefloop.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/prefloop",
}


def _manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_secret_key():
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    proc = _manage("check", env=env)
    assert proc.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in proc.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_ALLOWED_HOSTS"}
    proc = _manage("check", env=env)
    assert proc.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS must be set" in proc.stderr


def test_check_deploy_is_clean_with_production_variables():
    proc = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


def test_development_defaults_use_sqlite_and_embedded_broker():
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='prefloop.settings'; "
        "django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.DEBUG)"
    )
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_"))
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.split() == [
        "django.db.backends.sqlite3", "filesystem://localhost/", "True"
    ]


@pytest.mark.django_db(transaction=True)
def test_healthz_answers_503_without_naming_the_database(client, caplog):
    """A load balancer learns "unavailable"; the reason (host, user) goes only to the log."""
    from django.db import connection

    assert client.get("/healthz").json() == {"status": "ok"}
    broken = {**connection.settings_dict, "HOST": "127.0.0.1", "PORT": "1", "NAME": "nowhere"}
    if connection.vendor == "sqlite":
        broken["NAME"] = "/nonexistent-dir/prefloop.sqlite3"
    saved = connection.settings_dict
    connection.close()
    connection.settings_dict = broken
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict = saved
    assert response.status_code == 503
    assert response.json() == {"status": "database unavailable"}
    assert "nowhere" not in response.content.decode()
    assert "database unavailable" in caplog.text
