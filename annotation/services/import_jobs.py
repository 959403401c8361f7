"""Background imports (``ImportJob``): the request validates, a worker writes.

An upload that would write more than ``PREFLOOP_IMPORT_SYNC_MAX_WRITES`` rows + tasks is
validated in the request as usual (a bad file is still refused at once, with every bad
line), then stored under ``VAR_DIR/imports/`` and written by ``annotation.tasks.
import_job_run`` in batches of ``PREFLOOP_IMPORT_BATCH_SECONDS``. Each batch commits
with the job's progress (``rows_done`` and the report so far), so a job whose worker was
lost resumes after its last batch (``prefloop.jobs`` requeues it), a cancel stops it
between batches, and annotators keep working meanwhile.

Because earlier batches are committed, a row that contradicts a verdict stored in the
database is reported and skipped (as with ``partial``) instead of undoing the import.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.import_models import ImportJob
from annotation.models import Project
from annotation.services import import_rows, imports
from prefloop import jobs
from prefloop.exceptions import ApplicationError, NotFoundError


def import_job_create(
    *,
    project: Project,
    path: Path,
    fmt: str,
    partial: bool,
    source_name: str,
    rows: int,
    tasks_planned: int,
    created_by: AbstractBaseUser | None = None,
) -> ImportJob:
    """Keep a copy of the validated file and enqueue the job that writes it."""
    folder = Path(settings.VAR_DIR) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    stored = folder / f"{uuid.uuid4().hex}{path.suffix}"
    shutil.copyfile(path, stored)
    with transaction.atomic():
        job = ImportJob.objects.create(
            project=project, source_name=source_name[:255], format=fmt, partial=partial,
            path=str(stored), rows_total=rows, tasks_planned=tasks_planned,
            created_by=created_by if getattr(created_by, "pk", None) else None,
        )
        jobs.enqueue(job)
    return job


def import_job_get(*, project: Project, pk: int) -> ImportJob:
    job = ImportJob.objects.filter(project=project, pk=pk).first()
    if job is None:
        raise NotFoundError("no such import job in this project")
    return job


def import_job_cancel(*, project: Project, pk: int) -> ImportJob:
    """A pending job ends cancelled now, a running one after its current batch."""
    job = import_job_get(project=project, pk=pk)
    job = jobs.cancel(ImportJob, job.pk)
    if job.status in ImportJob.TERMINAL and job.status == jobs.JobStatus.CANCELLED:
        Path(job.path).unlink(missing_ok=True)
    return job


def import_job_run(*, job_id: int) -> ImportJob:
    """The worker's side: write the stored file after the last committed batch."""
    with jobs.job_running(ImportJob, job_id, failing_on=(ApplicationError,)) as run:
        if run.claimed:
            report = _write(run)
            run.end(status=jobs.JobStatus.SUCCEEDED, report=report, rows_done=run.job.rows_total)
    if run.job.status in ImportJob.TERMINAL:
        Path(run.job.path).unlink(missing_ok=True)
    return run.job


def _write(run: jobs.Running) -> dict:
    job: ImportJob = run.job
    validation = imports.file_check(Path(job.path), job.format, imports.import_limits())
    before, conflicts = _counts_of(job.report), list(job.report.get("conflicts", []))

    def progress(done: int, counts: Counter, issues: list) -> None:
        run.stop_if_cancelled()  # raises inside the batch: its rows roll back with it
        report = _report(validation, before + counts, conflicts + issues, done)
        ImportJob.objects.filter(pk=job.pk).update(rows_done=done, report=report)

    counts, issues = import_rows.rows_write_batched(
        project=job.project, rows=validation.rows, source=job.source_name,
        batch_seconds=settings.PREFLOOP_IMPORT_BATCH_SECONDS, start=job.rows_done,
        on_batch=progress,
    )
    return _report(validation, before + counts, conflicts + issues, len(validation.rows))


def _report(validation, counts: Counter, conflicts: list, done: int) -> dict:
    report = imports.report_start(validation)
    report = imports.report_finish(report, rows=done, counts=counts, issues=conflicts)
    return {**report.as_dict(), "conflicts": conflicts}


def _counts_of(report: dict) -> Counter:
    counts: Counter = Counter()
    for flag, name in ((True, "created"), (False, "existing")):
        for entity, n in report.get(name, {}).items():
            counts[(entity, flag)] = n
    return counts
