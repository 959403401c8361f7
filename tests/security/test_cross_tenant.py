"""The cross-tenant matrix: the owner of project B ("elsewhere") reaches for project A's
("matrix") objects through every route that takes an id, a name, a path or a hash
(in the URL, the query or the body), and gets 404 with the database unchanged.

Beside the role matrix (``test_access_matrix``), which checks who may call what in
one project, this one checks that no identifier crosses a project boundary.
``test_every_parameterised_route_has_a_row`` fails when a route with a URL parameter
appears without a row here. Where 404 is impossible a row says why (a form's choice
list, or a site-wide route that B's owner may not write at all: 403).

Each request runs in a savepoint that is rolled back; the checksum of every row of the
project apps (and users, groups, tokens) is taken inside it, after the request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.apps import apps
from django.db import transaction
from django.test import Client
from django.urls import reverse

from annotation.selectors.exports import export_snapshot_get
from annotation.services.exports import export_snapshot_file
from tests.security.access_world import OTHER_SLUG, PRINCIPLE, SLUG, World, world_build
from tests.security.test_access_matrix import routes

pytestmark = pytest.mark.django_db

ACTOR = "other_owner"  # owner of OTHER_SLUG, no member of SLUG
CHECKED_APPS = {"annotation", "generation", "training", "auth", "authtoken"}
A, B = {"slug": "slug"}, {"slug": "other_slug"}  # URL slug refs: A's project, B's project
NOT_A_MEMBER = 404


@dataclass(frozen=True)
class Row:
    route: str
    method: str
    refs: dict[str, str] = field(default_factory=dict)  # URL kwarg -> World.refs key
    body: Callable[[World], dict] | dict | None = None
    query: Callable[[World], str] | str = ""
    form: bool = False
    expect: int = 404
    why: str = ""

    def label(self) -> str:
        return f"{self.method} {self.route} {self.refs} {self.why}".strip()


def row(route: str, method: str, /, refs: dict | None = None, **options) -> Row:
    return Row(route, method, refs=refs or {}, **options)


def _eval_path(w: World) -> str:
    return str(export_snapshot_file(snapshot=export_snapshot_get(content_hash=w.ref("export"))))


def _run(**extra) -> Callable[[World], dict]:
    return lambda w: {"algorithm": "dpo", "snapshot": w.ref("other_export"),
                      "policy": "mx-base"} | {k: v(w) if callable(v) else v
                                              for k, v in extra.items()}


PRIVATE = "private_model"  # A's model version (refs key)
PRIV = lambda w: w.ref(PRIVATE)  # noqa: E731
FOREIGN_TASK = lambda w: [w.ref("first_task")]  # noqa: E731
OWNED_QUERY = f"project={OTHER_SLUG}"

ROWS = [
    # --- A's project by slug: B's owner is no member there --------------------------------
    *[row(name, method, A) for name, method in (
        ("annotation:project-detail", "GET"), ("annotation:project-update", "POST"),
        ("annotation:member-list", "GET"), ("annotation:member-set", "POST"),
        ("annotation:invitation-list", "GET"), ("annotation:invitation-create", "POST"),
        ("annotation:task-next", "POST"), ("annotation:progress", "GET"),
        ("annotation:project-stats", "GET"), ("annotation:leaderboard", "GET"),
        ("annotation:overlap-adapt", "POST"), ("annotation:project-import", "POST"),
        ("annotation:project-exports", "GET"), ("annotation:project-exports", "POST"),
        ("generation:job-list", "GET"), ("generation:job-create", "POST"),
        ("feedback:job-list", "GET"), ("feedback:job-create", "POST"),
        ("feedback:critique-job-create", "POST"), ("feedback:ai-export-create", "POST"),
        ("training:run-list", "GET"), ("training:run-list", "POST"),
        ("rounds:round-list", "GET"), ("rounds:round-list", "POST"), ("rounds:round-plot", "GET"),
        ("frontend:dashboard", "GET"), ("frontend:jobs", "GET"), ("frontend:jobs-live", "GET"),
        ("frontend:leaderboard", "GET"), ("frontend:rounds", "GET"),
        ("frontend:constitutions", "GET"), ("frontend:import", "GET"), ("frontend:export", "GET"),
        ("frontend:models", "GET"),
    )],
    row("frontend:task", "GET", A | {"kind_slug": "pairwise"}),
    row("frontend:project-settings", "GET", A),
    row("frontend:project-archive", "POST", A, form=True, body={"archived": "1"}),
    row("frontend:people", "GET", A),
    row("frontend:member-role", "POST", A | {"user_id": "annotator_id"}, form=True,
        body={"role": "owner"}),
    row("frontend:member-remove", "POST", A | {"user_id": "annotator_id"}, form=True),
    row("annotation:project-import-job", "GET", A | {"pk": "import_job"}),
    row("annotation:project-import-job-cancel", "POST", A | {"pk": "import_job"}),
    row("rounds:round-detail", "GET", A | {"index": "round"}),
    row("rounds:round-resume", "POST", A | {"index": "round"}),
    row("rounds:round-cancel", "POST", A | {"index": "round"}),
    row("feedback:judge-trust", "GET", A | {"judge": "judge"}),
    row("frontend:constitution-edit", "GET", A | {"name": "own_constitution"}),
    row("frontend:data", "GET", A),
    row("frontend:data-item", "GET", A | {"task_id": "task"}),
    row("frontend:judgment-flag", "POST", A | {"judgment_id": "judgment"}, form=True,
        body={"reason": "poisoned"}),
    row("annotation:judgment-flag", "POST", A | {"judgment_id": "judgment"},
        body={"reason": "poisoned"}),
    # --- A's item and judgment through B's own slug ----------------------------------------
    row("frontend:data-item", "GET", B | {"task_id": "task"}),
    row("frontend:judgment-flag", "POST", B | {"judgment_id": "judgment"}, form=True,
        body={"reason": "poisoned"}),
    row("frontend:judgment-unflag", "POST", B | {"judgment_id": "judgment"}, form=True),
    row("annotation:judgment-flag", "POST", B | {"judgment_id": "judgment"},
        body={"reason": "poisoned"}),
    # --- A's objects by id, hash or token --------------------------------------------------
    row("annotation:project-export", "GET", A | {"content_hash": "export"}),
    row("annotation:project-export", "GET", B | {"content_hash": "export"}),
    row("annotation:project-export-download", "GET", B | {"content_hash": "export"}),
    row("annotation:judgment-submit", "POST", {"assignment_id": "pair_assignment"},
        body={"choice": "left"}),
    row("annotation:judgment-submit-next", "POST", {"assignment_id": "pair_assignment"},
        body={"choice": "left"}),
    row("annotation:feedback-submit", "POST", {"assignment_id": "thumbs_assignment"},
        body={"thumbs_up": True}),
    row("annotation:assignment-skip", "POST", {"assignment_id": "pair_assignment"}),
    row("annotation:invitation-accept", "POST", {"token": "invitation"}),
    row("annotation:invitation-decline", "POST", {"token": "invitation"}),
    row("frontend:invitation-accept", "POST", {"token": "invitation"}, form=True),
    row("frontend:invitation-decline", "POST", {"token": "invitation"}, form=True),
    row("generation:job-detail", "GET", {"job_id": "gen_job"}),
    row("generation:job-cancel", "POST", {"job_id": "gen_job"}),
    row("feedback:job-detail", "GET", {"job_id": "fb_job"}),
    row("feedback:job-cancel", "POST", {"job_id": "fb_job"}),
    row("feedback:job-retry", "POST", {"job_id": "fb_job"}),
    row("feedback:job-traces", "GET", {"job_id": "fb_job"}),
    row("training:run-detail", "GET", B | {"run_id": "run"}),
    row("training:run-cancel", "POST", B | {"run_id": "run"}),
    row("frontend:judgment-submit", "POST", B | {"assignment_id": "pair_assignment"}, form=True,
        body={"choice": "left"}),
    row("frontend:feedback-submit", "POST", B | {"assignment_id": "thumbs_assignment"},
        form=True, body={"thumbs": "up"}),
    row("frontend:task-skip", "POST", B | {"kind_slug": "pairwise",
                                           "assignment_id": "pair_assignment"}, form=True),
    row("password_reset_confirm", "GET", {"uidb64": "uidb64", "token": "reset_token"},
        why="not routed without mail"),
    # --- A's model versions, constitutions and judges by name ----------------------------
    row("generation:model-detail", "GET", {"name": PRIVATE}),
    row("generation:model-detail", "GET", {"name": PRIVATE}, query=OWNED_QUERY),
    row("generation:model-detail", "GET", {"name": PRIVATE}, query=f"project={SLUG}"),
    row("feedback:constitution-detail", "GET", {"name": "own_constitution"}),
    row("feedback:constitution-detail", "GET", {"name": "own_constitution"}, query=OWNED_QUERY),
    row("feedback:constitution-version", "GET", {"name": "own_constitution", "number": "version"},
        query=OWNED_QUERY),
    row("feedback:constitution-version-create", "POST", {"name": "own_constitution"},
        query=OWNED_QUERY, body={"principles": [PRINCIPLE | {"name": "Poisoned"}]}),
    row("feedback:constitution-version-create", "POST", {"name": "own_constitution"},
        query=f"project={SLUG}", body={"principles": [PRINCIPLE | {"name": "Poisoned"}]}),
    row("feedback:constitution-version-create", "POST", {"name": "own_constitution"},
        body={"principles": [PRINCIPLE | {"name": "Poisoned"}]}, expect=403,
        why="site-wide constitutions: staff only, whatever the name"),
    row("feedback:judge-trust", "GET", B | {"judge": "own_judge"}),
    row("frontend:constitution-edit", "GET", B | {"name": "own_constitution"}),
    row("frontend:constitution-edit", "POST", B | {"name": "own_constitution"}, form=True,
        body={"note": "poisoned"}),
    # --- A's objects named in B's own requests (body or query) ---------------------------
    row("generation:model-register", "POST", query=OWNED_QUERY,
        body=lambda w: {"name": "child", "source": "org/child", "parent": PRIV(w)}),
    row("generation:job-create", "POST", B, body=lambda w: {"model_version": PRIV(w)}),
    row("generation:job-create", "POST", B, body=lambda w: {
        "model_version": "mx-base", "opponent_version": PRIV(w), "pairing": "head_to_head"}),
    row("feedback:judge-create", "POST", query=OWNED_QUERY,
        body=lambda w: {"kind": "reward_model", "model_version": PRIV(w)}),
    row("feedback:judge-create", "POST", query=OWNED_QUERY,
        body=lambda w: {"kind": "constitutional", "model_version": "mx-base",
                        "constitution": w.ref("own_constitution")}),
    row("feedback:job-create", "POST", B, body=lambda w: {"judge": w.ref("own_judge")}),
    row("feedback:job-create", "POST", B, body=lambda w: {
        "judge": w.ref("judge"), "scope": "generation_job", "generation_job_id": w.ref("gen_job")}),
    row("feedback:job-create", "POST", B, body=lambda w: {
        "judge": w.ref("judge"), "scope": "tasks", "task_ids": FOREIGN_TASK(w)}),
    row("feedback:critique-job-create", "POST", B, body=lambda w: {"model_version": PRIV(w)}),
    row("feedback:critique-job-create", "POST", B, body=lambda w: {
        "model_version": "mx-base", "constitution": w.ref("own_constitution")}),
    row("feedback:critique-job-create", "POST", B, body=lambda w: {
        "model_version": "mx-base", "response_ids": [w.ref("first_response")]}),
    row("feedback:ai-export-create", "POST", B, body=lambda w: {"judge": w.ref("own_judge")}),
    row("training:run-list", "POST", B, body=_run(snapshot=lambda w: w.ref("export"))),
    row("training:run-list", "POST", B, body=_run(policy=PRIV)),
    row("training:run-list", "POST", B, body=_run(reference=PRIV)),
    row("training:run-list", "POST", B,
        body=_run(hyperparameters=lambda w: {"eval_path": _eval_path(w)})),
    row("rounds:round-list", "POST", B, body=lambda w: {"policy": PRIV(w)}),
    row("rounds:round-list", "POST", B, body=lambda w: {
        "policy": "mx-base", "settings": {"judge_model": PRIV(w), "labelling": "ai"}}),
    row("frontend:rounds", "POST", B, form=True, expect=400,
        body=lambda w: {"policy": PRIV(w), "algorithm": "dpo", "labelling": "programmatic",
                        "reference": "previous", "rounds": "1", "samples": "2"},
        why="a page form: A's model is not among the choices, refused like any unknown name"),
]


def _checksum() -> str:
    digest = hashlib.sha256()
    for model in apps.get_models():
        if model._meta.app_label not in CHECKED_APPS:
            continue
        digest.update(model._meta.label.encode())
        for values in model.objects.order_by("pk").values_list():
            digest.update(repr(values).encode())
    return digest.hexdigest()


class _Undo(Exception):
    pass


def _request(client: Client, w: World, r: Row):
    kwargs = {k: w.ref(v) for k, v in r.refs.items()}
    query = r.query(w) if callable(r.query) else r.query
    url = reverse(r.route, kwargs=kwargs or None) + (f"?{query}" if query else "")
    body = r.body(w) if callable(r.body) else (r.body or {})
    if r.method == "GET":
        return client.get(url)
    if r.form:
        return client.post(url, body)
    return client.generic(r.method, url, json.dumps(body), content_type="application/json")


def _check(client: Client, w: World, r: Row, before: str) -> str | None:
    try:
        with transaction.atomic():
            response = _request(client, w, r)
            after = _checksum()
            raise _Undo
    except _Undo:
        pass
    problems = []
    if response.status_code != r.expect:
        problems.append(f"status {response.status_code} (want {r.expect}): "
                        f"{response.content[:160].decode(errors='replace')}")
    if after != before:
        problems.append("the database changed")
    return f"{r.label()}: {'; '.join(problems)}" if problems else None


def _world() -> World:
    from annotation.models import Response, Task

    w = world_build()
    first = Task.objects.filter(project__slug=SLUG).order_by("pk").first()
    w.refs["first_task"] = first.pk
    w.refs["first_response"] = Response.objects.filter(prompt__project__slug=SLUG).first().pk
    w.refs["annotator_id"] = w.users["annotator"].pk
    w.refs["import_job"] = 1  # the slug is A's: refused before any import job is looked up
    return w


def test_cross_tenant_matrix():
    w = _world()
    client = Client(raise_request_exception=False)
    client.force_login(w.users[ACTOR])
    before = _checksum()
    failures = [m for r in ROWS if (m := _check(client, w, r, before))]
    assert not failures, "\n".join(failures)


def test_the_matrix_reaches_real_objects():
    """The rows name objects that exist: with A's owner the same A-slug routes answer."""
    w = _world()
    owner = Client()
    owner.force_login(w.users["owner"])
    assert owner.get(f"/api/projects/{SLUG}/exports/{w.ref('export')}").status_code == 200
    assert owner.get(f"/api/models/{w.ref(PRIVATE)}?project={SLUG}").status_code == 200
    assert owner.get(f"/api/projects/{SLUG}/judges/{w.ref('own_judge')}/trust").status_code == 200
    assert owner.get(f"/p/{SLUG}/constitutions/{w.ref('own_constitution')}/edit").status_code == 200


def test_every_parameterised_route_has_a_row():
    """A new route that takes an id, a name, a path or a hash needs a row here."""
    covered = {r.route for r in ROWS}
    parameterised = {name for name, pattern in routes()
                     if "<" in pattern and not pattern.startswith("admin/")}
    missing = sorted(parameterised - covered)
    assert not missing, f"routes with parameters but no cross-tenant row: {missing}"
    stale = sorted(covered - {name for name, _ in routes()})
    assert not stale, f"rows for routes that no longer exist: {stale}"
