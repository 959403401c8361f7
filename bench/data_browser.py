"""Data browser render times at 100k judgments: the first page and the 500th.

    python -m bench.data_browser --db sqlite
    python -m bench.data_browser --db postgres --pg-name prefloop_bench_browser

Seeds one pairwise project (``--tasks`` comparisons, default 50,000) and ``--annotators``
verdicts on each (default 2, so 100,000 judgments), written in bulk SQL; then renders
``/p/<slug>/data/`` in-process through Django's test client (the whole view: query,
template, middleware) as the owner, following the page's own keyset "Next page" links
from page 1 to ``--pages`` (default 500). Prints the machine and load average, the
first page's and the last page's time (median of ``--repeat`` renders each), and a
filtered first page (one annotator, low agreement). Target: < 300 ms each.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

TARGET_MS = 300.0
NEXT = re.compile(r'rel="next" href="\?([^"]*)"')


def seed_judgments(*, project, annotators: list) -> int:
    """One verdict per annotator on every task, in SQL; a third of the tasks disagree."""
    from django.db import connection
    from django.utils import timezone

    from annotation.models import Judgment
    from prefloop.rawsql import when

    metadata = "CAST('{}' AS jsonb)" if connection.vendor == "postgresql" else "'{}'"
    now = when(timezone.now())
    with connection.cursor() as cursor:
        for k, user in enumerate(annotators):
            choice = "'a'" if k == 0 else "CASE WHEN id %% 3 = 0 THEN 'b' ELSE 'a' END"
            rationale = "CASE WHEN id %% 10 = 0 THEN 'clearer' ELSE '' END"
            cursor.execute(
                "INSERT INTO annotation_judgment (task_id, annotator_id, choice, strength,"
                f" rationale, shown_left, source, metadata, created_at) SELECT id, %s, {choice},"
                f" 1, {rationale}, 'a', 'human', {metadata}, %s FROM annotation_task"
                " WHERE project_id = %s",
                [user.pk, now, project.pk],
            )
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
    return Judgment.objects.filter(task__project=project).count()


def timed_get(client, url: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.get(url, secure=True)  # production settings redirect plain HTTP
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code}")
    return elapsed, response.content.decode()


def median_ms(client, url: str, repeat: int) -> float:
    return statistics.median(timed_get(client, url)[0] for _ in range(repeat))


def walk(client, base: str, pages: int) -> tuple[str, list[float]]:
    """Follow the "Next page" links to page ``pages``; the URL of that page and the
    time of every page on the way."""
    url, times = base, []
    for _ in range(pages - 1):
        elapsed, html = timed_get(client, url)
        times.append(elapsed)
        found = NEXT.search(html)
        if found is None:
            raise SystemExit(f"no next link after {len(times)} pages: seed more tasks")
        url = f"{base}?{found.group(1).replace('&amp;', '&')}"
    return url, times


def run(args: argparse.Namespace) -> bool:
    from django.test import Client

    from annotation.models import Membership
    from bench.annotate_load import seed

    seeded = seed(tasks=args.tasks, annotators=args.annotators, overlap=args.annotators,
                  lease_seconds=900, slug="browse")
    project, users = seeded["project"], seeded["users"]
    started = time.perf_counter()
    total = seed_judgments(project=project, annotators=users)
    print(f"seeded {args.tasks:,} comparisons, {total:,} judgments "
          f"in {seeded['seconds'] + time.perf_counter() - started:.1f} s")
    owner = users[0]
    Membership.objects.filter(project=project, user=owner).update(role=Membership.Role.OWNER)
    client = Client()
    client.force_login(owner)
    base = f"/p/{project.slug}/data/"
    timed_get(client, base)  # warm-up: templates, connection
    first = median_ms(client, base, args.repeat)
    last_url, on_the_way = walk(client, base, args.pages)
    last = median_ms(client, last_url, args.repeat)
    filtered = f"{base}?annotator={users[1].username}&agreement=low"
    narrowed = median_ms(client, filtered, args.repeat)
    print(
        f"page 1: {first:.1f} ms; page {args.pages}: {last:.1f} ms; pages on the way: "
        f"median {statistics.median(on_the_way):.1f} ms, max {max(on_the_way):.1f} ms"
    )
    print(f"filtered page 1 (annotator + low agreement): {narrowed:.1f} ms")
    ok = max(first, last) < TARGET_MS
    print(f"browser: db={args.db} page1={first:.1f} ms page{args.pages}={last:.1f} ms "
          f"target<{TARGET_MS:g} ms: {'yes' if ok else 'no'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="sqlite")
    parser.add_argument("--pg-name", default="prefloop_bench_browser")
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--annotators", type=int, default=2)
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5, help="renders per timed page")
    args = parser.parse_args(argv)
    from bench import annotate_load

    var_dir = Path(tempfile.mkdtemp(prefix="prefloop-bench-browser-"))
    env = annotate_load.bench_env(args, var_dir)
    os.environ.update(
        {k: env[k] for k in env if k.startswith(("DJANGO", "PREFLOOP", "DATABASE", "CELERY"))}
    )
    print(f"machine: {annotate_load.machine()}")
    annotate_load.database_recreate(args, env)

    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import override_settings

    # Production settings, but static URLs without a collectstatic manifest.
    plain = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    with override_settings(STORAGES=plain):
        ok = run(args)
    print(f"machine: load avg {os.getloadavg()[0]:.1f} at the end")
    return 0 if ok else 3


if __name__ == "__main__":
    raise SystemExit(main())
