from django.urls import path

from training import apis

app_name = "training"
urlpatterns = [
    path(
        "projects/<slug:slug>/training-runs",
        apis.TrainingRunListCreateApi.as_view(),
        name="run-list",
    ),
    path(
        "projects/<slug:slug>/training-runs/<int:run_id>",
        apis.TrainingRunDetailApi.as_view(),
        name="run-detail",
    ),
    path(
        "projects/<slug:slug>/training-runs/<int:run_id>/cancel",
        apis.TrainingRunCancelApi.as_view(),
        name="run-cancel",
    ),
]
