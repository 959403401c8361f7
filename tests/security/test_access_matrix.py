"""Who may call what: every route of the site, for every role, against a seeded world.

The table below has a row for every URL pattern Django resolves (admin's internal
routes share one group); ``test_every_route_has_a_row`` fails when a route has none,
so a new endpoint cannot slip in unchecked. Each row gives the expected status per
role. The rules (``annotation.permissions``): a non-member gets 404, a member without
the role 403; anonymous API calls 403; pages send anonymous visitors (and token
callers, who have no session) to the log-in page; leases answer only their holder.

Roles: anonymous; outsider (annotator of another project); annotator; reviewer;
owner; ai_judge (an AI judge's user, annotator of the project, ``Authorization: Token``).

Each request runs in a savepoint that is rolled back, so every row sees the same
world and nothing commits: work that services enqueue on commit is never sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from annotation.models import Assignment
from annotation.services import judgments
from generation.feedback.models import FeedbackJob
from tests.security.access_world import COLLEAGUE_RATIONALE, PRINCIPLE, SLUG, World, world_build
from tests.support.feedback import DEMO_JUDGE
from training.rounds.models import Round

pytestmark = pytest.mark.django_db

ANON, OUT, ANN, REV, OWN, AI = ROLES = (
    "anonymous", "outsider", "annotator", "reviewer", "owner", "ai_judge",
)
MEMBERS, READERS, OWNERS = (ANN, REV, OWN, AI), (REV, OWN), (OWN,)
LOGIN, ADMIN_LOGIN = "login", "admin-login"  # 302 to the log-in page (site's or admin's)
CHECKED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
Expect = int | tuple[int, ...] | str


def project_api(ok: Expect, *allowed: str) -> dict[str, Expect]:
    return {ANON: 403, OUT: 404} | {r: ok if r in allowed else 403 for r in MEMBERS}


def job_api(ok: Expect) -> dict[str, Expect]:
    """A job addressed by id: its project's owners only (the outsider is no member)."""
    return project_api(ok, *OWNERS)


def foreign_job(ok_for_outsider: Expect = 403) -> dict[str, Expect]:
    """A job of the outsider's project: nobody here is a member there (404); the
    outsider is, but not as an owner (403)."""
    return {ANON: 403, OUT: ok_for_outsider} | dict.fromkeys(MEMBERS, 404)


def lease_api(ok: Expect, holder: str = ANN) -> dict[str, Expect]:
    return {ANON: 403} | {r: ok if r == holder else 404 for r in ROLES if r != ANON}


def global_api(ok: Expect, *allowed: str) -> dict[str, Expect]:
    return {ANON: 403} | {r: ok if r in allowed else 403 for r in ROLES if r != ANON}


def page(ok: Expect, *allowed: str) -> dict[str, Expect]:
    return {ANON: LOGIN, AI: LOGIN, OUT: 404} | {r: ok if r in allowed else 403
                                                 for r in (ANN, REV, OWN)}


def lease_page(ok: Expect) -> dict[str, Expect]:
    return {ANON: LOGIN, AI: LOGIN, OUT: 404, ANN: ok, REV: 404, OWN: 404}


def signed_in(ok: Expect) -> dict[str, Expect]:
    return {ANON: LOGIN, AI: LOGIN} | {r: ok for r in (OUT, ANN, REV, OWN)}


def everyone(ok: Expect) -> dict[str, Expect]:
    return dict.fromkeys(ROLES, ok)


def creators(ok: Expect) -> dict[str, Expect]:
    """Pages outside a project for holders of ``annotation.add_project`` (the owner here)."""
    return {ANON: LOGIN, AI: LOGIN} | {r: ok if r == OWN else 403 for r in (OUT, ANN, REV, OWN)}


def invitee(ok: Expect) -> dict[str, Expect]:
    """An invitation answers only the user it names (the outsider); others get 404."""
    return {ANON: LOGIN, AI: LOGIN, OUT: ok} | dict.fromkeys((ANN, REV, OWN), 404)


@dataclass(frozen=True)
class Row:
    route: str  # the URL pattern's name
    method: str
    expect: dict[str, Expect]
    refs: dict[str, str] = field(default_factory=dict)  # URL kwarg -> World.refs key
    body: Callable[[World], dict] | dict | None = None
    form: bool = False  # a form post (multipart) instead of JSON
    query: str = ""
    prepare: Callable[[World], None] | None = None

    def label(self) -> str:
        where = ",".join(f"{k}={v}" for k, v in self.refs.items())
        return f"{self.method} {self.route}" + (f" [{where}]" if where else "")


ROW_OPTIONS = ("body", "form", "query", "prepare")


def row(route: str, method: str, expect: dict, /, **options) -> Row:
    """A row; keyword arguments other than ``ROW_OPTIONS`` are URL kwargs (World refs)."""
    refs = {k: options.pop(k) for k in list(options) if k not in ROW_OPTIONS}
    return Row(route, method, expect, refs=refs, **options)


def _jsonl(_: World) -> dict:
    upload = SimpleUploadedFile("p.jsonl", b'{"prompt": "Imported?"}\n')
    return {"file": upload, "format": "jsonl"}


def _retryable(w: World) -> None:
    FeedbackJob.objects.filter(pk=w.ref("fb_job")).update(status=FeedbackJob.Status.FAILED)


def _running_round(w: World) -> None:
    Round.objects.filter(project__slug=SLUG, index=1).update(status=Round.Status.RUNNING)


def _run_body(hash_ref: str) -> Callable[[World], dict]:
    return lambda w: {"algorithm": "dpo", "snapshot": w.ref(hash_ref), "policy": w.ref("model")}


ROUND_FORM = {"policy": "mx-base", "algorithm": "dpo", "labelling": "programmatic",
              "reference": "previous", "rounds": "1", "samples": "2"}
SETTINGS_FORM = {"name": "Renamed", "pairwise_enabled": "on", "overlap": "1", "max_overlap": "5",
                 "strength_levels": "3", "lease_seconds": "900"}
NEW_PROJECT_FORM = SETTINGS_FORM | {"slug": "mx-fresh"}
PAIR, THUMBS, OTHER = "pair_assignment", "thumbs_assignment", "other_assignment"
GEN, FB, RUN = "gen_job", "fb_job", "run"

ROWS = [
    # --- Accounts (django.contrib.auth), schema, health -----------------------------
    row("login", "GET", everyone(200)),
    row("login", "POST", everyone(200), form=True,
        body={"username": "nobody", "password": "wrong-password"}),
    row("logout", "POST", everyone(200), form=True),
    row("password_change", "GET", signed_in(200)),
    row("password_change", "POST", signed_in(200), form=True),
    row("password_change_done", "GET", signed_in(200)),
    # Not routed without a mail backend (PREFLOOP_PASSWORD_RESET off here): 404.
    row("password_reset", "GET", everyone(404)),
    row("password_reset", "POST", everyone(404), form=True,
        body={"email": "nobody@example.invalid"}),
    row("password_reset_done", "GET", everyone(404)),
    row("password_reset_confirm", "GET", everyone(404), uidb64="uidb64", token="reset_token"),
    row("password_reset_complete", "GET", everyone(404)),
    row("my-token", "GET", global_api(200, *ROLES)),
    row("my-token-rotate", "POST", global_api(200, *ROLES)),
    row("my-token-revoke", "POST", global_api(200, *ROLES)),
    row("api-schema", "GET", everyone(200)),
    row("api-docs", "GET", everyone(200)),
    row("api-redoc", "GET", everyone(200)),
    row("api-redoc", "GET", everyone(200)),
    row("healthz", "GET", everyone(200)),
    # --- Admin: staff only; everybody here is sent to the admin's log-in page ---------
    row("admin:index", "GET", everyone(ADMIN_LOGIN)),
    row("admin:annotation_project_changelist", "GET", everyone(ADMIN_LOGIN)),
    row("admin:login", "GET", everyone(200)),
    # --- Projects and members ----------------------------------------------------------
    row("annotation:project-list", "GET", global_api(200, *ROLES)),
    # Only the "Project creators" group (here: the owner) and staff create projects.
    row("annotation:project-create", "POST", global_api(201, OWN), body={"slug": "fresh"}),
    row("annotation:project-detail", "GET", project_api(200, *MEMBERS)),
    row("annotation:project-update", "POST", project_api(200, *OWNERS), body={"name": "New"}),
    row("annotation:member-list", "GET", project_api(200, *READERS)),
    row("annotation:member-set", "POST", project_api(200, *OWNERS),
        body={"username": "mx-outsider", "role": "annotator"}),
    row("annotation:invitation-list", "GET", project_api(200, *OWNERS)),
    row("annotation:invitation-create", "POST", project_api(201, *OWNERS),
        body={"username": "mx-outsider", "role": "owner"}),
    row("annotation:my-invitations", "GET", global_api(200, *ROLES)),
    # Only the person invited (the outsider) answers an invitation; others get 404.
    row("annotation:invitation-accept", "POST", lease_api(200, holder=OUT), token="invitation"),
    row("annotation:invitation-decline", "POST", lease_api(200, holder=OUT), token="invitation"),
    # --- The annotation loop -------------------------------------------------------------
    row("annotation:task-next", "POST", project_api(200, *MEMBERS), query="kind=pairwise"),
    row("annotation:progress", "GET", project_api(200, *MEMBERS)),
    row("annotation:judgment-submit", "POST", lease_api(201), body={"choice": "left"},
        assignment_id=PAIR),
    row("annotation:judgment-submit", "POST", lease_api(201, holder=AI), body={"choice": "right"},
        assignment_id="ai_assignment"),
    row("annotation:judgment-submit", "POST", lease_api(201, holder=OUT), body={"choice": "tie"},
        assignment_id=OTHER),
    row("annotation:judgment-submit-next", "POST", lease_api(201), body={"choice": "left"},
        assignment_id=PAIR),
    row("annotation:judgment-submit-next", "POST", lease_api(201, holder=OUT),
        body={"choice": "left"}, assignment_id=OTHER),
    row("annotation:feedback-submit", "POST", lease_api(201), body={"thumbs_up": True},
        assignment_id=THUMBS),
    row("annotation:assignment-skip", "POST", lease_api(200), assignment_id=PAIR),
    # --- Quality (names annotators and models) -------------------------------------------
    row("annotation:project-stats", "GET", project_api(200, *READERS)),
    row("annotation:leaderboard", "GET", project_api(200, *READERS), query="bootstrap=20"),
    row("annotation:overlap-adapt", "POST", project_api(200, *OWNERS),
        body={"min_agreement": 0.5}),
    # --- Import and export -----------------------------------------------------------------
    row("annotation:project-import", "POST", project_api(201, *OWNERS), body=_jsonl, form=True),
    row("annotation:project-import-job", "GET", project_api(200, *OWNERS), pk="import_job"),
    row("annotation:project-import-job-cancel", "POST", project_api(200, *OWNERS),
        pk="import_job"),
    row("annotation:project-exports", "GET", project_api(200, *OWNERS)),
    row("annotation:project-exports", "POST", project_api((200, 201), *OWNERS),
        body={"format": "trl-dpo"}),
    row("annotation:project-export", "GET", project_api(200, *OWNERS), content_hash="export"),
    row("annotation:project-export", "GET", project_api(404, *OWNERS),
        content_hash="other_export"),
    row("annotation:project-export-download", "GET", project_api(200, *OWNERS),
        content_hash="export"),
    row("annotation:project-export-download", "GET", project_api(404, *OWNERS),
        content_hash="other_export"),
    # --- Model registry and generation jobs --------------------------------------------
    # Site-wide (no ?project): readers of some project read, staff alone register.
    row("generation:model-list", "GET", global_api(200, *READERS)),
    row("generation:model-list", "GET", project_api(200, *READERS), query=f"project={SLUG}"),
    row("generation:model-detail", "GET", global_api(200, *READERS), name="model"),
    row("generation:model-detail", "GET", project_api(200, *READERS), name="private_model",
        query=f"project={SLUG}"),
    row("generation:model-register", "POST", global_api(201),
        body={"name": "mx-hub", "source": "org/mx-hub"}),
    row("generation:model-register", "POST", project_api(201, *OWNERS),
        body={"name": "mx-hub", "source": "org/mx-hub"}, query=f"project={SLUG}"),
    row("generation:job-list", "GET", job_api(200)),
    row("generation:job-create", "POST", job_api(201),
        body={"model_version": "mx-base", "sampling": {"n": 2}}),
    row("generation:job-detail", "GET", job_api(200), job_id=GEN),
    row("generation:job-cancel", "POST", job_api(200), job_id=GEN),
    row("generation:job-detail", "GET", foreign_job(), job_id="other_gen_job"),
    row("generation:job-cancel", "POST", foreign_job(), job_id="other_gen_job"),
    # --- AI feedback: constitutions and judges (shared), jobs (a project's owners) ------------
    # Site-wide constitutions: everyone signed in reads, staff alone write; a project's
    # own (?project=): its owners and reviewers read, its owners write.
    row("feedback:constitution-list", "GET", global_api(200, *ROLES)),
    row("feedback:constitution-list", "GET", project_api(200, *READERS), query=f"project={SLUG}"),
    row("feedback:constitution-create", "POST", global_api(201),
        body={"name": "mx-new", "principles": [PRINCIPLE]}),
    row("feedback:constitution-create", "POST", project_api(201, *OWNERS),
        body={"name": "mx-new", "principles": [PRINCIPLE]}, query=f"project={SLUG}"),
    row("feedback:constitution-detail", "GET", global_api(200, *ROLES),
        name="default_constitution"),
    row("feedback:constitution-detail", "GET", project_api(200, *READERS), name="constitution",
        query=f"project={SLUG}"),
    row("feedback:constitution-version", "GET", project_api(200, *READERS), name="constitution",
        number="version", query=f"project={SLUG}"),
    row("feedback:constitution-version-create", "POST", global_api(201),
        body={"principles": [PRINCIPLE | {"name": "Honest v2"}]}, name="default_constitution"),
    row("feedback:constitution-version-create", "POST", project_api(201, *OWNERS),
        body={"principles": [PRINCIPLE | {"name": "Honest v2"}]}, name="constitution",
        query=f"project={SLUG}"),
    row("feedback:judge-list", "GET", global_api(200, *READERS)),
    row("feedback:judge-list", "GET", project_api(200, *READERS), query=f"project={SLUG}"),
    row("feedback:judge-create", "POST", global_api(201),
        body={"kind": "programmatic", "callable_path": DEMO_JUDGE.split(":", 1)[1]}),
    row("feedback:judge-create", "POST", project_api(201, *OWNERS),
        body={"kind": "programmatic", "callable_path": DEMO_JUDGE.split(":", 1)[1]},
        query=f"project={SLUG}"),
    row("feedback:job-list", "GET", job_api(200)),
    row("feedback:job-create", "POST", job_api(201), body=lambda w: {"judge": w.ref("judge")}),
    row("feedback:critique-job-create", "POST", job_api(201), body={"model_version": "mx-base"}),
    row("feedback:judge-trust", "GET", job_api(200), judge="judge"),
    row("feedback:ai-export-create", "POST", job_api((200, 201)),
        body=lambda w: {"judge": w.ref("judge")}),
    row("feedback:job-detail", "GET", job_api(200), job_id=FB),
    row("feedback:job-cancel", "POST", job_api(200), job_id=FB),
    row("feedback:job-retry", "POST", job_api(200), job_id=FB, prepare=_retryable),
    row("feedback:job-traces", "GET", job_api(200), job_id=FB),
    row("feedback:job-detail", "GET", foreign_job(), job_id="other_fb_job"),
    # --- Training runs and rounds ---------------------------------------------------------------
    row("training:run-list", "GET", project_api(200, *READERS)),
    row("training:run-list", "POST", project_api(201, *OWNERS), body=_run_body("export")),
    row("training:run-list", "POST", project_api(404, *OWNERS), body=_run_body("other_export")),
    row("training:run-detail", "GET", project_api(200, *READERS), run_id=RUN),
    row("training:run-detail", "GET", project_api(404, *READERS), run_id="other_run"),
    row("training:run-cancel", "POST", project_api(200, *OWNERS), run_id=RUN),
    row("training:run-cancel", "POST", project_api(404, *OWNERS), run_id="other_run"),
    row("rounds:round-list", "GET", project_api(200, *READERS)),
    row("rounds:round-list", "POST", project_api(201, *OWNERS),
        body={"policy": "mx-base", "settings": {"rounds": 1, "samples": 2}}),
    row("rounds:round-plot", "GET", project_api(200, *READERS)),
    row("rounds:round-detail", "GET", project_api(200, *READERS), index="round"),
    row("rounds:round-resume", "POST", project_api(200, *OWNERS), index="round"),
    row("rounds:round-cancel", "POST", project_api(200, *OWNERS), index="round",
        prepare=_running_round),
    # --- Pages ------------------------------------------------------------------------------
    row("frontend:home", "GET", signed_in(200)),
    row("frontend:profile", "GET", signed_in(200)),
    row("frontend:profile", "POST", signed_in(200), form=True, body={"action": "rotate"}),
    row("frontend:invitation-accept", "POST", invitee(302), form=True, token="invitation"),
    row("frontend:invitation-decline", "POST", invitee(302), form=True, token="invitation"),
    row("frontend:project-create", "GET", creators(200)),
    row("frontend:project-create", "POST", creators(302), form=True, body=NEW_PROJECT_FORM),
    row("frontend:guidelines-preview", "POST", signed_in(200), form=True,
        body={"guidelines": "**Be kind**"}),
    row("frontend:project-settings", "GET", page(200, *OWNERS)),
    row("frontend:project-settings", "POST", page(302, *OWNERS), form=True,
        body=SETTINGS_FORM),
    row("frontend:project-archive", "POST", page(302, *OWNERS), form=True,
        body={"archived": "1"}),
    row("frontend:people", "GET", page(200, *READERS)),
    row("frontend:people", "POST", page(302, *OWNERS), form=True,
        body={"add-username": "mx-outsider", "add-role": "annotator"}),
    row("frontend:member-role", "POST", page(302, *OWNERS), form=True,
        body={"role": "annotator"}, user_id="annotator_id"),
    row("frontend:member-remove", "POST", page(302, *OWNERS), form=True,
        user_id="annotator_id"),
    row("frontend:task", "GET", page(200, ANN, REV, OWN), kind_slug="pairwise"),
    row("frontend:judgment-submit", "POST", lease_page(302), form=True, body={"choice": "left"},
        assignment_id=PAIR),
    row("frontend:judgment-submit", "POST", lease_page(404), form=True, body={"choice": "left"},
        assignment_id=OTHER),
    row("frontend:judgment-submit", "POST", lease_page(404) | {OUT: 404}, form=True,
        body={"choice": "left"}, slug="other_slug", assignment_id=PAIR),
    row("frontend:feedback-submit", "POST", lease_page(302), form=True, body={"thumbs": "up"},
        assignment_id=THUMBS),
    row("frontend:task-skip", "POST", lease_page(302), form=True, kind_slug="pairwise",
        assignment_id=PAIR),
    row("frontend:dashboard", "GET", page(200, *READERS)),
    row("frontend:jobs", "GET", page(200, *READERS)),
    row("frontend:jobs-live", "GET", page(200, *READERS)),
    row("frontend:leaderboard", "GET", page(200, *READERS)),
    row("frontend:rounds", "GET", page(200, *READERS)),
    row("frontend:rounds", "POST", page(302, *OWNERS), form=True, body=ROUND_FORM),
    row("frontend:constitutions", "GET", page(200, *READERS)),
    row("frontend:constitutions", "POST", page(200, *OWNERS), form=True, body={"add": "1"}),
    row("frontend:constitution-edit", "GET", page(200, *READERS), name="constitution"),
    row("frontend:constitution-edit", "POST", page(200, *OWNERS), form=True, body={"add": "1"},
        name="constitution"),
    row("frontend:import", "GET", page(200, *OWNERS)),
    row("frontend:import", "POST", page(200, *OWNERS), form=True, body=_jsonl),
    row("frontend:models", "GET", page(200, *READERS)),
    row("frontend:models", "POST", page(400, *OWNERS), form=True,
        body={"name": "mx-new", "source": "/nonexistent/model"}),
    row("frontend:data", "GET", page(200, *READERS)),
    row("frontend:data-item", "GET", page(200, *READERS), task_id="task"),
    row("frontend:judgment-flag", "POST", page(302, *READERS), judgment_id="judgment", form=True,
        body={"reason": "careless"}),
    row("frontend:judgment-unflag", "POST", page(302, *READERS), judgment_id="judgment",
        form=True),
    row("annotation:judgment-flag", "POST", project_api(201, *READERS), judgment_id="judgment",
        body={"reason": "careless"}),
    row("frontend:export", "GET", page(200, *OWNERS)),
    row("frontend:export", "POST", page(302, *OWNERS), form=True,
        body={"format": "trl-dpo", "split": "train", "vote": "majority", "min_judgments": "1",
              "min_agreement": "0", "ties": "drop", "both_bad": "drop"}),
]


def routes() -> list[tuple[str, str]]:
    """``(name, pattern)`` of every URL pattern; unnamed ones are named by their pattern."""

    def walk(patterns, prefix: str, namespace: str):
        for p in patterns:
            if isinstance(p, URLResolver):
                inner = namespace + (f"{p.namespace}:" if p.namespace else "")
                yield from walk(p.url_patterns, prefix + str(p.pattern), inner)
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                yield (namespace + p.name if p.name else route), route

    return list(walk(get_resolver().url_patterns, "", ""))


def _url(w: World, r: Row) -> str:
    pattern = dict(routes())[r.route]
    kwargs = {k: w.ref(v) for k, v in r.refs.items()}
    if "<slug:slug>" in pattern:
        kwargs.setdefault("slug", SLUG)
    url = reverse(r.route, kwargs=kwargs or None)
    return f"{url}?{r.query}" if r.query else url


def _sessions(w: World) -> dict[str, str]:
    keys = {}
    for role in (OUT, ANN, REV, OWN):
        client = Client()
        client.force_login(w.users[role])
        keys[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return keys


class _Undo(Exception):
    pass


def _call(w: World, r: Row, role: str, sessions: dict[str, str]):
    client = Client(raise_request_exception=False)
    if role in sessions:
        client.cookies[settings.SESSION_COOKIE_NAME] = sessions[role]
    headers = {"Authorization": f"Token {w.token}"} if role == AI else {}
    body = r.body(w) if callable(r.body) else (r.body or {})
    url = _url(w, r)
    if r.method == "GET":
        return client.get(url, headers=headers)
    if r.form:  # multipart, like a browser's form (and a file upload)
        return client.post(url, body, headers=headers)
    return client.generic(r.method, url, json.dumps(body), content_type="application/json",
                          headers=headers)


def _outcome(response, expected: Expect) -> bool:
    if expected in (LOGIN, ADMIN_LOGIN):
        target = settings.LOGIN_URL if expected == LOGIN else "/admin/login/"
        return response.status_code == 302 and response["Location"].startswith(target)
    allowed = expected if isinstance(expected, tuple) else (expected,)
    return response.status_code in allowed


def _check(w: World, r: Row, role: str, sessions: dict[str, str]) -> str | None:
    """Run one request in a savepoint that is always rolled back; a mismatch as text."""
    response = None
    try:
        with transaction.atomic():
            if r.prepare:
                r.prepare(w)
            response = _call(w, r, role, sessions)
            raise _Undo
    except _Undo:
        pass
    if _outcome(response, r.expect[role]):
        return None
    where = f" -> {response['Location']}" if response.status_code == 302 else ""
    said = response.content[:200].decode(errors="replace") if response.status_code < 500 else ""
    return f"{r.label()}: expected {r.expect[role]}, got {response.status_code}{where} {said}"


@pytest.mark.parametrize("role", ROLES)
def test_access_matrix(role):
    w = world_build()
    sessions = _sessions(w)
    failures = [m for r in ROWS if (m := _check(w, r, role, sessions))]
    assert not failures, f"{role}:\n" + "\n".join(failures)


def test_every_route_has_a_row():
    names = {name for name, _ in routes()}
    covered = {r.route for r in ROWS}
    admin = {name for name, pattern in routes() if pattern.startswith("admin/")}
    missing, stale = sorted(names - covered - admin), sorted(covered - names)
    assert not missing, f"routes without a row in the access matrix: {missing}"
    assert not stale, f"rows for routes that no longer exist: {stale}"
    assert admin & covered, "the admin group needs a row"
    for r in ROWS:
        assert set(r.expect) == set(ROLES), r.label()


def test_unlisted_methods_are_refused():
    """Every method a route has no row for answers 405 (the owner asks, so no role check
    hides it): a view that grows a handler must get a row too."""
    w = world_build()
    sessions = _sessions(w)
    listed = {(r.route, r.method) for r in ROWS}
    first = {}
    for r in ROWS:
        first.setdefault(r.route, r)
    failures = []
    for name, pattern in routes():
        if pattern.startswith(("admin/", "accounts/")):
            continue  # Django's own views
        for method in CHECKED_METHODS:
            if (name, method) not in listed:
                probe = Row(name, method, everyone(405), refs=first[name].refs)
                failures.append(_check(w, probe, OWN, sessions))
    failures = [f for f in failures if f]
    assert not failures, "\n".join(failures)


# --- What annotators see ----------------------------------------------------------------


def _hidden(w: World) -> list[str]:
    """Strings an annotator must never receive: models, sampling, sources, response
    ids, the other annotators and their verdicts."""
    return ["mx-base", "mx-tuned", "org/mx", "temperature", "top_p", "sampling", "generated",
            "model", "response_a", "response_b", "response_id", "left_is_a", "shown_left",
            "soft_label", COLLEAGUE_RATIONALE, "mx-colleague", "mx-owner", w.ref("judge")]


def _colleague_judges_the_same_task(w: World) -> Assignment:
    lease = Assignment.objects.get(pk=w.ref(PAIR))
    judgments.judgment_submit(task=lease.task, annotator=w.users["colleague"], choice="b",
                              rationale=COLLEAGUE_RATIONALE)
    return lease


def test_task_payload_names_no_model_source_or_other_verdict():
    w = world_build()
    lease = _colleague_judges_the_same_task(w)
    client = Client()
    client.force_login(w.users[ANN])
    response = client.post(f"/api/projects/{SLUG}/tasks/next?kind=pairwise")
    assert response.status_code == 200
    payload = response.json()
    assert payload["assignment_id"] == lease.pk
    assert set(payload) == {"assignment_id", "task_id", "kind", "expires_at", "prompt", "left",
                            "right", "response", "strength_levels", "allow_tie",
                            "allow_both_bad"}
    assert {payload["left"], payload["right"]} == {lease.task.response_a.text,
                                                   lease.task.response_b.text}
    text = response.content.decode()
    assert [s for s in _hidden(w) if s in text] == []
    progress = client.get(f"/api/projects/{SLUG}/progress").json()
    assert progress["judgments"] == 0  # their own count, not the colleague's
    owner = Client()
    owner.force_login(w.users[OWN])
    board = owner.get(f"/api/projects/{SLUG}/leaderboard?bootstrap=20").content.decode()
    assert "mx-base" in board and "mx-tuned" in board  # what the annotator must not get


@pytest.mark.parametrize("kind", ["pairwise", "thumbs"])
def test_annotate_pages_name_no_model_source_or_other_verdict(kind):
    w = world_build()
    lease = _colleague_judges_the_same_task(w)
    client = Client()
    client.force_login(w.users[ANN])
    html = client.get(f"/p/{SLUG}/{kind}/").content.decode()
    if kind == "pairwise":
        assert lease.task.response_a.text in html and lease.task.response_b.text in html
    assert [s for s in _hidden(w) if s in html] == []
    assert re.search(r"response[-_]?(id|pk)", html, re.I) is None
    home = client.get("/").content.decode()
    assert [s for s in _hidden(w) if s in home] == []


def test_the_next_card_after_a_verdict_names_no_model():
    w = world_build()
    _colleague_judges_the_same_task(w)
    client = Client()
    client.force_login(w.users[ANN])
    response = client.post(f"/p/{SLUG}/pairwise/{w.ref(PAIR)}/judgment", {"choice": "left"},
                           headers={"X-Prefloop-Fragment": "1"})
    assert response.status_code == 200 and b"data-card" in response.content
    html = response.content.decode()
    assert [s for s in _hidden(w) if s in html] == []


def test_session_callers_need_the_csrf_token_and_token_callers_do_not():
    """The matrix's clients skip CSRF checks (Django's test default); real browsers don't."""
    w = world_build()
    owner = Client(enforce_csrf_checks=True)
    owner.force_login(w.users[OWN])
    forged = owner.post(f"/api/projects/{SLUG}/update", {"name": "Forged"},
                        content_type="application/json")
    assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
    assert owner.post(f"/p/{SLUG}/export/", {"format": "trl-dpo"}).status_code == 403
    owner.get(f"/p/{SLUG}/export/")  # sets the CSRF cookie; the form carries the token
    form = {"format": "trl-dpo", "split": "train", "vote": "majority", "min_judgments": "1",
            "min_agreement": "0", "ties": "drop", "both_bad": "drop",
            "csrfmiddlewaretoken": owner.cookies[settings.CSRF_COOKIE_NAME].value}
    assert owner.post(f"/p/{SLUG}/export/", form).status_code == 302
    judge = Client(enforce_csrf_checks=True)
    verdict = judge.post(f"/api/assignments/{w.ref('ai_assignment')}/judgment", {"choice": "left"},
                         content_type="application/json",
                         headers={"Authorization": f"Token {w.token}"})
    assert verdict.status_code == 201
