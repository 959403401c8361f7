"""A project with something on every owner page: verdicts from three annotators (one
who always picks the left side), gold tasks, two model versions, thumbs, generation
jobs (one failed) and a training run with logged metrics."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.utils import timezone

from annotation.models import Judgment, Project, Response, Task
from annotation.services import content, exports, judgments
from generation.models import GenerationJob, ModelVersion
from tests.frontend.data import pair_texts, project_make, thumbs_texts, user_make
from training.models import TrainingMetric, TrainingRun

JUDGED_PAIRS = 20
FREE_PAIRS = 4


@dataclass
class OwnerProject:
    project: Project
    owner: object
    annotators: list
    newcomer: object  # a member with no verdicts yet (for the task-page screenshots)


def _pairs(project: Project, base: ModelVersion, tuned: ModelVersion) -> list[Task]:
    tasks = []
    for i in range(JUDGED_PAIRS + FREE_PAIRS):
        messages, fast, slow = pair_texts(i)
        prompt, _ = content.prompt_get_or_create(project=project, messages=messages)
        a, _ = content.response_get_or_create(
            prompt=prompt, text=fast, source=Response.Source.GENERATED, model_version_id=tuned.pk
        )
        b, _ = content.response_get_or_create(
            prompt=prompt, text=slow, source=Response.Source.GENERATED, model_version_id=base.pk
        )
        gold = {"is_gold": True, "gold_answer": "a"} if i % 5 == 0 else {}
        tasks.append(content.task_get_or_create(project=project, response_a=a, response_b=b,
                                                **gold)[0])
    return tasks


def _verdict(rng: random.Random, who: int, shown_left: str) -> str:
    if who == 1:  # always picks whatever was on the left
        return shown_left
    if who == 0:
        return rng.choices(["a", "b", "tie"], weights=[8, 1, 1])[0]
    return rng.choices(["a", "b", "tie", "both_bad"], weights=[5, 2, 2, 1])[0]


def _judge(tasks: list[Task], annotators: list) -> None:
    rng = random.Random(7)
    for task in tasks[:JUDGED_PAIRS]:
        for who, user in enumerate(annotators):
            shown_left = rng.choice("ab")
            choice = _verdict(rng, who, shown_left)
            strength = 0 if choice in ("tie", "both_bad") else rng.randint(1, 3)
            judgments.judgment_submit(
                task=task, annotator=user, choice=choice, strength=strength or 1,
                shown_left=shown_left, time_spent_ms=rng.randint(4_000, 40_000),
            )
    # Spread the verdicts over the last days, so the throughput chart has a shape.
    for k, judgment in enumerate(Judgment.objects.filter(task__project=tasks[0].project)):
        Judgment.objects.filter(pk=judgment.pk).update(
            created_at=timezone.now() - timedelta(days=k % 6, hours=k % 5)
        )


def _thumbs(project: Project, annotators: list) -> None:
    rng = random.Random(3)
    for i in range(6):
        messages, text = thumbs_texts(i)
        prompt, _ = content.prompt_get_or_create(project=project, messages=messages)
        response, _ = content.response_get_or_create(
            prompt=prompt, text=text, source=Response.Source.IMPORTED
        )
        task, _ = content.task_get_or_create(project=project, response_a=response)
        for user in annotators[:2]:
            if i < 4:
                judgments.feedback_submit(task=task, annotator=user, thumbs_up=rng.random() < 0.7,
                                          time_spent_ms=rng.randint(2_000, 9_000))


def _jobs_and_runs(project: Project, owner, base: ModelVersion, tuned: ModelVersion) -> None:
    now = timezone.now()
    prompt_ids = list(project.prompts.values_list("pk", flat=True))
    common = {"project": project, "model_version": tuned, "prompt_ids": prompt_ids,
              "sampling": {"n": 4, "temperature": 1.0}, "total": len(prompt_ids)}
    running = {"status": "running", "done": len(prompt_ids) // 2, "output_tokens": 5_400,
               "started_at": now - timedelta(seconds=40)}
    GenerationJob.objects.create(**common, **running)
    failed = {"status": "failed", "done": 3, "error": "CUDA out of memory while loading the model"}
    GenerationJob.objects.create(**common, **failed)
    FeedbackJob = apps.get_model("generation", "FeedbackJob")
    FeedbackJob.objects.create(project=project, kind="judge", status="succeeded", total=20,
                               done=20, labelled=17, routed=2, skipped=1)
    snapshot, _ = exports.export_snapshot_create(
        project=project, fmt="trl-dpo-conversational", user=owner
    )
    run = TrainingRun.objects.create(
        project=project, algorithm="dpo", snapshot=snapshot, policy=base, reference=base,
        output_name="screens-dpo-r1", output_version=tuned, status="succeeded", step=20,
        total_steps=20,
    )
    for step in range(1, 21):
        TrainingMetric.objects.create(run=run, step=step, kind="train", values={
            "loss": 0.69 * 0.93**step, "reward_accuracy": min(1.0, 0.5 + step * 0.025),
            "reward_margin": 0.05 * step, "kl": 0.01 * step,
        })
        if step % 5 == 0:
            TrainingMetric.objects.create(run=run, step=step, kind="eval", values={
                "loss": 0.7 * 0.95**step, "reward_accuracy": 0.5 + step * 0.02,
            })


def owner_project_make(slug: str = "screens") -> OwnerProject:
    owner = user_make(f"{slug}-owner")
    annotators = [user_make(name) for name in ("alice", "bob-left", "carol")]
    newcomer = user_make("dave")
    project = project_make(slug=slug, owner=owner, annotators=[*annotators, newcomer],
                           overlap=3, binary_enabled=True)
    base = ModelVersion.objects.create(name=f"{slug}-base", source="/models/base")
    tuned = ModelVersion.objects.create(name=f"{slug}-dpo-r1", source="/models/r1", parent=base,
                                        version=1, round_index=1)
    tasks = _pairs(project, base, tuned)
    _judge(tasks, annotators)
    _thumbs(project, annotators)
    _jobs_and_runs(project, owner, base, tuned)
    return OwnerProject(project, owner, annotators, newcomer)
