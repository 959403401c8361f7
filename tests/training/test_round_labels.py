"""A round's judge job: "nothing left to label" is a type, not a message compared as text."""

from __future__ import annotations

import pytest

from generation.feedback.models import Judge
from generation.feedback.services import jobs as feedback_jobs
from generation.feedback.services.judges import judge_get_or_create
from prefloop.exceptions import ApplicationError
from tests.annotation import project_build, user_build
from tests.training.test_rounds_helpers import SCORER
from training.rounds import labels

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return project_build(owner=user_build("owner"), slug="labels")


def test_nothing_left_to_label_gives_no_job(project):
    judge = judge_get_or_create(kind=Judge.Kind.PROGRAMMATIC, callable_path=SCORER,
                                project=project)
    assert labels.judge_job_create(project=project, judge=judge, task_ids=[]) is None
    assert labels.judge_job_create(project=project, judge=judge, task_ids=[10**9]) is None
    with pytest.raises(feedback_jobs.NothingSelectedError) as caught:
        feedback_jobs.feedback_job_create(project=project, judge=judge, scope="tasks",
                                          task_ids=[10**9], enqueue=False)
    assert caught.value.status_code == 400  # the API answer is unchanged
    assert caught.value.message == "no unlabelled comparisons of this project match the selection"


def test_any_other_refusal_still_raises(project, monkeypatch):
    judge = judge_get_or_create(kind=Judge.Kind.PROGRAMMATIC, callable_path=SCORER,
                                project=project)

    def refuse(**kwargs):
        raise ApplicationError(feedback_jobs.NOTHING_TO_DO.format(what="unlabelled comparisons"))

    monkeypatch.setattr(feedback_jobs, "feedback_job_create", refuse)
    with pytest.raises(ApplicationError, match="no unlabelled"):  # same text, another type
        labels.judge_job_create(project=project, judge=judge, task_ids=[10**9])
