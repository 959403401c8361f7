"""Round endpoints; mounted under ``api/`` (``path("api/", include("training.rounds.urls"))``)."""

from django.urls import path

from training.rounds import apis

app_name = "rounds"
urlpatterns = [
    path("projects/<slug:slug>/rounds", apis.RoundListCreateApi.as_view(), name="round-list"),
    path("projects/<slug:slug>/rounds/plot", apis.RoundPlotApi.as_view(), name="round-plot"),
    path(
        "projects/<slug:slug>/rounds/<int:index>",
        apis.RoundDetailApi.as_view(),
        name="round-detail",
    ),
    path(
        "projects/<slug:slug>/rounds/<int:index>/resume",
        apis.RoundResumeApi.as_view(),
        name="round-resume",
    ),
    path(
        "projects/<slug:slug>/rounds/<int:index>/cancel",
        apis.RoundCancelApi.as_view(),
        name="round-cancel",
    ),
]
