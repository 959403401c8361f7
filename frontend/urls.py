"""Pages. The annotator's pages live under /p/<slug>/<kind>/, the owner's beside them."""

from django.urls import path

from frontend.views import (
    annotate,
    browser,
    constitutions,
    data,
    home,
    models,
    owner,
    people,
    projects,
)

app_name = "frontend"
urlpatterns = [
    path("", home.home, name="home"),
    path("me/", people.profile, name="profile"),
    path("me/invitations/<slug:token>/accept", people.invitation_answer, {"answer": "accept"},
         name="invitation-accept"),
    path("me/invitations/<slug:token>/decline", people.invitation_answer, {"answer": "decline"},
         name="invitation-decline"),
    path("projects/new", projects.project_create, name="project-create"),
    path("projects/preview", projects.guidelines_preview, name="guidelines-preview"),
    path("p/<slug:slug>/settings/", projects.project_settings, name="project-settings"),
    path("p/<slug:slug>/archive", projects.project_archive, name="project-archive"),
    path("p/<slug:slug>/people/", people.people, name="people"),
    path("p/<slug:slug>/people/<int:user_id>/role", people.member_role, name="member-role"),
    path("p/<slug:slug>/people/<int:user_id>/remove", people.member_remove, name="member-remove"),
    path("p/<slug:slug>/dashboard/", owner.dashboard, name="dashboard"),
    path("p/<slug:slug>/models/", models.models_page, name="models"),
    path("p/<slug:slug>/jobs/", owner.jobs, name="jobs"),
    path("p/<slug:slug>/jobs/live", owner.jobs_fragment, name="jobs-live"),
    path("p/<slug:slug>/leaderboard/", owner.leaderboard, name="leaderboard"),
    path("p/<slug:slug>/rounds/", owner.rounds, name="rounds"),
    path("p/<slug:slug>/constitutions/", constitutions.constitution_list, name="constitutions"),
    path(
        "p/<slug:slug>/constitutions/<slug:name>/edit",
        constitutions.constitution_edit,
        name="constitution-edit",
    ),
    path("p/<slug:slug>/import/", data.import_page, name="import"),
    path("p/<slug:slug>/export/", data.export_page, name="export"),
    path("p/<slug:slug>/data/", browser.browser, name="data"),
    path("p/<slug:slug>/data/items/<int:task_id>", browser.item, name="data-item"),
    path(
        "p/<slug:slug>/data/judgments/<int:judgment_id>/flag",
        browser.judgment_flag,
        name="judgment-flag",
    ),
    path(
        "p/<slug:slug>/data/judgments/<int:judgment_id>/unflag",
        browser.judgment_flag_clear,
        name="judgment-unflag",
    ),
    path(
        "p/<slug:slug>/pairwise/<int:assignment_id>/judgment",
        annotate.judgment_submit,
        name="judgment-submit",
    ),
    path(
        "p/<slug:slug>/thumbs/<int:assignment_id>/feedback",
        annotate.feedback_submit,
        name="feedback-submit",
    ),
    path(
        "p/<slug:slug>/<str:kind_slug>/<int:assignment_id>/skip",
        annotate.task_skip,
        name="task-skip",
    ),
    path("p/<slug:slug>/<str:kind_slug>/", annotate.task_page, name="task"),
]
