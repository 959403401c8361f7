"""Bounded work (issue 14): each figure before (the unbounded behaviour, reproduced in this
run) and after (what the code does now), on one machine, in one run.

- import: one 4 KB row with 260 responses. Before: written uncapped (33,930 tasks) in one
  transaction, which holds SQLite's write lock throughout. After: refused by
  PREFLOOP_IMPORT_MAX_RESPONSES_PER_ROW; and the same uncapped work written in batches
  (the longest transaction is what another annotator can wait for).
- leaderboard: ten model versions, each judged against its parent (the shape of iterative
  rounds). Before: Hunter's MM fit (the old code, kept here for comparison) and 200
  bootstrap refits per page load. After: the Newton fit, the uncached computation, and the
  page's read from the cache.
- CSV header of 100k columns: before, a ``list.count`` per column (measured on fewer
  columns, extrapolated as n²); after, one pass.
- Cohen's kappa over 400 annotators: every pair, against the pairs capped at
  PREFLOOP_AGREEMENT_MAX_PAIR_ANNOTATORS.

    .venv/bin/python bench/bounded_work.py            # SQLite in a scratch folder
    .venv/bin/python bench/bounded_work.py --responses 120   # a shorter "before" import
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def django_setup(var_dir: str) -> None:
    os.environ["PREFLOOP_VAR_DIR"] = var_dir
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prefloop.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def timed(func, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - start, result


def bench_import(n_responses: int) -> None:
    import json

    from django.conf import settings

    from annotation.io.validate import ImportLimits, file_validate
    from annotation.services import import_rows, imports, projects
    from tests.annotation import user_build

    owner = user_build("bench-owner")
    path = Path(tempfile.mkdtemp()) / "wide.jsonl"
    row = {"prompt": "Which?", "responses": [f"r{i}" for i in range(n_responses)]}
    path.write_text(json.dumps(row) + "\n")
    print(f"import row: {path.stat().st_size:,} bytes, {n_responses} responses")
    project = projects.project_create(slug="bench-capped", owner=owner, binary_enabled=True)
    seconds, report = timed(imports.import_file, project=project, path=path)
    print(f"  after  refused: {seconds * 1000:8.1f} ms  ({report.errors[0]['reason'][:60]}...)")

    settings.PREFLOOP_IMPORT_MAX_TASKS = 10**9
    uncapped = ImportLimits(max_bytes=10**9, max_responses_per_row=10**6)
    rows = file_validate(path, limits=uncapped).rows
    for batched in (False, True):
        slug = f"bench-{'batched' if batched else 'one-tx'}"
        target = projects.project_create(slug=slug, owner=owner, binary_enabled=True)
        commits = [time.monotonic()]
        start = time.perf_counter()
        if batched:
            import_rows.rows_write_batched(
                project=target, rows=rows, source="bench",
                batch_seconds=settings.PREFLOOP_IMPORT_BATCH_SECONDS,
                on_batch=lambda *_, log=commits: log.append(time.monotonic()),
            )
            commits.append(time.monotonic())
        else:
            from django.db import transaction

            with transaction.atomic():
                counts, _ = import_rows.rows_write(target, rows, "bench")
            commits.append(time.monotonic())
        total = time.perf_counter() - start
        longest = max(b - a for a, b in zip(commits, commits[1:], strict=False))
        tasks = target.tasks.count()
        label = "batched " if batched else "one tx  "
        print(f"  before {label}: {total:8.1f} s for {tasks:,} tasks; "
              f"longest write transaction {longest:6.2f} s")


def mm_fit(first, second, score, n_models, prior=0.1, max_iter=10_000, tol=1e-10):
    """The previous fit (Hunter's MM), for the 'before' figure: (ratings, iterations)."""
    import numpy as np

    wins = np.zeros((n_models, n_models))
    np.add.at(wins, (first, second), score)
    np.add.at(wins, (second, first), 1.0 - score)
    wins += prior / 2 * (1.0 - np.eye(n_models))
    games, total, p = wins + wins.T, wins.sum(axis=1), np.ones(n_models)
    for iteration in range(1, max_iter + 1):
        new = total / (games / (p[:, None] + p[None, :])).sum(axis=1)
        new /= np.exp(np.mean(np.log(new)))
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            return 1000 + 400 * np.log10(p), iteration
    return 1000 + 400 * np.log10(p), max_iter


def bench_leaderboard(games_per_link: int) -> None:
    import numpy as np

    from annotation.models import Judgment
    from annotation.selectors import leaderboard
    from annotation.services import leaderboard as cached
    from annotation.services import projects
    from generation.models import ModelVersion
    from tests.annotation import pairwise_tasks_build, user_build

    owner, judge = user_build("lb-owner"), user_build("lb-judge")
    project = projects.project_create(slug="bench-lb", owner=owner, overlap=1)
    versions = [ModelVersion.objects.create(name=f"round-{k}", source=f"/m/{k}") for k in range(10)]
    rng = np.random.default_rng(0)
    judgments = []
    for k in range(1, 10):
        tasks = pairwise_tasks_build(project=project, n=games_per_link, start=k * 10_000,
                                     model_versions=(versions[k], versions[k - 1]))
        for task in tasks:
            draw = rng.random()
            choice = "a" if draw < 0.98 else ("tie" if draw < 0.99 else "b")
            judgments.append(Judgment(task=task, annotator=judge, choice=choice))
    Judgment.objects.bulk_create(judgments)
    print(f"leaderboard: 10 versions, {len(judgments):,} judgments (each version vs its parent)")
    rows = leaderboard._games(project=project, sources=leaderboard.DEFAULT_SOURCES)
    ids = sorted({r[1] for r in rows} | {r[3] for r in rows})
    games, _ = leaderboard._tally(rows, {mv: k for k, mv in enumerate(ids)})
    first, second, score = (np.array(c) for c in zip(*games, strict=True))
    args = {"first": first, "second": second, "score": score, "n_models": 10}
    old_s, (_, old_iters) = timed(mm_fit, first, second, score, 10)
    new_s, fit = timed(leaderboard.bradley_terry_solve, **args)
    print(f"  before fit (MM):      {old_s * 1000:8.1f} ms, {old_iters:,} iterations "
          f"(x201 with ?bootstrap=200: {old_s * 201:.1f} s per page load)")
    print(f"  after  fit (Newton):  {new_s * 1000:8.1f} ms, {fit.iterations} iterations, "
          f"converged={fit.converged}")
    uncached, _ = timed(leaderboard.leaderboard_get, project=project, bootstrap=200)
    print(f"  after  uncached board with 200 bootstrap refits: {uncached * 1000:8.1f} ms")
    refresh, _ = timed(cached.leaderboard_refresh, project=project, bootstrap=200, seed=0)
    reads = []
    for _ in range(20):
        seconds, board = timed(cached.leaderboard_cached, project=project)
        reads.append(seconds)
    assert board.intervals == cached.CURRENT
    reads.sort()
    print(f"  after  cached read (page/API): median {reads[10] * 1000:6.1f} ms, "
          f"max {reads[-1] * 1000:6.1f} ms (refresh task: {refresh * 1000:.0f} ms, once "
          "per data version)")


def old_header_check(columns: list[str]) -> list[str]:
    return sorted({name for name in columns if columns.count(name) > 1})


def bench_csv_header(n_columns: int, n_old: int) -> None:
    from annotation.io import readers

    path = Path(tempfile.mkdtemp()) / "wide.csv"
    names = [f"c{i}" for i in range(n_columns)]
    path.write_text(",".join(names) + "\n" + ",".join("x" * n_columns) + "\n")
    new_s, records = timed(lambda: list(readers.csv_records(path)))
    old_s, _ = timed(old_header_check, names[:n_old])
    scale = (n_columns / n_old) ** 2
    print(f"csv header: {n_columns:,} columns")
    print(f"  before (count per column): {old_s:8.2f} s at {n_old:,} columns, "
          f"~{old_s * scale:.0f} s at {n_columns:,} (n²)")
    print(f"  after  (one pass, whole file read): {new_s * 1000:8.1f} ms ({len(records)} row)")


def bench_kappa(n_annotators: int) -> None:
    from django.conf import settings

    from annotation.selectors import agreement
    from annotation.selectors.agreement import PAIRWISE_CATEGORIES, Verdict

    verdicts = [
        Verdict(t, a, f"a{a:04d}", "ab"[(a * 7 + t) % 3 == 0], 1, "a", None, False, "")
        for a in range(n_annotators)
        for t in range(30)
    ]
    limit = settings.PREFLOOP_AGREEMENT_MAX_PAIR_ANNOTATORS
    all_s, pairs = timed(agreement.cohen_kappa_pairs, verdicts=verdicts,
                         categories=PAIRWISE_CATEGORIES)
    cap_s, capped = timed(agreement.cohen_kappa_pairs, verdicts=verdicts,
                          categories=PAIRWISE_CATEGORIES, max_annotators=limit)
    print(f"cohen kappa: {n_annotators} annotators x 30 shared tasks")
    print(f"  before every pair:   {all_s:8.2f} s ({len(pairs):,} pairs)")
    print(f"  after  capped at {limit}: {cap_s:8.2f} s ({len(capped):,} pairs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--responses", type=int, default=260)
    parser.add_argument("--games-per-link", type=int, default=200)
    parser.add_argument("--columns", type=int, default=100_000)
    parser.add_argument("--old-columns", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=400)
    options = parser.parse_args()
    from bench.machine import cpu_model

    with tempfile.TemporaryDirectory(prefix="prefloop-bounded-") as var_dir:
        django_setup(var_dir)
        print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, SQLite")
        bench_import(options.responses)
        bench_leaderboard(options.games_per_link)
        bench_csv_header(options.columns, options.old_columns)
        bench_kappa(options.annotators)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average at the end: {load}")


if __name__ == "__main__":
    main()
