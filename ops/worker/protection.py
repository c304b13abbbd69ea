"""Scale-in protection for busy EC2 workers.

While a worker instance runs at least one task it asks its Auto Scaling group
not to pick it for scale-in; when it is idle again it lifts the protection.
The group then removes idle instances first, and the termination lifecycle
hook (ops/) covers the rest: a worker told to stop finishes the task in hand.

Only active when settings.ASG_NAME and the instance id are known (on EC2 the id
comes from the instance metadata service; settings.EC2_INSTANCE_ID overrides it).
Prefork pool processes share one counter file under an flock, so the
protection changes only on the 0 -> 1 and 1 -> 0 transitions of the whole
instance.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import urllib.request

from celery.signals import task_postrun, task_prerun
from django.conf import settings

log = logging.getLogger(__name__)


@functools.cache
def instance_id() -> str | None:
    if settings.EC2_INSTANCE_ID:
        return settings.EC2_INSTANCE_ID
    if not settings.ASG_NAME:
        return None
    try:  # IMDSv2: a session token first, then the id
        req = urllib.request.Request(
            "http://169.254.169.254/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        token = urllib.request.urlopen(req, timeout=1).read().decode()
        req = urllib.request.Request(
            "http://169.254.169.254/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token}
        )
        return urllib.request.urlopen(req, timeout=1).read().decode()
    except OSError:
        log.warning("no instance metadata: scale-in protection is off")
        return None


@functools.cache
def _autoscaling():
    from ops.deploy.clients import client

    return client("autoscaling", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION)


def _step(delta: int) -> int:
    """Add ``delta`` to the instance's active-task count; return the new count."""
    counter = settings.ACTIVE_TASKS_FILE
    counter.parent.mkdir(parents=True, exist_ok=True)
    with open(counter, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        raw = fh.read().strip()
        count = max(0, (int(raw) if raw.isdigit() else 0) + delta)
        fh.seek(0)
        fh.truncate()
        fh.write(str(count))
        return count


def set_protection(protected: bool) -> None:
    group, instance = settings.ASG_NAME, instance_id()
    if not (group and instance):
        return
    try:
        _autoscaling().set_instance_protection(
            AutoScalingGroupName=group, InstanceIds=[instance], ProtectedFromScaleIn=protected
        )
    except Exception as exc:  # protection is a courtesy to the scaler; the task goes on
        log.warning("could not set scale-in protection=%s: %s", protected, exc)


@task_prerun.connect
def _task_started(**kwargs):
    if settings.ASG_NAME and _step(+1) == 1:
        set_protection(True)


@task_postrun.connect
def _task_finished(**kwargs):
    if settings.ASG_NAME and _step(-1) == 0:
        set_protection(False)
