"""Jobs: long-running work with one lifecycle (see docs/architecture.md, "Jobs").

A job is a row of a concrete subclass of the abstract :class:`Job` model
(``prefloop.jobs.models``): ``status`` (``JobStatus``: pending, running, succeeded,
failed, cancelled), ``error``, ``cancel_requested``, ``attempts``, ``worker``,
``heartbeat_at``, ``celery_task_id``, ``created_by`` and the ``created_at`` /
``started_at`` / ``finished_at`` timestamps. The model names the Celery task that runs
it in ``task_name``; that task is declared ``@house_task(job=TheModel, ...)`` and takes
the job's primary key as its only keyword argument.

The API (``prefloop.jobs.lifecycle``; every write locks the row, and a finished job is
never changed again):

- ``enqueue(job)``: new Celery task id, message sent after commit; a broker that refuses
  fails the job with the reason and raises ``QueueUnavailableError`` (HTTP 503).
- ``claim(Model, pk, where=None) -> Job | None``: pending (or requeued) → running in this
  worker, ``attempts`` + 1, first heartbeat. None when there is nothing to run: finished,
  cancel requested (ends cancelled), attempts used up (ends failed, with the reason), or
  running under another live worker (a duplicate message).
- ``heartbeat(Model, pk)``: a context that touches ``heartbeat_at`` from a thread.
- ``finish(Model, pk, status=SUCCEEDED, error="", **fields)`` and ``fail(Model, pk,
  reason=...)``.
- ``cancel(Model, pk, at_once=False)``: a job not running ends cancelled at once, a
  running one at its next ``stop_if_cancelled`` check; a finished one comes back as is.
- ``job_running(Model, pk, failing_on=(...))``: claim, beat and finish around a task's
  body::

      with job_running(MyJob, job_id, failing_on=(MyDomainError,)) as run:
          if run.claimed:
              for batch in batches:
                  run.stop_if_cancelled()      # raises Cancelled -> ends cancelled
                  do(batch)                    # MyDomainError -> ends failed, message kept
      return run.job                           # ends succeeded (or run.end(status=...))

  ``job_run(MyJob, job_id, body, failing_on=(...))`` is that block around ``body(run)``.

- ``orphans_recover()`` (``prefloop.jobs.recovery``): a running job whose worker process
  is gone or whose heartbeat is older than ``PREFLOOP_JOB_STALE_S`` is requeued (or
  failed after ``PREFLOOP_JOB_MAX_ATTEMPTS`` starts). It finds every concrete ``Job``
  subclass itself; run at worker start and from beat (``prefloop.tasks``).

The task's error policy (soft time limit, transient errors retried with bounded
backoff, anything else recorded as the failure and raised) is ``house_task``'s
(``prefloop.celery``), once for every job kind.
"""

from prefloop.jobs.lifecycle import (
    Cancelled,
    Running,
    cancel,
    claim,
    enqueue,
    fail,
    finish,
    heartbeat,
    job_run,
    job_running,
    release,
)
from prefloop.jobs.models import Job, JobStatus
from prefloop.jobs.recovery import (
    Recovered,
    attempts_exhausted,
    job_models,
    orphan_reason,
    orphans_recover,
    process_gone,
    worker_id,
)

__all__ = [
    "Cancelled",
    "Job",
    "JobStatus",
    "Recovered",
    "Running",
    "attempts_exhausted",
    "cancel",
    "claim",
    "enqueue",
    "fail",
    "finish",
    "heartbeat",
    "job_models",
    "job_run",
    "job_running",
    "orphan_reason",
    "orphans_recover",
    "process_gone",
    "release",
    "worker_id",
]
