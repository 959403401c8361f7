"""Core annotation API: projects, members, the annotation loop, quality, leaderboard."""

from django.urls import path

from annotation.apis import core, flags, invitations, quality, work

urlpatterns = [
    path("projects", core.ProjectListApi.as_view(), name="project-list"),
    path("projects/create", core.ProjectCreateApi.as_view(), name="project-create"),
    path("projects/<slug:slug>", core.ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<slug:slug>/update", core.ProjectUpdateApi.as_view(), name="project-update"),
    path("projects/<slug:slug>/members", core.MemberListApi.as_view(), name="member-list"),
    path("projects/<slug:slug>/members/set", core.MemberSetApi.as_view(), name="member-set"),
    path(
        "projects/<slug:slug>/invitations",
        invitations.InvitationListApi.as_view(),
        name="invitation-list",
    ),
    path(
        "projects/<slug:slug>/invitations/create",
        invitations.InvitationCreateApi.as_view(),
        name="invitation-create",
    ),
    path("me/invitations", invitations.MyInvitationListApi.as_view(), name="my-invitations"),
    path(
        "invitations/<slug:token>/accept",
        invitations.InvitationAcceptApi.as_view(),
        name="invitation-accept",
    ),
    path(
        "invitations/<slug:token>/decline",
        invitations.InvitationDeclineApi.as_view(),
        name="invitation-decline",
    ),
    path("projects/<slug:slug>/tasks/next", work.TaskNextApi.as_view(), name="task-next"),
    path("projects/<slug:slug>/progress", work.ProgressApi.as_view(), name="progress"),
    path("projects/<slug:slug>/stats", quality.ProjectStatsApi.as_view(), name="project-stats"),
    path("projects/<slug:slug>/leaderboard", quality.LeaderboardApi.as_view(), name="leaderboard"),
    path(
        "projects/<slug:slug>/overlap/adapt",
        quality.OverlapAdaptApi.as_view(),
        name="overlap-adapt",
    ),
    path(
        "projects/<slug:slug>/judgments/<int:judgment_id>/flag",
        flags.JudgmentFlagApi.as_view(),
        name="judgment-flag",
    ),
    path(
        "assignments/<int:assignment_id>/judgment",
        work.JudgmentSubmitApi.as_view(),
        name="judgment-submit",
    ),
    path(
        "assignments/<int:assignment_id>/judgment-and-next",
        work.JudgmentSubmitNextApi.as_view(),
        name="judgment-submit-next",
    ),
    path(
        "assignments/<int:assignment_id>/feedback",
        work.FeedbackSubmitApi.as_view(),
        name="feedback-submit",
    ),
    path(
        "assignments/<int:assignment_id>/skip",
        work.AssignmentSkipApi.as_view(),
        name="assignment-skip",
    ),
]
