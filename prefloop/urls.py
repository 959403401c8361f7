from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from frontend.views import apidocs
from prefloop import auth, tokens, views


def reset(view):
    return auth.password_reset_routed(view.as_view())


urlpatterns = [
    path("admin/", admin.site.urls),
    # Django's log-in page with rate limits (429 while locked out), ahead of its own.
    path("accounts/login/", auth.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(),
         name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(),
         name="password_change_done"),
    # Password reset only where mail can be sent (PREFLOOP_PASSWORD_RESET), else 404.
    path("accounts/password_reset/", reset(auth_views.PasswordResetView),
         name="password_reset"),
    path("accounts/password_reset/done/", reset(auth_views.PasswordResetDoneView),
         name="password_reset_done"),
    path("accounts/reset/<uidb64>/<token>/", reset(auth_views.PasswordResetConfirmView),
         name="password_reset_confirm"),
    path("accounts/reset/done/", reset(auth_views.PasswordResetCompleteView),
         name="password_reset_complete"),
    path("api/me/token", tokens.MyTokenApi.as_view(), name="my-token"),
    path("api/me/token/rotate", tokens.MyTokenRotateApi.as_view(), name="my-token-rotate"),
    path("api/me/token/revoke", tokens.MyTokenRevokeApi.as_view(), name="my-token-revoke"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files: no CDN needed.
    path("api/docs/", apidocs.SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", apidocs.RedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("healthz", views.healthz, name="healthz"),
    path("api/", include("annotation.urls")),
    path("api/", include("generation.urls")),
    path("api/", include("generation.feedback.urls")),
    path("api/", include("training.urls")),
    path("api/", include("training.rounds.urls")),
    path("", include("frontend.urls")),
]
handler400 = "prefloop.views.bad_request"
handler403 = "prefloop.views.permission_denied"
handler404 = "prefloop.views.page_not_found"
handler500 = "prefloop.views.server_error"
