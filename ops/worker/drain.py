"""On a worker instance: when the Auto Scaling group wants to terminate it, let the worker finish first.

1. Every 10 s, read this instance's lifecycle state (IMDSv2 gives the id).
2. On ``Terminating:Wait`` (the group's termination lifecycle hook), stop
   the worker service: systemd sends Celery SIGTERM, a warm shutdown that
   finishes the task in hand.
3. Then tell the group to continue (``complete_lifecycle_action``).
"""

import logging
import os
import subprocess
import time

from ops.deploy.clients import client

log = logging.getLogger("imageshare.drain")


def drain_once(autoscaling, instance_id: str, group: str, hook: str, stop_worker) -> bool:
    """One check; True when this instance was drained and released."""
    found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    if not found or found[0]["LifecycleState"] != "Terminating:Wait":
        return False
    log.info("terminating: stopping the worker after its current task")
    stop_worker()
    autoscaling.complete_lifecycle_action(
        LifecycleHookName=hook, AutoScalingGroupName=group, LifecycleActionResult="CONTINUE", InstanceId=instance_id
    )
    return True


def main():
    # Settings come from the instance's environment file, read by Django's settings module.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageshare.settings")
    from django.conf import settings

    from ops.worker.protection import instance_id

    logging.basicConfig(level=logging.INFO)
    group = settings.ASG_NAME
    hook = group.removesuffix("-workers") + "-drain"
    autoscaling = client("autoscaling", endpoint_url=None, region=settings.AWS_REGION)
    me = instance_id()
    while not drain_once(
        autoscaling, me, group, hook, lambda: subprocess.run(["systemctl", "stop", "imageshare-worker"], check=False)
    ):
        time.sleep(10)


if __name__ == "__main__":
    main()
