"""Pages. The annotator's pages live under /p/<slug>/<kind>/, the owner's beside them."""

from django.urls import path

from frontend.views import annotate, constitutions, data, home, owner

app_name = "frontend"
urlpatterns = [
    path("", home.home, name="home"),
    path("p/<slug:slug>/dashboard/", owner.dashboard, name="dashboard"),
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
