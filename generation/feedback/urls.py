"""AI-feedback API, mounted under /api/ (no trailing slashes, like the other apps)."""

from django.urls import path

from generation.feedback import apis

app_name = "feedback"
urlpatterns = [
    path("constitutions", apis.ConstitutionListApi.as_view(), name="constitution-list"),
    path("constitutions/create", apis.ConstitutionCreateApi.as_view(), name="constitution-create"),
    path("constitutions/<slug:name>", apis.ConstitutionVersionApi.as_view(),
         name="constitution-detail"),
    path("constitutions/<slug:name>/versions/create", apis.ConstitutionVersionCreateApi.as_view(),
         name="constitution-version-create"),
    path("constitutions/<slug:name>/versions/<int:number>", apis.ConstitutionVersionApi.as_view(),
         name="constitution-version"),
    path("judges", apis.JudgeListApi.as_view(), name="judge-list"),
    path("judges/create", apis.JudgeCreateApi.as_view(), name="judge-create"),
    path("projects/<slug:slug>/feedback-jobs", apis.FeedbackJobListApi.as_view(),
         name="job-list"),
    path("projects/<slug:slug>/feedback-jobs/create", apis.FeedbackJobCreateApi.as_view(),
         name="job-create"),
    path("projects/<slug:slug>/critique-jobs/create", apis.CritiqueJobCreateApi.as_view(),
         name="critique-job-create"),
    path("projects/<slug:slug>/judges/<slug:judge>/trust", apis.JudgeTrustApi.as_view(),
         name="judge-trust"),
    path("projects/<slug:slug>/ai-exports/create", apis.AiExportCreateApi.as_view(),
         name="ai-export-create"),
    path("feedback-jobs/<int:job_id>", apis.FeedbackJobDetailApi.as_view(), name="job-detail"),
    path("feedback-jobs/<int:job_id>/cancel", apis.FeedbackJobCancelApi.as_view(),
         name="job-cancel"),
    path("feedback-jobs/<int:job_id>/retry", apis.FeedbackJobRetryApi.as_view(),
         name="job-retry"),
    path("feedback-jobs/<int:job_id>/traces", apis.CritiqueTraceListApi.as_view(),
         name="job-traces"),
]
