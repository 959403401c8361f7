"""A seeded world for the access-control matrix: two projects with every kind of object.

Project ``matrix`` has an owner, a reviewer, an annotator, a second annotator (the
colleague, whose verdict nobody else may see), and an AI judge that is a member as an
annotator and calls the API with a DRF token. Project ``elsewhere`` belongs to someone
else; its annotator is the matrix's *outsider*. Both projects hold prompts, responses
from two model versions, pairwise and thumbs tasks, leases, a verdict, an export
snapshot, a generation job, feedback jobs, a training run and a round, so that every
object-level route resolves to a real object, and cross-project ids can be tried.

Each project also owns a model version, a constitution and a judge of its own (beside
the site-wide base models, default constitution and demo judge), and an invitation
addressed to the outsider, so the cross-tenant matrix can try every kind of owned
object across projects. The owner is in the "Project creators" group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from annotation.models import ImportJob, Judgment, Membership, Project, Task
from annotation.services import assignment, exports, invitations, judgments
from generation.feedback.constitution import DEFAULT_NAME
from generation.feedback.models import FeedbackJob, FeedbackLabel
from generation.feedback.services import constitutions, judges
from generation.models import GenerationJob, ModelVersion
from tests.annotation import (
    binary_tasks_build,
    member_add,
    pairwise_tasks_build,
    project_build,
    user_build,
)
from tests.support.feedback import DEMO_JUDGE
from training.models import TrainingRun
from training.rounds.models import Round

SLUG, OTHER_SLUG = "matrix", "elsewhere"
COLLEAGUE_RATIONALE = "colleague-rationale-never-shown-to-others"
SAMPLING = {"n": 2, "temperature": 0.7, "top_p": 0.95, "seed": 1234}
PRINCIPLE = {
    "key": "honest", "name": "Honest", "critique_request": "Is it honest?",
    "revision_request": "Make it honest.", "comparison_question": "Which is more honest?",
}


@dataclass
class World:
    users: dict[str, object]
    token: str
    refs: dict[str, object] = field(default_factory=dict)

    def ref(self, name: str) -> object:
        return self.refs[name]


def _project(slug: str, owner, *, models: tuple[ModelVersion, ModelVersion]) -> Project:
    project = project_build(owner=owner, slug=slug, binary_enabled=True, overlap=3)
    tasks = pairwise_tasks_build(project=project, n=6, model_versions=models)
    for task in tasks:  # generated responses carry their sampling, as real ones do
        for response in (task.response_a, task.response_b):
            response.sampling = SAMPLING
            response.save(update_fields=["sampling"])
    binary_tasks_build(project=project, n=3)
    return project


def _work(project: Project, owner, base: ModelVersion, judge) -> dict[str, object]:
    """Export, jobs, run and round of ``project`` (statuses their actions accept)."""
    snapshot, _ = exports.export_snapshot_create(project=project, fmt="trl-dpo", user=owner)
    prompt_ids = list(project.prompts.values_list("pk", flat=True))
    job = GenerationJob.objects.create(
        project=project, model_version=base, prompt_ids=prompt_ids, sampling=SAMPLING,
        total=len(prompt_ids), status=GenerationJob.Status.RUNNING,
    )
    feedback_job = FeedbackJob.objects.create(
        project=project, kind=FeedbackJob.Kind.JUDGE, judge=judge,
        status=FeedbackJob.Status.RUNNING, total=6,
    )
    run = TrainingRun.objects.create(
        project=project, algorithm="dpo", snapshot=snapshot, policy=base, reference=base,
        output_name=f"{project.slug}-run",
    )
    Round.objects.create(
        project=project, index=1, initial_version=base, policy=base, reference=base,
        labelling=Round.Labelling.PROGRAMMATIC, status=Round.Status.FAILED, error="crashed",
    )
    return {"export": snapshot.content_hash, "gen_job": job.pk, "fb_job": feedback_job.pk,
            "run": run.pk}


def _verdict(project: Project, user, choice: str, rationale: str = "") -> None:
    first = Task.objects.filter(project=project, kind=Task.Kind.PAIRWISE).order_by("pk").first()
    judgments.judgment_submit(task=first, annotator=user, choice=choice, rationale=rationale)


def _judged(project: Project, owner) -> dict[str, int]:
    """The first pairwise task (the data browser's item) and its owner's verdict."""
    verdict = Judgment.objects.get(task__project=project, annotator=owner)
    return {"task": verdict.task_id, "judgment": verdict.pk}


def _ai_label(project: Project, judge) -> None:
    """The AI judge's verdict on the first task, with the label an AI export reads."""
    first = Task.objects.filter(project=project, kind=Task.Kind.PAIRWISE).order_by("pk").first()
    verdict, _ = judgments.judgment_submit(task=first, annotator=judge.annotator, choice="a",
                                           source="ai", soft_label=0.9)
    FeedbackLabel.objects.create(judge=judge, task=first, judgment=verdict, soft_label=0.9,
                                 confidence=0.8, choice="a")


def _lease(project: Project, user, kind: str) -> int:
    lease = assignment.task_next_for_annotator(project=project, annotator=user, kind=kind)
    assert lease is not None, f"no {kind} task left for {user}"
    return lease.pk


def _owned(project: Project, owner, prefix: str) -> dict[str, object]:
    """A model version, a constitution and a judge that belong to ``project``."""
    model = ModelVersion.objects.create(project=project, name=f"{prefix}-private",
                                        source=f"org/{prefix}-private",
                                        notes="trained on private data")
    constitutions.constitution_create(name=f"{prefix}-rules", principles=[PRINCIPLE],
                                      created_by=owner, project=project)
    judge = judges.judge_get_or_create(kind="reward_model", model_version=model,
                                       name=f"{prefix}-judge", project=project)
    return {"private_model": model.name, "own_constitution": f"{prefix}-rules",
            "own_judge": judge.name}


def world_build() -> World:
    names = ("owner", "reviewer", "annotator", "colleague", "outsider", "other_owner")
    users = {role: user_build(f"mx-{role.replace('_', '-')}") for role in names}
    base = ModelVersion.objects.create(name="mx-base", source="org/mx-base")
    tuned = ModelVersion.objects.create(name="mx-tuned", source="org/mx-tuned", parent=base,
                                        version=1, round_index=1)
    judge = judges.judge_from_spec(spec=DEMO_JUDGE)
    users["ai_judge"] = judge.annotator
    project = _project(SLUG, users["owner"], models=(tuned, base))
    other = _project(OTHER_SLUG, users["other_owner"], models=(base, tuned))
    member_add(project=project, user=users["reviewer"], role=Membership.Role.REVIEWER)
    for role in ("annotator", "colleague", "ai_judge"):
        member_add(project=project, user=users[role])
    member_add(project=other, user=users["outsider"])
    # The owners' verdicts differ (a here, b elsewhere): the exports' hashes differ too.
    _verdict(project, users["colleague"], "a", rationale=COLLEAGUE_RATIONALE)
    _verdict(project, users["owner"], "a")
    _ai_label(project, judge)
    _verdict(other, users["other_owner"], "b")
    constitutions.constitution_default_get_or_create()
    users["owner"].groups.add(Group.objects.get(name="Project creators"))
    invited = invitations.invitation_create(project=project, inviter=users["owner"],
                                            username=users["outsider"].username,
                                            role=Membership.Role.REVIEWER)
    refs = {
        "slug": SLUG, "other_slug": OTHER_SLUG, "model": base.name, "judge": judge.name,
        "constitution": "mx-rules", "version": 1, "round": 1, "pairwise": "pairwise",
        "default_constitution": DEFAULT_NAME, "invitation": invited.token,
        "thumbs": "thumbs", "uidb64": "MQ", "reset_token": "set-password",
        "annotator_id": users["annotator"].pk,
        "pair_assignment": _lease(project, users["annotator"], Task.Kind.PAIRWISE),
        "thumbs_assignment": _lease(project, users["annotator"], Task.Kind.BINARY),
        "ai_assignment": _lease(project, users["ai_judge"], Task.Kind.PAIRWISE),
        "other_assignment": _lease(other, users["outsider"], Task.Kind.PAIRWISE),
    }
    refs |= _work(project, users["owner"], base, judge) | _owned(project, users["owner"], "mx")
    refs["import_job"] = ImportJob.objects.create(project=project, format="jsonl",
                                                  path="/nonexistent/mx.jsonl").pk
    refs |= _judged(project, users["owner"])
    other_refs = _work(other, users["other_owner"], base, judge)
    other_refs |= _owned(other, users["other_owner"], "el") | _judged(other, users["other_owner"])
    refs |= {f"other_{k}": v for k, v in other_refs.items()}
    assert refs["export"] != refs["other_export"]
    token = Token.objects.create(user=users["ai_judge"]).key
    return World(users=users, token=token, refs=refs)
