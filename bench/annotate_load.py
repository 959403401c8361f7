"""Annotation serving under load: judgments per second, latency per endpoint, and an audit.

Starts gunicorn (``--workers`` processes x ``--threads`` threads, production settings)
on a fresh database seeded with one pairwise project of ``--tasks`` comparisons, then
N simulated annotators (asyncio, one keep-alive connection each, loopback only)
loop over the annotation API until ``--duration`` seconds or ``--max-judgments``
have passed:

- ``--loop combined`` (default): ``POST /api/assignments/<id>/judgment-and-next``,
  the verdict and the next lease in one request (after one ``tasks/next``);
- ``--loop two-call``: ``POST tasks/next`` then ``POST .../judgment``, as a script would.

Load shapes: closed (``--interval 0``, default: each annotator sends its next request
as soon as the last one is answered, which saturates the server) or open
(``--interval 2``: each annotator submits one judgment every 2 s whatever the server
does; latency counts from the scheduled send time, so a server that falls behind is
charged for the queue). Clients send an ``Idempotency-Key`` per assignment and retry a
failed request (connection error or 5xx) with the same key.

Audit, read from the database after the run: every acknowledged judgment is stored
exactly once (by idempotency key), no judgment is stored twice for a task and
annotator, no task has more judgments than its overlap, and ``Task.done_count``
equals the judgments stored. SQL statements per judgment are counted in-process with
Django's test client on the same database (session auth, CSRF and middleware
included; Django does not see the BEGIN/COMMIT that psycopg sends).

    .venv/bin/python bench/annotate_load.py --annotators 50
    .venv/bin/python bench/annotate_load.py --annotators 200 --interval 2 --duration 30
    .venv/bin/python bench/annotate_load.py --db sqlite --annotators 50 --overlap 1
    .venv/bin/python bench/annotate_load.py --lone-annotator   # next task vs history

The last line is ``audit: submitted=N stored=N lost=0 duplicated=0 over_overlap=0
judgments/s=R``; the exit status is 1 when lost, duplicated or over_overlap is not zero
(2 when requests failed for good).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
LABEL_STUDIO_PEAK = 10.8  # annotations/s, ../shared/BENCHMARKS.md (Label Studio 1.23.2, PG)
PASSWORD = "bench-password-not-secret"


# --- set-up -----------------------------------------------------------------------------


def bench_env(args: argparse.Namespace, var_dir: Path) -> dict[str, str]:
    if args.db == "postgres":
        database_url = f"postgres://postgres@127.0.0.1:5432/{args.pg_name}"
    else:
        database_url = f"sqlite:///{var_dir / 'bench.sqlite3'}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "prefloop.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DJANGO_BEHIND_PROXY": "true",
        "PREFLOOP_VAR_DIR": str(var_dir),
        "PREFLOOP_LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": "memory://",
    }


def database_recreate(args: argparse.Namespace, env: dict[str, str]) -> None:
    if args.db == "postgres":
        import psycopg

        with psycopg.connect(
            PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True
        ) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{args.pg_name}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{args.pg_name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT, env=env, check=True,
    )


def seed(
    *, tasks: int, annotators: int, overlap: int, lease_seconds: int, slug: str = "load"
) -> dict:
    """One pairwise project: ``tasks`` prompts, two responses each, one task per pair."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from annotation.models import Membership, Project, Prompt, Response, Task

    started = time.perf_counter()
    project = Project.objects.create(
        slug=slug, name=f"Bench {slug}", overlap=overlap, max_overlap=max(overlap, 5),
        lease_seconds=lease_seconds, allow_tie=True, allow_both_bad=True,
    )
    batch = 5_000
    for lo in range(0, tasks, batch):
        n = min(batch, tasks - lo)
        prompts = Prompt.objects.bulk_create(
            Prompt(
                project=project,
                messages=[{"role": "user", "content": f"Question number {lo + i}?"}],
                content_hash=f"{slug}{lo + i:064d}"[-64:],
            )
            for i in range(n)
        )
        responses = Response.objects.bulk_create(
            Response(prompt=p, text=f"Answer {side} to question {lo + i}.",
                     content_hash=f"{side}{lo + i:063d}", source=Response.Source.IMPORTED)
            for i, p in enumerate(prompts) for side in "ab"
        )
        Task.objects.bulk_create(
            Task(
                project=project, kind=Task.Kind.PAIRWISE, prompt=prompts[i],
                response_a=responses[2 * i], response_b=responses[2 * i + 1],
                pair_key=f"{responses[2 * i].pk}:{responses[2 * i + 1].pk}",
                overlap_wanted=overlap,
            )
            for i in range(n)
        )
    user_model = get_user_model()
    password = make_password(PASSWORD)
    users = user_model.objects.bulk_create(
        user_model(username=f"{slug}-annotator{i:04d}", password=password)
        for i in range(annotators)
    )
    Membership.objects.bulk_create(
        Membership(project=project, user=u, role=Membership.Role.ANNOTATOR) for u in users
    )
    from django.db import connection

    if connection.vendor == "postgresql":  # what autovacuum would do soon, done before the run
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    return {"project": project, "users": users, "seconds": time.perf_counter() - started}


def sessions_for(users: list) -> list[tuple[str, str]]:
    """A logged-in session and a CSRF token per user, made as ``login()`` would."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    out = []
    for user in users:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        out.append((store.session_key, secrets.token_hex(16)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_start(args: argparse.Namespace, env: dict[str, str], port: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "gunicorn", "prefloop.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
        "--worker-class", "gthread", "--threads", str(args.threads),
        "--keep-alive", "75", "--backlog", "2048", "--log-level", "warning",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit("gunicorn exited during start-up") from None
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start within 60 s")


def process_cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def gunicorn_pids(master: int) -> list[int]:
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        children = []
    return [master, *map(int, children)]


def analyze(database: str) -> None:
    """Statistics now that every annotator holds a lease: seeding left the lease table
    empty, and with an empty table's statistics the planner may count a task's leases
    through the per-annotator index. Production gets this from autovacuum."""
    import psycopg

    url = PG_ADMIN_URL.replace("postgres://", "postgresql://").rsplit("/", 1)[0]
    with psycopg.connect(f"{url}/{database}", autocommit=True) as conn:
        conn.execute("ANALYZE annotation_assignment")


def postgres_pids(database: str | None) -> list[int]:
    """PostgreSQL backends serving ``database`` (the server's other work is not ours)."""
    if database is None:
        return []
    import psycopg

    url = PG_ADMIN_URL.replace("postgres://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        ).fetchall()
    return [pid for (pid,) in rows]


# --- the simulated annotators -----------------------------------------------------------


class HttpError(Exception):
    pass


class Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator must cost little CPU."""

    def __init__(self, port: int, cookie: str, csrf: str) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.head = (
            f"Host: 127.0.0.1:{port}\r\nX-Forwarded-Proto: https\r\n"
            f"Origin: https://127.0.0.1:{port}\r\nCookie: sessionid={cookie}; csrftoken={csrf}\r\n"
            f"X-CSRFToken: {csrf}\r\nContent-Type: application/json\r\n"
        )

    async def post(self, path: str, body: dict | None, key: str | None = None) -> tuple[int, dict]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        extra = f"Idempotency-Key: {key}\r\n" if key else ""
        request = (
            f"POST {path} HTTP/1.1\r\n{self.head}{extra}Content-Length: {len(payload)}\r\n\r\n"
        )
        try:
            self.writer.write(request.encode() + payload)
            status_line = await self.reader.readline()
            if not status_line:
                raise HttpError("connection closed")
            status = int(status_line.split()[1])
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                name = name.lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            raw = await self.reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            self.close()
            raise HttpError(str(exc) or type(exc).__name__) from exc
        if close:
            self.close()
        return status, (json.loads(raw) if raw and raw[:1] == b"{" else {})

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Stats:
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    acknowledged: dict[str, int] = field(default_factory=dict)  # idempotency key -> judgment id
    statuses: Counter = field(default_factory=Counter)
    retries: int = 0
    failures: int = 0
    judgments: int = 0


class Budget:
    def __init__(self, limit: int, deadline: float) -> None:
        self.left, self.deadline = limit, deadline

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


CHOICES = ("left", "right", "left", "right", "tie", "both_bad")


async def call(conn: Connection, stats: Stats, name: str, path: str, body, key, since: float):
    """POST with retries on connection errors and 5xx (same idempotency key)."""
    for attempt in range(6):
        try:
            status, data = await conn.post(path, body, key)
        except HttpError:
            status, data = 0, {}
        stats.statuses[f"{name} {status}"] += 1
        if status and status < 500:
            stats.latency[name].append(time.monotonic() - since)
            return status, data
        stats.retries += 1
        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
    stats.failures += 1
    return None, {}


NEXT_PATH = "/api/projects/load/tasks/next"


async def first_lease(conn: Connection) -> dict | None:
    """Untimed warm-up: every worker thread has served the API once, every annotator
    holds a lease, before the clock starts."""
    status, data = await conn.post(NEXT_PATH, None)
    return data if status == 200 else None


async def annotator(
    index: int, conn: Connection, args: argparse.Namespace, stats: Stats, budget: Budget,
    start: float, assignment: dict | None,
) -> None:
    rng = random.Random(index)
    next_path = NEXT_PATH
    interval = args.interval
    tick = start + (rng.random() * interval if interval else 0)
    while True:
        if interval:
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
        if not budget.take():
            break
        since = tick if interval else time.monotonic()
        if assignment is None:
            status, data = await call(conn, stats, "tasks/next", next_path, None, None, since)
            if status != 200:
                break  # 204: nothing left for this annotator (or failed for good)
            assignment = data
        choice = CHOICES[rng.randrange(len(CHOICES))]
        body = {"choice": choice, "strength": 1 + rng.randrange(3), "time_spent_ms": 1500}
        key = f"bench-{index}-{assignment['assignment_id']}"
        if args.loop == "combined":
            path = f"/api/assignments/{assignment['assignment_id']}/judgment-and-next"
            status, data = await call(conn, stats, "judgment-and-next", path, body, key, since)
            verdict = data.get("judgment", {})
            assignment = data.get("next")
        else:
            path = f"/api/assignments/{assignment['assignment_id']}/judgment"
            status, data = await call(conn, stats, "judgment", path, body, key, since)
            verdict, assignment = data, None
        if status in (200, 201):
            stats.acknowledged[key] = verdict["id"]
            stats.judgments += 1
        elif status is None:
            break
        if args.loop == "combined" and status in (200, 201) and assignment is None:
            break  # nothing left
        if status not in (200, 201):
            assignment = None  # 409 etc.: ask for a fresh task
        tick += interval


async def drive(
    args: argparse.Namespace, port: int, sessions: list[tuple[str, str]], on_start
) -> tuple[Stats, float]:
    stats = Stats()
    conns = [Connection(port, cookie, csrf) for cookie, csrf in sessions]
    leases = []
    for lo in range(0, len(conns), 10):  # a few at a time: the warm-up is not a stampede
        leases += await asyncio.gather(*(first_lease(c) for c in conns[lo : lo + 10]))
    on_start()  # CPU counters start after the warm-up
    start = time.monotonic()
    budget = Budget(args.max_judgments, start + args.duration)
    await asyncio.gather(
        *(annotator(i, c, args, stats, budget, start, leases[i]) for i, c in enumerate(conns))
    )
    elapsed = time.monotonic() - start
    for c in conns:
        c.close()
    return stats, elapsed


# --- audit and query count --------------------------------------------------------------


def lost_count(acknowledged: dict[str, int], stored: dict[str, int]) -> int:
    """Acknowledged judgments (key -> id the server answered) not stored under that id."""
    return sum(1 for key, pk in acknowledged.items() if stored.get(key) != pk)


def audit(project, stats: Stats) -> dict[str, int]:
    from django.db.models import Count, F

    from annotation.models import Judgment, Task

    stored = Judgment.objects.filter(task__project=project)
    by_key = dict(stored.filter(idempotency_key__isnull=False).values_list("idempotency_key", "pk"))
    keys_stored = {k.split(":", 1)[1]: pk for k, pk in by_key.items()}
    lost = lost_count(stats.acknowledged, keys_stored)
    duplicated = stored.values("task", "annotator").annotate(n=Count("pk")).filter(n__gt=1).count()
    per_task = Task.objects.filter(project=project).annotate(n=Count("judgments"))
    over = per_task.filter(n__gt=F("overlap_wanted")).count()
    drift = per_task.exclude(n=F("done_count")).count()
    return {
        "submitted": len(stats.acknowledged),
        "stored": stored.count(),
        "lost": lost,
        "duplicated": duplicated,
        "over_overlap": over,
        "counter_drift": drift,
    }


def sql_per_judgment(samples: int) -> tuple[float, float]:
    """Statements Django sends for one judgment, over ``samples`` judgments (in-process),
    in a project of its own (``sqlcount``) so the audit is untouched. Returns
    ``(statements, transaction control)`` per judgment for the combined and the two-call loop."""
    user = seed(
        tasks=max(3 * samples, 10), annotators=1, overlap=1, lease_seconds=900, slug="sqlcount"
    )
    user = user["users"][0]
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    kwargs = {"secure": True, "content_type": "application/json"}
    first = client.post("/api/projects/sqlcount/tasks/next", **kwargs).json()
    with CaptureQueriesContext(connection) as combined:
        assignment = first
        for _ in range(samples):
            path = f"/api/assignments/{assignment['assignment_id']}/judgment-and-next"
            assignment = client.post(path, {"choice": "left"}, **kwargs).json()["next"]
    with CaptureQueriesContext(connection) as two_call:
        for _ in range(samples):
            task = client.post("/api/projects/sqlcount/tasks/next", **kwargs).json()
            client.post(f"/api/assignments/{task['assignment_id']}/judgment",
                        {"choice": "right"}, **kwargs)
    return _split(combined, samples), _split(two_call, samples)


def _split(captured, samples: int) -> tuple[float, float]:
    words = [(q["sql"] or "?").split(None, 1)[0].upper() for q in captured.captured_queries]
    control = sum(1 for w in words if w in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))
    n = max(samples, 1)
    return (len(captured) - control) / n, control / n


# --- report -----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> str:
    from bench.machine import cpu_model

    cpu = cpu_model()
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} (load avg {load:.1f} at start)"


def lone_annotator(args: argparse.Namespace) -> int:
    """In-process, no server: see ``bench/annotate_history.py``. Exit 3 if not flat."""
    var_dir = Path(tempfile.mkdtemp(prefix="prefloop-bench-lone-"))
    env = bench_env(args, var_dir)
    os.environ.update(
        {k: env[k] for k in env if k.startswith(("DJANGO", "PREFLOOP", "DATABASE", "CELERY"))}
    )
    print(f"machine: {machine()}")
    print(f"database: {args.db}; one annotator alone, overlap 2, in-process services")
    database_recreate(args, env)

    import django

    django.setup()
    from bench import annotate_history

    histories = [int(h) for h in args.histories.split(",")]
    flat = annotate_history.run(histories=histories, calls=args.calls, seed=seed)
    return 0 if flat else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=100_000, help="pairwise comparisons")
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--max-judgments", type=int, default=1_000_000)
    parser.add_argument(
        "--interval", type=float, default=0.0, help="seconds between judgments (0: closed loop)"
    )
    parser.add_argument("--loop", choices=["combined", "two-call"], default="combined")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--pg-name", default="prefloop_bench")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--lease-seconds", type=int, default=900)
    parser.add_argument("--sql-samples", type=int, default=20, help="judgments to count SQL on")
    parser.add_argument(
        "--lone-annotator", action="store_true",
        help="next-task cost against one annotator's history (bench/annotate_history.py)",
    )
    parser.add_argument("--histories", default="100,10000,50000", help="past judgments")
    parser.add_argument("--calls", type=int, default=200, help="timed next-task calls")
    args = parser.parse_args(argv)
    if args.lone_annotator:
        return lone_annotator(args)

    var_dir = Path(tempfile.mkdtemp(prefix="prefloop-bench-load-"))
    env = bench_env(args, var_dir)
    os.environ.update(
        {k: env[k] for k in env if k.startswith(("DJANGO", "PREFLOOP", "DATABASE", "CELERY"))}
    )
    print(f"machine: {machine()}")
    shape = f"open, 1 judgment / {args.interval:g} s each" if args.interval else "closed"
    print(f"database: {args.db}; gunicorn {args.workers} workers x {args.threads} threads; "
          f"{args.annotators} annotators, {args.loop} loop, {shape}")
    database_recreate(args, env)

    import django

    django.setup()
    seeded = seed(tasks=args.tasks, annotators=args.annotators, overlap=args.overlap,
                  lease_seconds=args.lease_seconds)
    users = seeded["users"]
    print(
        f"seeded {args.tasks:,} comparisons (overlap {args.overlap}) in {seeded['seconds']:.1f} s"
    )
    sessions = sessions_for(users[: args.annotators])
    from django.db import connection

    connection.close()  # the server gets the database to itself during the run

    port = free_port()
    server = gunicorn_start(args, env, port)
    try:
        database = args.pg_name if args.db == "postgres" else None
        cpu0: dict[str, float] = {}
        backends0: dict[int, float] = {}

        def counters() -> dict[str, float]:
            return {
                "server": process_cpu_seconds(gunicorn_pids(server.pid)),
                "client": time.process_time(),
            }

        def on_start() -> None:
            if database:  # statistics of a warm system (autovacuum's job, within a minute)
                analyze(database)
            cpu0.update(counters())
            backends0.update({pid: process_cpu_seconds([pid]) for pid in postgres_pids(database)})

        stats, elapsed = asyncio.run(drive(args, port, sessions, on_start))
        cpu = {k: v - cpu0[k] for k, v in counters().items()}
        server_cpu, client_cpu = cpu["server"], cpu["client"]
        pg_cpu = sum(
            process_cpu_seconds([pid]) - backends0.get(pid, 0.0) for pid in postgres_pids(database)
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    rate = stats.judgments / elapsed if elapsed else 0.0
    print(f"\n{stats.judgments:,} judgments in {elapsed:.1f} s: {rate:,.1f} judgments/s")
    print(f"{'endpoint':<20}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, values in sorted(stats.latency.items()):
        row = [percentile(values, q) * 1000 for q in (0.5, 0.95, 0.99)] + [max(values) * 1000]
        print(f"{name:<20}{len(values):>9,}" + "".join(f"{v:>9.1f}" for v in row))
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(stats.statuses.items()))
    print(f"responses: {statuses}; retries {stats.retries}, failed for good {stats.failures}")
    per = 1000 / max(stats.judgments, 1)
    print(f"CPU per judgment: server {server_cpu * per:.2f} ms, PostgreSQL "
          f"{pg_cpu * per if args.db == 'postgres' else 0:.2f} ms, load generator "
          f"{client_cpu * per:.2f} ms")

    report = audit(seeded["project"], stats)
    (c_sql, c_tx), (t_sql, t_tx) = sql_per_judgment(args.sql_samples)
    print(f"SQL statements per judgment: {c_sql:.1f} + {c_tx:.1f} BEGIN/COMMIT "
          f"(judgment-and-next); {t_sql:.1f} + {t_tx:.1f} (tasks/next, judgment)")
    print(f"task counters out of step with stored judgments: {report['counter_drift']}")
    print(f"vs Label Studio 1.23.2 peak on PostgreSQL ({LABEL_STUDIO_PEAK}/s, BENCHMARKS.md): "
          f"{rate / LABEL_STUDIO_PEAK:.1f}x")
    print(
        f"audit: submitted={report['submitted']} stored={report['stored']}"
        f" lost={report['lost']} duplicated={report['duplicated']}"
        f" over_overlap={report['over_overlap']} judgments/s={rate:.1f}"
    )
    if report["lost"] or report["duplicated"] or report["over_overlap"] or report["counter_drift"]:
        return 1
    return 2 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
