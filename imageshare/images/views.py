"""Server-rendered pages: upload, gallery, image page, account creation.

Belongs here: the pages' views and forms, and Django's error handlers. The
rules they apply are in ``uploads``, ``commands`` and ``access``; a refusal
reaches the page through ``http_errors.show_on_page``.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.contrib.auth.validators import ASCIIUsernameValidator
from django.contrib.auth.views import PasswordResetView, redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from thumbnails.engine import MAX_SPEC_SIDE

from . import doors, quotas
from .access import find_visible, is_open, owned_or_404
from .commands import delete_image, retry_image
from .commands import request_rendition as queue_rendition
from .errors import ImageshareError
from .http_errors import api_error_json, http_status, show_on_page
from .models import Image
from .payloads import face_groups, image_payload
from .seed import SeedUploadView
from .uploads import accept_upload

PAGE_SIZE = 24
HISTORY_FACES = 200


class UploadForm(forms.Form):
    """Label and help text for the upload page (its multi-file input is in the template)."""

    image = forms.FileField(
        label="Photos",
        help_text=f"JPEG, PNG, GIF, WebP; up to {settings.MAX_UPLOAD_BYTES // (1024 * 1024)} MB each.",
    )


class RenditionForm(forms.Form):
    width = forms.IntegerField(min_value=1, max_value=MAX_SPEC_SIDE)
    height = forms.IntegerField(min_value=1, max_value=MAX_SPEC_SIDE)
    mode = forms.ChoiceField(choices=[("fit", "fit inside"), ("fill", "fill (centre crop)")])


def _accepts(request, media_type: str) -> bool:
    return media_type in request.headers.get("Accept", "")


def _allows_json(request) -> bool:
    """Accept allows JSON: no header (anything goes), */*, application/* or application/json."""
    accept = request.headers.get("Accept", "").strip()
    return not accept or any(t in accept for t in ("application/json", "application/*", "*/*"))


def _asks_for_json(request) -> bool:
    """Accept names JSON and not HTML: a script, not a browser."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


# POST / is the seed-compatible JSON door, documented with a curl line that
# sends no CSRF token: it authenticates by token or basic auth only, never by
# the session cookie (SeedUploadView), so lifting CSRF here opens no
# cross-site hole. The browser's form posts to /upload, under CSRF.
@csrf_exempt
def home(request):
    """The home page, and the seed-compatible ``POST /`` for JSON clients.

    1. POST: the JSON upload door when Accept allows JSON (or is absent,
       which allows anything), else 406.
    2. Any other method but GET/HEAD: 405, as JSON when JSON is asked for.
    3. GET/HEAD asking for JSON: 405 JSON (only POST means something to a
       script here).
    4. Otherwise the page (after login in private mode).
    """
    if request.method == "POST":
        if _allows_json(request):
            return SeedUploadView.as_view()(request)
        return api_error_json(406, "not_acceptable", "This endpoint answers application/json: ask for it in Accept.")
    if request.method not in ("GET", "HEAD") or _asks_for_json(request):
        if _accepts(request, "text/html"):
            return render(request, "images/error.html", {"message": "Method not allowed."}, status=405)
        response = api_error_json(405, "method_not_allowed", f"{request.method} is not allowed here; POST an image.")
        response["Allow"] = "GET, HEAD, POST"
        return response
    if not request.user.is_authenticated and not is_open():
        return redirect_to_login(request.get_full_path())
    return render(request, "images/home.html", _home_context(request, UploadForm()))


@require_http_methods(["POST"])
def upload_form(request):
    """The upload page's form (several files at once), under CSRF, through the one upload service."""
    if not request.user.is_authenticated and not is_open():
        return redirect_to_login(reverse("home"))
    return _upload_from_form(request)


def _upload_from_form(request):
    files = request.FILES.getlist("image")
    if not files:
        messages.error(request, "Choose at least one photo to upload.")
        return render(request, "images/home.html", _home_context(request, UploadForm()), status=400)
    try:
        doors.check_form_uploads(request, len(files))
    except ImageshareError as exc:
        status = show_on_page(request, exc)
        return render(request, "images/home.html", _home_context(request, UploadForm()), status=status)
    done, last = [], None
    for upload in files:
        try:
            last = accept_upload(
                request.user,
                upload,
                declared_length=request.META.get("CONTENT_LENGTH"),
                files_in_request=len(files),
            )
            done.append(upload.name)
        except ImageshareError as exc:
            status = show_on_page(request, exc, about=upload.name)
    if not done:
        return render(request, "images/home.html", _home_context(request, UploadForm()), status=status)
    messages.success(request, f"Uploaded {', '.join(done)}; thumbnails are on their way.")
    if not request.user.is_authenticated:  # open mode, anonymous: show what they uploaded
        return redirect("image", image_id=last.id)
    return redirect("home")


def _home_context(request, form):
    images = []
    if request.user.is_authenticated:
        qs = Image.objects.filter(owner=request.user).prefetch_related("renditions")[:12]
        images = [image_payload(i, request) for i in qs]
    return {"form": form, "images": images, "open_mode": is_open()}


STATUS_TABS = [("pending", "Processing"), ("ready", "Ready"), ("failed", "Failed")]


def gallery(request):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    status = request.GET.get("status", "ready")
    if status not in Image.Status.values:
        status = "ready"
    qs = Image.objects.filter(owner=request.user, status=status).prefetch_related("renditions")
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    counts = {s: Image.objects.filter(owner=request.user, status=s).count() for s, _ in STATUS_TABS}
    return render(
        request,
        "images/gallery.html",
        {
            "page": page,
            "images": [image_payload(i, request) for i in page.object_list],
            "tabs": [(s, label, counts[s]) for s, label in STATUS_TABS],
            "status": status,
            "storage": quotas.usage(request.user),
            # The newest HISTORY_FACES images by their faces (payloads.FACE_GROUPS).
            "face_groups": face_groups(
                Image.objects.filter(owner=request.user).select_related("analysis")[:HISTORY_FACES]
            ),
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
def image_page(request, image_id):
    image = find_visible(request.user, image_id)
    if image is None:
        raise Http404("No such image.")
    owner = request.user.is_authenticated and image.owner_id == request.user.pk
    form = RenditionForm()
    if request.method == "POST":
        if not owner:
            raise Http404("No such image.")
        form = RenditionForm(request.POST)
        if form.is_valid():
            try:
                name, existing = queue_rendition(image, **form.cleaned_data)
                messages.success(request, f"{name} {'is ready' if existing else 'is on its way'}.")
                return redirect("image", image_id=image.id)
            except ImageshareError as exc:
                show_on_page(request, exc)
    return render(
        request,
        "images/image.html",
        {"image": image_payload(image, request), "owner": owner, "form": form},
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["POST"])
def image_delete(request, image_id):
    image = owned_or_404(request.user, image_id)
    try:
        delete_image(image)
    except ImageshareError as exc:
        show_on_page(request, exc)
        return redirect("image", image_id=image_id)
    messages.success(request, f"Deleted {image.original_name or 'the image'}.")
    return redirect("gallery")


@require_http_methods(["POST"])
def image_retry(request, image_id):
    image = owned_or_404(request.user, image_id)
    try:
        retry_image(image)
        messages.success(request, "Trying again: the sizes appear here when they are ready.")
    except ImageshareError as exc:
        show_on_page(request, exc)
    return redirect("image", image_id=image_id)


class AccountCreationForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="For password resets.")

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def clean_username(self):
        username = super().clean_username()
        ASCIIUsernameValidator()(username)
        if len(username) > 64:
            raise forms.ValidationError("At most 64 characters.")
        return username


@staff_member_required
@require_http_methods(["GET", "POST"])
def account_new(request):
    """Staff create accounts (users cannot create or delete their own)."""
    form = AccountCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        messages.success(request, f"Created the account {user.username}.")
        return redirect("account-new")
    return render(request, "registration/account_new.html", {"form": form}, status=400 if form.errors else 200)


class RateLimitedPasswordResetView(PasswordResetView):
    """Django's password reset, at most PASSWORD_RESETS_PER_ADDRESS e-mails asked for per address."""

    def post(self, request, *args, **kwargs):
        try:
            doors.check_address(request, "password-reset", "PASSWORD_RESETS_PER_ADDRESS", "password resets")
        except ImageshareError as exc:
            response = render(request, "images/error.html", {"message": exc.message}, status=http_status(exc))
            response["Retry-After"] = str(getattr(exc, "retry_after", "") or 60)
            return response
        return super().post(request, *args, **kwargs)


def locked_out(request, *args, **kwargs):
    """django-axes' lockout answer: JSON for the API, a page for people. 429 either way."""
    if request.path.startswith("/api/") or not _accepts(request, "text/html") and request.path != "/login/":
        return api_error_json(429, "locked_out", "Too many failed logins; try again later.")
    return render(request, "registration/locked_out.html", status=429)


def _wants_json_error(request) -> bool:
    """The API's routes, and a script (not a browser) on any route: POST / is a JSON door too."""
    return request.path.startswith("/api/") or not _accepts(request, "text/html")


def bad_request(request, exception=None):
    """Django's own 400s, raised before a view runs (too many files or fields, a malformed body)."""
    if _wants_json_error(request):
        return api_error_json(400, "bad_request", f"The request could not be read: {exception or 'malformed'}.")
    return render(request, "images/error.html", {"message": "The request could not be read."}, status=400)


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return api_error_json(404, "not_found", "No such endpoint or object.")
    return render(request, "images/error.html", {"message": "Not found."}, status=404)


def server_error(request):
    if _wants_json_error(request):
        return api_error_json(500, "server_error", "Something went wrong on our side; it has been logged.")
    return render(request, "images/error.html", {"message": "Something went wrong on our side."}, status=500)
