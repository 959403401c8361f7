"""Import and export endpoints, mounted under /api/."""

from django.urls import path

from annotation.apis import io

urlpatterns = [
    path("projects/<slug:slug>/imports", io.ImportApi.as_view(), name="project-import"),
    path(
        "projects/<slug:slug>/imports/<int:pk>",
        io.ImportJobApi.as_view(),
        name="project-import-job",
    ),
    path(
        "projects/<slug:slug>/imports/<int:pk>/cancel",
        io.ImportJobCancelApi.as_view(),
        name="project-import-job-cancel",
    ),
    path("projects/<slug:slug>/exports", io.ExportsApi.as_view(), name="project-exports"),
    path(
        "projects/<slug:slug>/exports/<str:content_hash>",
        io.ExportDetailApi.as_view(),
        name="project-export",
    ),
    path(
        "projects/<slug:slug>/exports/<str:content_hash>/download",
        io.ExportDownloadApi.as_view(),
        name="project-export-download",
    ),
]
