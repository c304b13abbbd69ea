"""The ops page: staff only, shows the pool and decisions, and edits the policy."""

import pytest

from imageshare.console.models import ScalingDecision, ScalingPolicy

pytestmark = pytest.mark.django_db


def test_the_ops_page_is_for_staff_only(client, owner):
    assert client.get("/ops/").status_code == 302  # to the login
    client.force_login(owner)
    assert client.get("/ops/").status_code == 302


def test_it_shows_queue_depth_pool_and_recent_decisions(client, staff, aws, monkeypatch, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    ScalingDecision.objects.create(
        at=0, provider="local", action="out", previous=1, desired=3, reason="out: a test burst"
    )
    client.force_login(staff)
    page = client.get("/ops/").content.decode()
    assert "imageshare-thumbnails-dlq" in page
    assert "out: a test burst" in page
    assert '<span class="big" data-live="pool.running">0</span>' in page
    from bench.load import RUNNING  # the load generator samples the pool from this page

    assert RUNNING.search(page).groups() == ("0", "0")


def test_staff_edit_the_policy_and_bad_values_are_refused(client, staff, aws):
    client.force_login(staff)
    form = {
        f.name: getattr(ScalingPolicy.current(), f.name)
        for f in ScalingPolicy._meta.fields
        if f.name not in ("id", "updated_at", "manual", "manual_desired")  # manual mode: the console's buttons
    }
    form.update(max_workers=12, enabled="on")
    assert client.post("/ops/", form).status_code == 302
    assert ScalingPolicy.current().max_workers == 12
    form.update(min_workers=20)
    resp = client.post("/ops/", form)
    assert resp.status_code == 400
    assert "bounds must satisfy" in resp.content.decode()
    assert ScalingPolicy.current().min_workers != 20


def test_staff_retry_every_image_a_retry_can_cure_and_no_other(client, staff, owner, queue):
    from imageshare.images.models import Image

    def failed(code):
        return Image.objects.create(
            owner=owner,
            original_key="originals/x",
            status=Image.Status.FAILED,
            failure_code=code,
            width=1,
            height=1,
            byte_size=1,
        )

    crashed, timed_out, corrupt = failed("processing_crashed"), failed("timeout"), failed("corrupt_image")
    client.force_login(staff)
    assert "retry can cure" in client.get("/ops/").content.decode()
    resp = client.post("/ops/retry-failed", follow=True)
    assert "Queued 2 failed image(s) again." in resp.content.decode()
    statuses = {i.pk: i.status for i in Image.objects.all()}
    assert statuses[crashed.pk] == statuses[timed_out.pk] == Image.Status.PENDING
    assert statuses[corrupt.pk] == Image.Status.FAILED


def test_only_staff_can_retry_failed_images(client, owner, queue):
    from imageshare.images.models import Image

    image = Image.objects.create(
        owner=owner,
        original_key="originals/x",
        status=Image.Status.FAILED,
        failure_code="timeout",
        width=1,
        height=1,
        byte_size=1,
    )
    client.force_login(owner)
    assert client.post("/ops/retry-failed").status_code == 302  # to the login
    assert Image.objects.get(pk=image.pk).status == Image.Status.FAILED
