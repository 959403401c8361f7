"""Generation API, mounted under /api/ (same style as annotation: no trailing slashes)."""

from django.urls import path

from generation import apis

app_name = "generation"
urlpatterns = [
    path("models", apis.ModelVersionListApi.as_view(), name="model-list"),
    path("models/register", apis.ModelVersionRegisterApi.as_view(), name="model-register"),
    path("models/<slug:name>", apis.ModelVersionDetailApi.as_view(), name="model-detail"),
    path(
        "projects/<slug:slug>/generation-jobs",
        apis.GenerationJobListApi.as_view(),
        name="job-list",
    ),
    path(
        "projects/<slug:slug>/generation-jobs/create",
        apis.GenerationJobCreateApi.as_view(),
        name="job-create",
    ),
    path("generation-jobs/<int:job_id>", apis.GenerationJobDetailApi.as_view(), name="job-detail"),
    path(
        "generation-jobs/<int:job_id>/cancel",
        apis.GenerationJobCancelApi.as_view(),
        name="job-cancel",
    ),
]
