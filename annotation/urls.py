from django.urls import include, path

app_name = "annotation"
urlpatterns = [
    path("", include("annotation.apis.core_urls")),
    path("", include("annotation.apis.io_urls")),
]
