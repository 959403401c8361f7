"""Set-up and read-back of the annotation drills' data, in-process or (for a database
the test process is not connected to) as ``python -m tests.faults.drill_db``, which
prints JSON. Models are imported inside the functions: the command sets Django up first.
"""

from __future__ import annotations

import json
import os
import sys

OWNER_PASSWORD = "drill-owner-password-1"  # noqa: S105 a throw-away test database


def seed(*, slug: str, annotators: int, tasks: int, overlap: int) -> dict[str, str]:
    """A pairwise project, its annotators and their API tokens ({username: token})."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from tests.annotation import member_add, pairwise_tasks_build, project_build, user_build

    owner = get_user_model().objects.create_user(username="owner", password=OWNER_PASSWORD)
    project = project_build(owner=owner, slug=slug, overlap=overlap, max_overlap=max(5, overlap))
    tokens = {}
    for i in range(annotators):
        user = user_build(f"annotator-{i:02d}")
        member_add(project=project, user=user)
        tokens[user.username] = Token.objects.get_or_create(user=user)[0].key
    pairwise_tasks_build(project=project, n=tasks)
    return tokens


def stored(*, slug: str) -> dict[str, list]:
    """Judgments (username, task, id, raw key) and tasks (id, done, wanted) of ``slug``."""
    from annotation.models import Judgment, Task

    judgments = Judgment.objects.filter(task__project__slug=slug).values_list(
        "annotator__username", "task_id", "pk", "idempotency_key"
    )
    tasks = Task.objects.filter(project__slug=slug).values_list("pk", "done_count",
                                                                "overlap_wanted")
    return {"judgments": [list(j) for j in judgments], "tasks": [list(t) for t in tasks]}


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prefloop.settings")
    import django

    django.setup()
    command, slug = argv[0], argv[1]
    if command == "seed":
        annotators, tasks, overlap = (int(a) for a in argv[2:5])
        out = seed(slug=slug, annotators=annotators, tasks=tasks, overlap=overlap)
    else:
        out = stored(slug=slug)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
