"""bench/annotate_load.py end to end, small: gunicorn, real annotators over HTTP, the audit.

The long runs (50 and 200 annotators on 100,000 comparisons) are a documented command
(docs/performance.md); here every task of a small project is judged to exhaustion, so
the last leases are contended and the overlap limit is really tested, on PostgreSQL
and on the embedded SQLite default.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
AUDIT = re.compile(
    r"^audit: submitted=(\d+) stored=(\d+) lost=(\d+) duplicated=(\d+) over_overlap=(\d+)"
    r" judgments/s=([\d.]+)$"
)
SQL = re.compile(r"^SQL statements per judgment: ([\d.]+) \+ ([\d.]+) BEGIN/COMMIT")


def _postgres_up() -> bool:
    import psycopg

    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


def _run(*args: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "bench/annotate_load.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )
    return done.returncode, (done.stdout + done.stderr).strip().splitlines()


def _audit(lines: list[str]) -> dict[str, float]:
    match = AUDIT.match(lines[-1])
    assert match, lines[-20:]
    names = ("submitted", "stored", "lost", "duplicated", "over_overlap", "rate")
    return dict(zip(names, map(float, match.groups()), strict=True))


@pytest.mark.parametrize(
    ("db", "overlap"),
    [("postgres", 2), ("sqlite", 1)],
)
def test_every_task_judged_exactly_to_its_overlap(db, overlap):
    if db == "postgres":
        require(_postgres_up(), "needs PostgreSQL on 127.0.0.1:5432")
    tasks = 150
    pg_name = f"prefloop_bench_test_{os.getpid()}"
    extra = ["--pg-name", pg_name] if db == "postgres" else []
    code, lines = _run(
        "--db", db, "--annotators", "12", "--tasks", str(tasks), "--overlap", str(overlap),
        "--duration", "120", "--sql-samples", "5", "--workers", "2", "--threads", "4", *extra,
    )
    assert code == 0, lines[-20:]
    audit = _audit(lines)
    # Every slot filled, each judgment stored once, none beyond the overlap.
    assert audit["submitted"] == audit["stored"] == tasks * overlap
    assert audit["lost"] == audit["duplicated"] == audit["over_overlap"] == 0
    assert audit["rate"] > 0
    statements = next(SQL.match(line) for line in lines if SQL.match(line))
    assert float(statements.group(1)) <= 10  # next task + submit, whatever the project size
    if db == "postgres":
        import psycopg

        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
        ) as conn:
            conn.execute(
                f'DROP DATABASE IF EXISTS "prefloop_bench_test_{os.getpid()}" WITH (FORCE)'
            )


def test_the_audit_counts_an_acknowledged_judgment_that_is_not_stored_as_lost():
    sys.path.insert(0, str(ROOT))
    from bench.annotate_load import lost_count

    acknowledged = {"bench-0-1": 41, "bench-0-2": 42, "bench-1-3": 43}
    assert lost_count(acknowledged, {"bench-0-1": 41, "bench-0-2": 42, "bench-1-3": 43}) == 0
    assert lost_count(acknowledged, {"bench-0-1": 41, "bench-1-3": 43}) == 1  # missing
    assert lost_count(acknowledged, {"bench-0-1": 41, "bench-0-2": 99, "bench-1-3": 43}) == 1
