"""Drill: ``kill -9`` gunicorn web workers while 20 annotators submit verdicts.

gunicorn (3 sync workers) serves the app on the test database. Each client loops
next-task → submit with one idempotency key per assignment and retries a request that
got no answer (its worker was killed) or a server error with the same key. A killer
thread kills a busy worker, waits for the master to respawn it, and repeats until a
client has lost a response. Afterwards every verdict a client was told is stored is in
the database exactly once, nothing else is, and every task's counter matches.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from tests.faults import drill_db
from tests.faults.annotators import Ledger, Stored, audit, run_clients
from tests.faults.support import gunicorn, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ANNOTATORS, TASKS, OVERLAP = 20, 60, 3
MAX_KILLS = 6


def _kill_until_a_response_is_lost(server, ledger: Ledger, clients, killed: list[int]) -> None:
    """Kill a worker at a time (after some verdicts went through), let the master replace
    it, until some client saw a request die with its worker."""
    progress = 15
    while len(killed) < MAX_KILLS and any(t.is_alive() for t in clients):
        wait_for(lambda p=progress: ledger.count() >= p or not any(t.is_alive() for t in clients),
                 timeout=300, what=f"{progress} verdicts")
        if ledger.lost or not any(t.is_alive() for t in clients):
            return
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)
        wait_for(lambda v=victim: v not in server.worker_pids() and len(server.worker_pids()) == 3,
                 timeout=120, what="gunicorn to replace the killed worker")
        progress = ledger.count() + 10


def test_killed_web_workers_lose_and_double_nothing(tmp_path):
    tokens = drill_db.seed(slug="drill", annotators=ANNOTATORS, tasks=TASKS, overlap=OVERLAP)
    ledger, killed = Ledger(), []
    with gunicorn(log_path=tmp_path / "gunicorn.log", workers=3) as server:
        clients = run_clients(url=server.url, slug="drill", tokens=tokens, ledger=ledger)
        killer = threading.Thread(target=_kill_until_a_response_is_lost,
                                  args=(server, ledger, clients, killed))
        killer.start()
        for thread in clients:
            thread.join(timeout=600)
        killer.join(timeout=300)
        assert not any(t.is_alive() for t in clients), "a client never finished"

    assert killed, "no worker was killed: the drill ran too fast"
    assert ledger.lost >= 1, f"{len(killed)} kills and no client lost a response"
    assert ledger.statuses[500] == 0, "a killed worker must never cause a 500"
    audit(ledger, Stored.from_dict(drill_db.stored(slug="drill")))
    assert len(ledger.confirmed) == TASKS * OVERLAP
    print(f"killed {len(killed)} workers; {ledger.lost} requests lost and retried; "
          f"answers {dict(ledger.statuses)}")
