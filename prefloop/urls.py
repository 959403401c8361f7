from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from prefloop import auth, views

urlpatterns = [
    path("admin/", admin.site.urls),
    # Django's log-in page with rate limits (429 while locked out), ahead of its own.
    path("accounts/login/", auth.LoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
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
