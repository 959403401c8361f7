"""Annotator clients for the web drills: loop next-task → submit over HTTP, retrying a
lost or refused request with the same idempotency key, and the audit of what is stored.

A client keeps a ledger of every verdict the server confirmed. After the drill the
database must hold exactly those verdicts: each once, none missing, none extra.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

import requests

from tests.faults.support import api

RETRYABLE = (500, 502, 503, 504)


@dataclass
class Ledger:
    """What the clients saw, shared by their threads."""

    confirmed: list[tuple[str, int, int, str]] = field(default_factory=list)  # user, task, id, key
    lost: int = 0  # requests that got no answer (connection reset by a killed worker)
    statuses: Counter = field(default_factory=Counter)  # HTTP status of every answer
    unavailable_bodies: list[str] = field(default_factory=list)  # bodies of 503 answers
    errors: list[str] = field(default_factory=list)  # anything a client did not expect
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.confirmed)


def _call(ledger: Ledger, send) -> requests.Response:
    """Send until the server answers something other than a server error."""
    for attempt in range(600):
        try:
            response = send()
        except requests.ConnectionError:
            with ledger.lock:
                ledger.lost += 1
        else:
            with ledger.lock:
                ledger.statuses[response.status_code] += 1
                if response.status_code == 503:
                    ledger.unavailable_bodies.append(response.text)
            if response.status_code not in RETRYABLE:
                return response
        time.sleep(min(0.05 * (attempt + 1), 0.5))
    raise RuntimeError("the server never answered")


def annotate(*, url: str, slug: str, username: str, token: str, ledger: Ledger) -> None:
    """Work until the project has no task left for this annotator."""
    session, rng = api(token), random.Random(username)
    try:
        while True:
            nxt = _call(ledger, partial(session.post, f"{url}/api/projects/{slug}/tasks/next",
                                        timeout=60))
            if nxt.status_code == 204:
                return
            if nxt.status_code != 200:
                raise RuntimeError(f"next task: {nxt.status_code} {nxt.text[:300]}")
            assignment = nxt.json()["assignment_id"]
            key = f"{username}-{assignment}"
            body = {"choice": rng.choice(["left", "right"]), "strength": 1, "idempotency_key": key}
            done = _call(ledger, partial(session.post,
                                         f"{url}/api/assignments/{assignment}/judgment",
                                         json=body, headers={"Idempotency-Key": key},
                                         timeout=60))
            if done.status_code not in (200, 201):
                raise RuntimeError(f"submit: {done.status_code} {done.text[:300]}")
            data = done.json()
            with ledger.lock:
                ledger.confirmed.append((username, data["task_id"], data["id"], key))
    except Exception as exc:  # noqa: BLE001 reported by the drill's assertions
        with ledger.lock:
            ledger.errors.append(f"{username}: {exc!r}")


def run_clients(*, url: str, slug: str, tokens: dict[str, str], ledger: Ledger) -> list:
    threads = [threading.Thread(target=annotate, daemon=True,
                                kwargs={"url": url, "slug": slug, "username": name,
                                        "token": token, "ledger": ledger})
               for name, token in tokens.items()]
    for thread in threads:
        thread.start()
    return threads


@dataclass(frozen=True)
class Stored:
    """What the database holds after the drill, as plain rows."""

    judgments: list[tuple[str, int, int, str]]  # username, task id, judgment id, raw key
    tasks: list[tuple[int, int, int]]  # task id, done_count, overlap_wanted

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> Stored:
        return cls(judgments=[tuple(j) for j in data["judgments"]],
                   tasks=[tuple(t) for t in data["tasks"]])


def audit(ledger: Ledger, stored: Stored) -> None:
    """Every confirmed verdict stored exactly once; nothing stored that nobody confirmed;
    no task over its overlap; every task's counter equal to its verdicts; all tasks done."""
    assert not ledger.errors, ledger.errors
    confirmed = sorted(ledger.confirmed)
    keys = [key for *_, key in confirmed]
    assert len(keys) == len(set(keys)), "a client recorded one submission twice"
    rows = sorted((user, task, pk, key.partition(":")[2]) for user, task, pk, key in
                  stored.judgments)
    assert rows == confirmed, "stored judgments differ from what the clients were told"
    per_task = Counter(task for _, task, _, _ in rows)
    for task, done, wanted in stored.tasks:
        assert done <= wanted, f"task {task} has {done} verdicts of {wanted} wanted"
        assert done == per_task[task], f"task {task}: counter {done}, rows {per_task[task]}"
        assert done == wanted, f"task {task} was left unfinished ({done} of {wanted})"
