"""Feedback jobs: per-batch transactions (a crash leaves no half-written labels and a re-run
continues), cancel and retry, routing to the human queue, slots, selection, enqueueing,
and a constitutional judge end to end on the tiny model (transformers backend)."""

from __future__ import annotations

import pytest

from annotation.models import Judgment, Task
from annotation.services import judgments as judgment_services
from annotation.services.assignment import task_next_for_annotator
from annotation.services.projects import annotator_user_get_or_create, project_create
from generation import services as generation_services
from generation.feedback import runner, store, tasks
from generation.feedback.judges.programmatic import demo_capital_score
from generation.feedback.models import FeedbackJob, FeedbackLabel
from generation.feedback.services import jobs, judges
from generation.models import GeneratedSample, GenerationJob
from prefloop.exceptions import ApplicationError
from tests.support.feedback import DEMO_JUDGE, demo_pairs, human

pytestmark = pytest.mark.django_db
FLAKY = {"calls": 0, "crash_after": None}
FLAKY_JUDGE = "programmatic:tests.generation.test_feedback_jobs.flaky_score"


def flaky_score(*, messages, response, metadata):
    """The demo checker, except that it raises once it has scored ``crash_after`` answers."""
    FLAKY["calls"] += 1
    if FLAKY["crash_after"] is not None and FLAKY["calls"] > FLAKY["crash_after"]:
        raise RuntimeError("the judge fell over")
    return demo_capital_score(messages=messages, response=response, metadata=metadata)


@pytest.fixture
def owner(make_user):
    return make_user("owner")


@pytest.fixture
def project(owner):
    return project_create(slug="fb", owner=owner)


@pytest.fixture(autouse=True)
def reset_flaky():
    FLAKY.update(calls=0, crash_after=None)


def create(project, spec=DEMO_JUDGE, **options):
    options.setdefault("batch_size", 5)
    return jobs.feedback_job_create(project=project, judge=judges.judge_from_spec(spec=spec),
                                    enqueue=False, **options)


def test_a_judge_crashing_mid_job_writes_nothing_of_that_batch_and_a_retry_continues(project):
    demo_pairs(project, count=12, mixed_only=True)
    job = create(project, spec=FLAKY_JUDGE)
    FLAKY["crash_after"] = 2 * 5 + 4  # batch 1 (5 pairs) fine, batch 2 dies on its 3rd pair
    job = runner.feedback_job_run(job_id=job.pk)
    assert job.status == "failed" and "the judge fell over" in job.error
    assert (job.batches_done, job.done, job.labelled) == (1, 5, 5)
    assert FeedbackLabel.objects.count() == Judgment.objects.count() == 5
    labelled_first = set(FeedbackLabel.objects.values_list("task_id", flat=True))
    assert labelled_first == set(job.item_ids[:5])
    FLAKY["crash_after"] = None
    job = runner.feedback_job_run(job_id=jobs.feedback_job_retry(job=job).pk)
    assert job.status == "succeeded" and job.attempts == 2
    assert (job.batches_done, job.done, job.labelled) == (3, 12, 12)
    assert FeedbackLabel.objects.count() == Judgment.objects.count() == 12
    assert FLAKY["calls"] == 15 + 2 * 7  # 15th call raised; batch 1 was not judged again


def test_a_crash_while_storing_a_batch_rolls_the_batch_back(project, monkeypatch):
    demo_pairs(project, count=12, mixed_only=True)
    job = create(project)
    real, calls = store.label_record, []

    def dies_on_the_eighth(**kwargs):
        calls.append(kwargs["task"].pk)
        if len(calls) == 8:  # the third label of the second batch
            raise RuntimeError("worker lost")
        return real(**kwargs)

    monkeypatch.setattr(store, "label_record", dies_on_the_eighth)
    with pytest.raises(RuntimeError, match="worker lost"):
        runner.feedback_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "running" and job.batches_done == 1  # as after a killed worker
    assert FeedbackLabel.objects.count() == Judgment.objects.count() == 5
    assert sum(t.done_count for t in Task.objects.all()) == 5
    monkeypatch.setattr(store, "label_record", real)
    job = runner.feedback_job_run(job_id=job.pk)  # the broker redelivers the task
    assert job.status == "succeeded" and job.done == 12
    assert FeedbackLabel.objects.count() == Judgment.objects.count() == 12


def test_the_task_is_idempotent_and_records_unexpected_failures(project, monkeypatch):
    demo_pairs(project, count=6, mixed_only=True)
    job = create(project)
    assert tasks.feedback_job_execute(job_id=job.pk) == "succeeded"
    assert tasks.feedback_job_execute(job_id=job.pk) == "succeeded"
    assert FeedbackLabel.objects.count() == 6
    broken = create(project, spec=FLAKY_JUDGE)  # another judge sees the same tasks
    monkeypatch.setattr(runner, "_judge_batch", lambda **_: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        tasks.feedback_job_execute(job_id=broken.pk)
    broken.refresh_from_db()
    assert broken.status == "failed" and "ZeroDivisionError" in broken.error


def test_cancel_stops_between_batches_and_retry_resumes(project, monkeypatch):
    demo_pairs(project, count=12, mixed_only=True)
    job = create(project)
    real = store.judge_batch_store

    def cancel_after_first(**kwargs):
        real(**kwargs)
        jobs.feedback_job_cancel(job=kwargs["job"])

    monkeypatch.setattr(store, "judge_batch_store", cancel_after_first)
    job = runner.feedback_job_run(job_id=job.pk)
    assert job.status == "cancelled" and job.done == 5
    monkeypatch.setattr(store, "judge_batch_store", real)
    job = runner.feedback_job_run(job_id=jobs.feedback_job_retry(job=job).pk)
    assert job.status == "succeeded" and job.done == 12
    pending = create(project, spec=FLAKY_JUDGE)
    assert jobs.feedback_job_cancel(job=pending).status == "cancelled"
    with pytest.raises(ApplicationError, match="only failed or cancelled"):
        jobs.feedback_job_retry(job=job)


def test_confident_verdicts_take_a_slot_unsure_ones_go_to_humans(project):
    pairs = demo_pairs(project, count=30, seed=3, overlap=1)
    person = human("person", project)
    runner.feedback_job_run(job_id=create(project).pk)
    offered = set()
    while (lease := task_next_for_annotator(project=project, annotator=person)) is not None:
        offered.add(lease.task_id)
        judgment_services.judgment_submit(assignment=lease, annotator=person, choice="a")
    tied = {p.task.pk for p in pairs if p.a_correct == p.b_correct}
    assert tied and offered == tied  # only what the judge could not decide


def test_an_audit_judge_adds_its_own_slot(project):
    pairs = demo_pairs(project, count=4, mixed_only=True, overlap=1)
    runner.feedback_job_run(job_id=create(project, takes_human_slot=False).pk)
    for pair in pairs:
        pair.task.refresh_from_db()
        assert (pair.task.done_count, pair.task.overlap_wanted) == (1, 2)
    assert task_next_for_annotator(project=project, annotator=human("person", project))


def test_routing_opens_a_slot_on_a_full_task_unless_humans_judged_it(project):
    pairs = [p for p in demo_pairs(project, count=30, seed=3, overlap=1)
             if p.a_correct == p.b_correct][:2]
    other_ai = annotator_user_get_or_create(username="other-ai", kind="ai")
    person = human("person", project)
    judgment_services.judgment_submit(annotator=other_ai, task=pairs[0].task, choice="a",
                                      source="ai")
    judgment_services.judgment_submit(annotator=person, task=pairs[1].task, choice="b")
    runner.feedback_job_run(job_id=create(project, scope="tasks",
                                          task_ids=[p.task.pk for p in pairs]).pk)
    full, judged = (FeedbackLabel.objects.get(task=p.task) for p in pairs)
    assert full.routed and full.task.overlap_wanted == 2
    assert not judged.routed and judged.unsure and judged.task.overlap_wanted == 1
    offered = set()  # what the person is given, to the end of their queue
    while (lease := task_next_for_annotator(project=project, annotator=person)) is not None:
        offered.add(lease.task_id)
        judgment_services.judgment_submit(assignment=lease, annotator=person, choice="a")
    assert pairs[0].task.pk in offered and pairs[1].task.pk not in offered


def test_selection_scopes(project, owner):
    pairs = demo_pairs(project, count=8, mixed_only=True, overlap=3)
    tasks_ = [p.task for p in pairs]
    people = [human(f"h{i}", project) for i in range(3)]
    for task, choices in zip(tasks_[:2], (["a", "b"], ["a", "a"]), strict=False):
        for person, choice in zip(people, choices, strict=False):
            judgment_services.judgment_submit(annotator=person, task=task, choice=choice)
    judge = judges.judge_from_spec(spec=DEMO_JUDGE)
    ids = lambda **kw: jobs.feedback_job_create(  # noqa: E731
        project=project, judge=judge, enqueue=False, **kw
    ).item_ids
    assert ids() == [t.pk for t in tasks_]
    assert ids(scope="unlabelled") == [t.pk for t in tasks_[2:]]
    assert ids(scope="human_labelled") == [t.pk for t in tasks_[:2]]
    assert ids(scope="low_agreement", min_agreement=0.75) == [tasks_[0].pk]
    assert ids(scope="tasks", task_ids=[tasks_[3].pk]) == [tasks_[3].pk]
    assert ids(limit=3) == [t.pk for t in tasks_[:3]]
    version = generation_services.model_version_register(name="m", source="hub/m")
    gen = GenerationJob.objects.create(project=project, model_version=version)
    for i, response in enumerate([tasks_[4].response_a, tasks_[4].response_b]):
        GeneratedSample.objects.create(prompt=response.prompt, model_version=version, seed=1,
                                       sampling_key="k", sample_index=i, response=response,
                                       job=gen)
    assert ids(scope="generation_job", generation_job_id=gen.pk) == [tasks_[4].pk]
    runner.feedback_job_run(job_id=create(project, scope="tasks", task_ids=[tasks_[5].pk]).pk)
    assert tasks_[5].pk not in ids()  # a judge labels a comparison once
    with pytest.raises(ApplicationError, match="needs a generation job"):
        ids(scope="generation_job")
    with pytest.raises(ApplicationError, match="no unlabelled comparisons"):
        ids(scope="tasks", task_ids=[tasks_[5].pk])


def test_jobs_are_enqueued_on_the_gpu_queue_after_commit(project, monkeypatch,
                                                         django_capture_on_commit_callbacks):
    demo_pairs(project, count=2, mixed_only=True)
    sent = []
    monkeypatch.setattr(tasks.feedback_job_execute, "apply_async",
                        lambda **kw: sent.append(kw))
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.feedback_job_create(project=project, judge=judges.judge_from_spec(
            spec=DEMO_JUDGE))
    assert sent == [{"kwargs": {"job_id": job.pk}, "task_id": job.celery_task_id}]
    assert tasks.feedback_job_execute.queue == "gpu"


@pytest.mark.slow
def test_constitutional_judge_job_on_the_tiny_model(project, tiny_model_dir, settings):
    settings.GENERATION_BACKEND = "transformers"
    version = generation_services.model_version_register(name="tiny", source=str(tiny_model_dir))
    pairs = demo_pairs(project, count=6, mixed_only=True)
    judge = judges.judge_from_spec(spec="constitutional", model_version=version,
                                   settings={"principles_per_label": 2, "seed": 1})
    job = jobs.feedback_job_create(project=project, judge=judge, batch_size=4, enqueue=False,
                                   min_confidence=0.0)
    job = runner.feedback_job_run(job_id=job.pk)
    assert job.status == "succeeded", job.error
    assert job.backend == "transformers" and job.engine_seconds > 0
    constitution = judge.constitution_version
    for pair in pairs:
        label = FeedbackLabel.objects.get(judge=judge, task=pair.task)
        assert label.constitution_version == constitution and len(label.principles) == 2
        assert len(label.details["orders"]) == 4
        assert label.p_a_first is not None and label.p_a_second is not None
        if label.judgment is not None:
            meta = label.judgment.metadata
            assert meta["constitution"] == constitution.constitution.name
            assert meta["constitution_version"] == constitution.number
            assert meta["principles"] == label.principles
            assert label.judgment.soft_label == pytest.approx(label.soft_label)
        else:
            assert label.flipped and label.routed  # the tiny model has a strong slot bias
    assert job.labelled + job.routed == 6
    assert FeedbackJob.objects.get(pk=job.pk).done == 6
