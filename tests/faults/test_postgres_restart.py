"""Drill: PostgreSQL restarts while annotators submit verdicts.

A private cluster (``pgcluster``; the shared server is never touched) is migrated and
seeded, gunicorn serves the app on it, and annotator clients loop next-task → submit
with idempotency keys. Mid-run the cluster stops (``pg_ctl stop -m fast``): API calls
answer 503 with a JSON reason, pages a plain 503 page (never a 500 or a traceback),
``/healthz`` 503. The cluster starts again, requests succeed on fresh connections
(``CONN_HEALTH_CHECKS``), and the audit holds: every confirmed verdict stored once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from tests.conftest import require
from tests.faults import drill_db, pgcluster
from tests.faults.annotators import Ledger, Stored, audit, run_clients
from tests.faults.support import api, gunicorn, wait_for
from tests.support.worker import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.services]
ANNOTATORS, TASKS, OVERLAP = 8, 40, 2


def _manage(url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": url}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


@pytest.fixture
def cluster():
    why = pgcluster.usable()
    require(not why, why)
    cluster = pgcluster.Cluster()
    try:
        cluster.init()
        cluster.start()
        cluster.create_database("drill")
        yield cluster
    finally:
        cluster.remove()


def _logged_in(url: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{url}/accounts/login/", timeout=30)
    form = {"username": "owner", "password": drill_db.OWNER_PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"]}
    session.post(f"{url}/accounts/login/", data=form, timeout=30)
    assert session.get(f"{url}/", timeout=30).status_code == 200, "the owner could not log in"
    return session


def _assert_unavailable(url: str, page: requests.Session, token: str) -> None:
    answer = api(token).post(f"{url}/api/projects/drill/tasks/next", timeout=30)
    assert answer.status_code == 503 and answer.headers.get("Retry-After")
    assert answer.json() == {"detail": "The database is unavailable; retry in a moment."}
    html = page.get(f"{url}/", timeout=30)
    assert html.status_code == 503 and html.headers["Content-Type"].startswith("text/html")
    assert "Temporarily unavailable" in html.text and "Traceback" not in html.text
    assert requests.get(f"{url}/healthz", timeout=30).status_code == 503


def test_requests_fail_with_503_while_postgres_restarts_and_nothing_is_lost(cluster, tmp_path):
    url = cluster.url("drill")
    _manage(url, "manage.py", "migrate", "--no-input", "-v", "0")
    tokens = json.loads(_manage(url, "-m", "tests.faults.drill_db", "seed", "drill",
                                str(ANNOTATORS), str(TASKS), str(OVERLAP)))
    ledger = Ledger()
    with gunicorn(log_path=tmp_path / "gunicorn.log", workers=2, database_url=url) as server:
        page = _logged_in(server.url)
        clients = run_clients(url=server.url, slug="drill", tokens=tokens, ledger=ledger)
        wait_for(lambda: ledger.count() >= 15, timeout=300, what="15 verdicts before the stop")
        cluster.stop("fast")
        _assert_unavailable(server.url, page, next(iter(tokens.values())))
        wait_for(lambda: ledger.statuses[503] >= 3, timeout=60, what="clients to see 503s")
        confirmed_while_down = ledger.count()
        cluster.start()
        for thread in clients:
            thread.join(timeout=600)
        assert not any(t.is_alive() for t in clients), "a client never finished"
        assert page.get(f"{server.url}/", timeout=30).status_code == 200  # the session survived

    assert ledger.count() > confirmed_while_down, "nothing was stored after the restart"
    assert ledger.statuses[500] == 0, f"a 500 while the database was down: {ledger.statuses}"
    assert all(json.loads(body) == {"detail": "The database is unavailable; retry in a moment."}
               for body in ledger.unavailable_bodies)
    audit(ledger, Stored.from_dict(json.loads(_manage(url, "-m", "tests.faults.drill_db",
                                                      "stored", "drill"))))
    assert len(ledger.confirmed) == TASKS * OVERLAP
    logged = (tmp_path / "gunicorn.log").read_text()
    assert "database unavailable on POST /api/projects/drill/tasks/next" in logged
    assert "database unavailable on GET /:" in logged and "Traceback" not in logged
    print(f"answers {dict(ledger.statuses)}; {ledger.lost} requests lost and retried")
