"""Next-task cost against an annotator's history: ``annotate_load.py --lone-annotator``.

One annotator alone on an overlap-2 project: every task they judged still waits for a
second annotator, so it stays open in the queue. For each history size (``--histories``,
default 100, 10,000 and 50,000 past judgments) a project of its own is seeded, the
history written directly in SQL (assignments done, judgments stored, ``done_count`` 1,
queue positions in judgment order), then ``--calls`` rounds of next task + judgment run
in-process through the services, interleaved across the sizes so that the machine's
load falls on each alike. Only the next-task call is timed. The last line is

    lone: history=100 p50=X ms, history=10000 p50=Y ms, ... flat=yes|no (within 2 ms)

``flat`` says whether every size's median is within 2 ms of the smallest history's.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

FLAT_MS = 2.0


def history_seed(*, project, annotator, size: int) -> None:
    """``size`` past judgments of ``annotator`` on the project's first tasks, in SQL."""
    from django.db import connection
    from django.utils import timezone

    from annotation.models import Task
    from prefloop.rawsql import when

    if size == 0:
        return
    last_id = Task.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)[
        size - 1
    ]
    now = timezone.now()
    then = now - timedelta(hours=1)
    base_us = int(then.timestamp() * 1_000_000)
    metadata = "CAST('{}' AS jsonb)" if connection.vendor == "postgresql" else "'{}'"
    scope = "FROM annotation_task WHERE project_id = %s AND id <= %s"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO annotation_assignment (task_id, annotator_id, status, left_is_a,"
            " leased_at, expires_at, finished_at) SELECT id, %s, 'done', %s, %s, %s, %s "
            + scope,
            [annotator.pk, True, when(then), when(then), when(then), project.pk, last_id],
        )
        cursor.execute(
            "INSERT INTO annotation_judgment (task_id, annotator_id, choice, strength,"
            " rationale, shown_left, source, metadata, created_at)"
            f" SELECT id, %s, 'a', 1, '', 'a', 'human', {metadata}, %s " + scope,
            [annotator.pk, when(then), project.pk, last_id],
        )
        cursor.execute(
            "UPDATE annotation_task SET done_count = 1, queue_key = %s + id"
            " WHERE project_id = %s AND id <= %s",
            [base_us, project.pk, last_id],
        )


def next_task_time(*, project, annotator) -> float:
    """Seconds for one ``task_next_for_annotator`` call, then the verdict (untimed)."""
    from annotation.services.assignment import task_next_for_annotator
    from annotation.services.judgments import judgment_submit

    started = time.perf_counter()
    assignment = task_next_for_annotator(project=project, annotator=annotator)
    elapsed = time.perf_counter() - started
    if assignment is None:
        raise SystemExit("the lone annotator ran out of tasks: raise --calls' margin")
    judgment_submit(assignment=assignment, annotator=annotator, choice="a")
    return elapsed


def run(*, histories: list[int], calls: int, seed) -> bool:
    """Seed every history size, then time the calls interleaved (one per size in turn, so
    the machine's load falls on every size alike); prints one line each and a summary."""
    from django.db import connection

    worlds = {}
    for size in histories:
        seeded = seed(
            tasks=size + calls + 20, annotators=1, overlap=2, lease_seconds=900,
            slug=f"lone{size}",
        )
        worlds[size] = (seeded["project"], seeded["users"][0])
        history_seed(project=worlds[size][0], annotator=worlds[size][1], size=size)
    if connection.vendor == "postgresql":  # autovacuum's statistics
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    times: dict[int, list[float]] = {size: [] for size in histories}
    for call in range(calls + 5):
        for size, (project, annotator) in worlds.items():
            elapsed = next_task_time(project=project, annotator=annotator) * 1000
            if call >= 5:  # the first calls warm up (the first walks from the head)
                times[size].append(elapsed)
    medians = {size: statistics.median(values) for size, values in times.items()}
    for size, values in times.items():
        print(
            f"history={size:>6,}: next task p50 {medians[size]:.3f} ms, mean "
            f"{statistics.fmean(values):.3f} ms, max {max(values):.3f} ms ({calls} calls)"
        )
    base = medians[histories[0]]
    flat = all(m - base <= FLAT_MS for m in medians.values())
    figures = ", ".join(f"history={size} p50={m:.3f} ms" for size, m in medians.items())
    print(f"lone: {figures} flat={'yes' if flat else 'no'} (within {FLAT_MS:g} ms)")
    return flat
