"""A task enqueued through a real broker reaches a real worker process and its result
comes back: through Redis (the production broker) and through the embedded
file-system broker (the laptop default)."""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from prefloop import celery_app
from prefloop.tasks import worker_ping
from tests.conftest import require
from tests.support.worker import celery_worker

REDIS_URL = os.environ.get("PREFLOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _roundtrip(broker_url: str, transport_options: dict, tmp_path, worker_env: dict) -> dict:
    token = uuid.uuid4().hex
    log = tmp_path / "worker.log"
    with celery_worker(broker_url=broker_url, env=worker_env, log_path=log):
        with celery_app.connection_for_write(
            broker_url, transport_options=transport_options
        ) as conn:
            result = worker_ping.apply_async(kwargs={"token": token}, connection=conn)
        try:
            payload = result.get(timeout=90)
        except Exception as exc:
            raise AssertionError(f"no result; worker log:\n{log.read_text()[-4000:]}") from exc
    assert payload["token"] == token
    assert payload["db_ok"] is True
    assert payload["pid"] != os.getpid()
    return payload


def test_task_roundtrip_through_redis(tmp_path):
    require(_redis_up(), f"needs Redis at {REDIS_URL}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    payload = _roundtrip(REDIS_URL, {}, tmp_path, {})
    assert payload["db_vendor"] in ("sqlite", "postgresql")


def test_task_roundtrip_through_embedded_broker(tmp_path):
    folder = tmp_path / "broker"
    options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
    }
    for path in options.values():
        os.makedirs(path, exist_ok=True)
    _roundtrip("filesystem://", options, tmp_path, {"PREFLOOP_BROKER_DIR": str(folder)})
