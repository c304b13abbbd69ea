"""The console's controls: staff only, CSRF-protected, each in the audit list; the hook honours manual mode."""

import base64
import json
import os
import subprocess
import time

import pytest
from django.test import Client

from imageshare.console.autoscaler import Autoscaler
from imageshare.console.controls import routing_key_of
from imageshare.console.models import AuditEntry, ScalingDecision, ScalingPolicy
from imageshare.images.models import Image
from ops.deploy.clients import client as aws_client
from ops.process import start_time
from ops.scaling.providers import AutoScalingGroupProvider, LocalProvider
from tests.conftest import upload_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool_dir(settings, tmp_path):
    """The local provider's files live here: an empty pool unless a test adds a worker."""
    settings.VAR_DIR = tmp_path
    (tmp_path / "workers").mkdir()
    return tmp_path / "workers"


@pytest.fixture
def staff_client(staff, aws, pool_dir):
    """A client of its own: ``owner_client`` logs the owner in on pytest-django's ``client``."""
    browser = Client()
    browser.force_login(staff)
    return browser


def manual() -> tuple[bool, int | None]:
    p = ScalingPolicy.current()
    return p.manual, p.manual_desired


# --- who may -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/ops/pool/grow", "/ops/pool/stop", "/ops/redrive-dead-letters", "/ops/delete-everything"]
)
def test_a_user_who_is_not_staff_gets_no_control(client, owner, aws, pool_dir, path):
    assert client.post(path, {"confirm": "delete everything"}).status_code == 302  # anonymous: to the login
    client.force_login(owner)
    resp = client.post(path, {"confirm": "delete everything"})
    assert resp.status_code == 302 and "/login" in resp["Location"]
    assert client.get("/ops/").status_code == 302
    assert client.get("/ops/metrics.json").status_code == 403
    assert manual() == (False, None)
    assert not AuditEntry.objects.exists()


def test_controls_refuse_a_post_without_the_csrf_token(staff, aws, pool_dir):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)
    assert browser.post("/ops/pool/grow").status_code == 403
    assert browser.post("/ops/delete-everything", {"confirm": "delete everything"}).status_code == 403
    assert manual() == (False, None)
    # The page's own form carries the token: the same POST then works.
    browser.get("/ops/")
    token = browser.cookies["csrftoken"].value
    resp = browser.post("/ops/pool/grow", {"csrfmiddlewaretoken": token})
    assert resp.status_code == 302
    assert manual() == (True, 1)


def test_controls_answer_post_only(staff_client):
    assert staff_client.get("/ops/pool/grow").status_code == 405
    assert staff_client.post("/ops/pool/explode").status_code == 404


# --- the pool ----------------------------------------------------------------------
def test_grow_shrink_stop_and_back_to_automatic_each_leave_an_audit_entry(staff_client, staff):
    ScalingPolicy.objects.update_or_create(pk=1, defaults={"max_workers": 3})
    # Automatic, an empty local pool: "one more" counts from the pool as it is (0).
    page = staff_client.post("/ops/pool/grow", follow=True).content.decode()
    assert "the pool goes from 0 to 1" in page
    assert manual() == (True, 1)
    staff_client.post("/ops/pool/grow")
    staff_client.post("/ops/pool/grow")
    page = staff_client.post("/ops/pool/grow", follow=True).content.decode()  # the policy's max is 3
    assert manual() == (True, 3) and "stays at 3" in page
    staff_client.post("/ops/pool/shrink")
    assert manual() == (True, 2)
    page = staff_client.post("/ops/pool/stop", follow=True).content.decode()
    assert manual() == (True, 0) and "finishes its tasks in hand" in page
    assert "Manual" in page and "held at 0 worker(s) by staffer" in page
    assert "from 0 to" not in staff_client.post("/ops/pool/shrink", follow=True).content.decode()
    page = staff_client.post("/ops/pool/automatic", follow=True).content.decode()
    assert manual() == (False, None) and "Automatic" in page

    entries = list(AuditEntry.objects.order_by("id").values_list("username", "action", "detail"))
    assert entries == [
        ("staffer", "grow", "manual: 0 -> 1 worker(s)"),
        ("staffer", "grow", "manual: 1 -> 2 worker(s)"),
        ("staffer", "grow", "manual: 2 -> 3 worker(s)"),
        ("staffer", "shrink", "manual: 3 -> 2 worker(s)"),
        ("staffer", "stop", "manual: 2 -> 0 worker(s)"),
        ("staffer", "automatic", "back to the backlog policy (was held at 0)"),
    ]
    assert all(e.user == staff and e.created_at for e in AuditEntry.objects.all())
    page = staff_client.get("/ops/").content.decode()
    assert "what operators did" in page and "manual: 2 -&gt; 0 worker(s)" in page


def queue_reader(visible):
    return lambda: {"work": {"visible": visible, "in_flight": 0}, "dead_letter": {"visible": 2}}


def test_the_hook_holds_the_operators_number_and_the_policy_acts_again_once_automatic(asg):
    name, autoscaling = asg
    hook = Autoscaler(AutoScalingGroupProvider(name, autoscaling), read_queue=queue_reader(1000))
    ScalingPolicy.objects.update_or_create(pk=1, defaults={"manual": True, "manual_desired": 2})
    d = hook.tick()
    assert (d.action, d.desired) == ("out", 2) and d.reason.startswith("manual:")
    assert d.dead_letter == 2
    d = hook.tick()  # a backlog of 1000: the policy would grow; manual holds
    assert d.action == "hold" and d.desired == 2 and d.reason.startswith("hold (manual)")
    # Stop on the EC2 group: the group's own minimum (1) stays, and the decision says why.
    ScalingPolicy.objects.filter(pk=1).update(manual_desired=0)
    d = hook.tick()
    assert (d.action, d.desired) == ("in", 1) and "bounds are 1..5" in d.reason
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == 1
    ScalingPolicy.objects.filter(pk=1).update(manual=False, manual_desired=None)
    d = hook.tick()
    assert d.action == "out" and not d.reason.startswith(("manual", "hold"))


def test_manual_mode_acts_even_when_the_policy_is_disabled(asg):
    name, autoscaling = asg
    ScalingPolicy.objects.update_or_create(pk=1, defaults={"enabled": False, "manual": True, "manual_desired": 3})
    d = Autoscaler(AutoScalingGroupProvider(name, autoscaling), read_queue=queue_reader(0)).tick()
    assert (d.action, d.desired) == ("out", 3)


# --- the dead-letter queue -----------------------------------------------------------
def _with_routing_key(body: str, key: str) -> str:
    envelope = json.loads(base64.b64decode(body))
    envelope["properties"]["delivery_info"]["routing_key"] = key
    return base64.b64encode(json.dumps(envelope).encode()).decode()


def _drain(sqs, url) -> list[str]:
    bodies = []
    for _ in range(20):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            break
        for m in batch:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return bodies


def test_redrive_moves_dead_letters_back_to_the_queue_each_came_from(
    staff_client, queue, owner_client, django_capture_on_commit_callbacks, settings
):
    sqs = queue["sqs"]
    _drain(sqs, queue["dlq_url"])
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    (work_body,) = _drain(sqs, queue["queue_url"])
    (analysis_body,) = _drain(sqs, queue["analysis_url"])
    assert routing_key_of(work_body) == settings.SQS_QUEUE_NAME
    assert routing_key_of(analysis_body) == settings.SQS_ANALYSIS_QUEUE_NAME
    extras_body = _with_routing_key(work_body, settings.SQS_EXTRAS_QUEUE_NAME)
    for body in (work_body, extras_body, analysis_body, "not a celery message"):
        sqs.send_message(QueueUrl=queue["dlq_url"], MessageBody=body)

    page = staff_client.post("/ops/redrive-dead-letters", follow=True).content.decode()
    assert "Moved 4 message(s)" in page
    assert _drain(sqs, queue["dlq_url"]) == []
    assert sorted(_drain(sqs, queue["queue_url"])) == sorted([work_body, "not a celery message"])
    assert _drain(sqs, queue["extras_url"]) == [extras_body]
    assert _drain(sqs, queue["analysis_url"]) == [analysis_body]
    entry = AuditEntry.objects.get(action="redrive")
    assert entry.username == "staffer" and entry.detail.startswith("4 ")


# --- all application data --------------------------------------------------------------
def _keys(aws, prefix=""):
    return [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix=prefix).get("Contents", [])]


def test_delete_everything_needs_the_typed_confirmation_and_says_what_went(staff_client, queue, owner_client):
    s3 = queue["s3"]
    for prefix in ("originals/", "renditions/"):
        for key in _keys(queue, prefix):
            s3.delete_object(Bucket=queue["bucket"], Key=key)
    for _ in range(2):
        owner_client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    image = Image.objects.first()
    s3.put_object(Bucket=queue["bucket"], Key=f"renditions/{image.id}/small", Body=b"x")
    s3.put_object(Bucket=queue["bucket"], Key="elsewhere/keep-me", Body=b"x")
    assert len(_keys(queue, "originals/")) == 2

    page = staff_client.post("/ops/delete-everything", {"confirm": "yes"}, follow=True).content.decode()
    assert "Nothing was deleted" in page
    assert Image.objects.count() == 2 and not AuditEntry.objects.exists()

    page = staff_client.post("/ops/delete-everything", {"confirm": "Delete everything "}, follow=True)
    assert "Deleted 2 image(s), 0 rendition row(s), 3 S3 object(s)." in page.content.decode()
    assert Image.objects.count() == 0
    assert _keys(queue, "originals/") == [] and _keys(queue, "renditions/") == []
    assert "elsewhere/keep-me" in _keys(queue)
    entry = AuditEntry.objects.get(action="delete everything")
    assert entry.username == "staffer" and "3 S3 object(s)" in entry.detail


def test_retry_failed_and_policy_changes_are_audited_too(staff_client, queue, owner):
    Image.objects.create(
        owner=owner, original_key="originals/x", status="failed", failure_code="timeout", width=1, height=1, byte_size=1
    )
    staff_client.post("/ops/retry-failed")
    form = {
        f.name: getattr(ScalingPolicy.current(), f.name)
        for f in ScalingPolicy._meta.fields
        if f.name not in ("id", "updated_at", "manual", "manual_desired")
    }
    form.update(max_workers=6, enabled="on")
    assert staff_client.post("/ops/", form).status_code == 302
    actions = dict(AuditEntry.objects.values_list("action", "detail"))
    assert actions == {"retry failed": "1 image(s) queued again", "policy": "max_workers=6"}


# --- the workers -----------------------------------------------------------------------
@pytest.fixture
def fake_worker(pool_dir):
    """A process standing in for a local worker: the provider knows it by its pid file and start time."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while start_time(proc.pid) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        (pool_dir / "worker1.pid").write_text(f"{proc.pid} {start_time(proc.pid)}")
        (pool_dir / "worker1.ready").touch()
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_the_local_provider_lists_each_worker_with_state_host_and_uptime(fake_worker, pool_dir):
    (w,) = LocalProvider(pool_dir, None, dict(os.environ), 2).state().workers
    assert (w.id, w.state, w.pid) == ("worker1", "in service", fake_worker.pid)
    assert w.host and 0 <= time.time() - w.started_at < 60
    (pool_dir / "worker1.stopping").touch()
    assert LocalProvider(pool_dir, None, dict(os.environ), 2).state().workers[0].state == "stopping"


def test_the_group_lists_each_instance_with_its_host_and_launch_time(asg):
    name, autoscaling = asg
    ec2 = aws_client("ec2", endpoint_url=None, region="us-east-1")
    (w,) = AutoScalingGroupProvider(name, autoscaling, ec2=ec2).state().workers
    assert w.id.startswith("i-") and w.state == "in service" and w.detail == "InService"
    assert w.host and w.started_at
    # Without the EC2 client (the hook's view) the same instance, without the extras.
    (bare,) = AutoScalingGroupProvider(name, autoscaling).state().workers
    assert bare.id == w.id and bare.host == "" and bare.started_at is None


def test_the_console_shows_the_workers_and_says_what_it_does_not_measure(staff_client, fake_worker):
    page = staff_client.get("/ops/").content.decode()
    assert "worker1" in page and "state-in-service" in page
    assert "not measured" in page and "does not record which worker" in page
    data = staff_client.get("/ops/metrics.json").json()
    (row,) = data["workers"]
    assert row["id"] == "worker1" and row["state"] == "in service" and row["tasks_done"] is None
    assert data["pool"]["running"] == 1 and data["workers_measured"] is False


FLOWER_METRICS = b"""# HELP flower_events_total Number of events
# TYPE flower_events_total counter
flower_events_total{task="thumbnails.tasks.make_renditions",type="task-succeeded",worker="worker1@box"} 41.0
flower_events_total{task="thumbnails.tasks.make_custom",type="task-succeeded",worker="worker1@box"} 1.0
flower_events_total{task="thumbnails.tasks.make_renditions",type="task-received",worker="worker1@box"} 45.0
flower_events_total{task="thumbnails.tasks.make_renditions",type="task-succeeded",worker="worker9@box"} 7.0
"""


def test_with_flower_each_worker_shows_tasks_done_and_current_task(staff_client, fake_worker, settings, monkeypatch):
    from imageshare.console import workers

    settings.CELERY_EVENTS_URL = "redis://127.0.0.1:1/0"
    settings.FLOWER_URL = "http://127.0.0.1:1/"
    task = {"name": "thumbnails.tasks.make_renditions", "args": "('0a1b2c3d-4e5f',)", "worker": "worker1@box"}
    started = {"t1": {**task, "started": time.time() - 3}}
    answers = {"metrics": FLOWER_METRICS, "api/tasks?state=STARTED&limit=200": json.dumps(started).encode()}
    monkeypatch.setattr(workers, "_get", lambda path, auth: answers[path])
    (row,) = staff_client.get("/ops/metrics.json").json()["workers"]
    assert row["tasks_done"] == 42
    assert row["current_task"].startswith("make_renditions(0a1b2c3d…) for 3")


def test_a_flower_that_does_not_answer_leaves_the_counts_unmeasured(staff_client, fake_worker, settings):
    settings.CELERY_EVENTS_URL = "redis://127.0.0.1:1/0"
    settings.FLOWER_URL = "http://127.0.0.1:1/"  # nothing listens there
    (row,) = staff_client.get("/ops/metrics.json").json()["workers"]
    assert row["tasks_done"] is None


def test_prometheus_keeps_the_worker_count_and_the_mode(staff_client, fake_worker):
    ScalingPolicy.objects.update_or_create(pk=1, defaults={"manual": True, "manual_desired": 1})
    text = staff_client.get("/metrics").content.decode()
    assert 'imageshare_workers{state="running"} 1.0' in text
    assert "imageshare_scaling_manual 1.0" in text
    assert ScalingDecision.objects.count() == 0  # reading never records a decision


def test_flower_counts_go_to_the_worker_of_that_name_locally_and_of_that_host_on_ec2():
    from imageshare.console.workers import Activity, worker_rows
    from ops.scaling.providers import PoolState, WorkerInfo

    members = (
        WorkerInfo("worker1", "in service", "box", pid=11),
        WorkerInfo("worker2", "in service", "box", pid=12),  # just started: nothing done yet
        WorkerInfo("i-0abc", "in service", "ip-10-0-0-5.ec2.internal"),
    )
    activity = {"worker1@box": Activity(6), "worker@ip-10-0-0-5.ec2.internal": Activity(3, ["make_renditions(…)"])}
    rows = worker_rows(PoolState(3, 0, 0, None, workers=members), activity=activity)
    assert [(r["tasks_done"], r["current_task"]) for r in rows] == [(6, ""), (0, ""), (3, "make_renditions(…)")]


def test_instances_the_group_has_yet_to_launch_show_as_starting():
    from imageshare.console.workers import worker_rows
    from ops.scaling.providers import PoolState, WorkerInfo

    pool = PoolState(1, 2, 0, None, workers=(WorkerInfo("i-0abc", "in service", "ip-10-0-0-5"),))
    rows = worker_rows(pool)
    assert [(r["id"], r["state"]) for r in rows] == [("i-0abc", "in service"), ("2 to launch", "starting")]
