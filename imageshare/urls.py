from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from imageshare.console import views as ops_views
from imageshare.images import api, seed, views


def healthz(request):
    return JsonResponse({"ok": True})


handler400 = "imageshare.images.views.bad_request"
handler404 = "imageshare.images.views.page_not_found"
handler500 = "imageshare.images.views.server_error"

urlpatterns = [
    # Pages
    path("", views.home, name="home"),
    path("upload", views.upload_form, name="upload"),
    path("gallery", views.gallery, name="gallery"),
    path("images/<uuid:image_id>", views.image_page, name="image"),
    path("images/<uuid:image_id>/delete", views.image_delete, name="image-delete"),
    path("images/<uuid:image_id>/retry", views.image_retry, name="image-retry"),
    path("i/<str:image_id>/<str:name>", api.FileView.as_view(), name="image-file"),
    # Accounts (Django's auth views)
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/new", views.account_new, name="account-new"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("accounts/reset/", views.RateLimitedPasswordResetView.as_view(), name="password_reset"),
    path("accounts/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # The JSON API
    path("api/v1/images", api.ImageListView.as_view(), name="api-images"),
    path("api/v1/images/<str:image_id>", api.ImageDetailView.as_view(), name="api-image"),
    path("api/v1/images/<str:image_id>/renditions", api.RenditionView.as_view(), name="api-renditions"),
    path("api/v1/images/<str:image_id>/retry", api.RetryView.as_view(), name="api-retry"),
    path("api/v1/uploads", api.DirectUploadView.as_view(), name="api-uploads"),
    path("api/v1/uploads/<str:upload_id>/finalize", api.FinalizeView.as_view(), name="api-upload-finalize"),
    path("api/v1/token", api.TokenView.as_view(), name="api-token"),
    path("api/v1/account", api.AccountView.as_view(), name="api-account"),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="api-schema"),
    # Seed-compatible endpoints
    path("api/register", seed.register, name="seed-register"),
    path("api/upload", seed.upload, name="seed-upload"),
    # Operations
    path("ops/", ops_views.ops_page, name="ops"),
    path("ops/queue.json", ops_views.QueueView.as_view(), name="ops-queue"),
    path("ops/retry-failed", ops_views.retry_failed, name="ops-retry-failed"),
    path("ops/metrics.json", ops_views.MetricsJsonView.as_view(), name="ops-metrics-json"),
    path("ops/pool/<str:action>", ops_views.pool_control, name="ops-pool"),
    path("ops/redrive-dead-letters", ops_views.redrive_dead_letters, name="ops-redrive"),
    path("ops/delete-everything", ops_views.delete_everything, name="ops-delete-everything"),
    path("metrics", ops_views.MetricsView.as_view(), name="ops-metrics"),
]
