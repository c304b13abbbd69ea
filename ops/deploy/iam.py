"""The instances' roles: least privilege, each resource named (a test fails on a needless "*")."""

from __future__ import annotations

import json

from ops.deploy.clients import every
from ops.deploy.config import TAG, Deployment

# IAM actions AWS does not scope to a resource (no resource-level
# permissions); only these may use "*", each with a reason.
UNSCOPABLE_ACTIONS = {
    "cloudwatch:PutMetricData": "no resource-level permissions; limited by the namespace condition",
    "cloudwatch:GetMetricStatistics": "no resource-level permissions",
    "cloudwatch:GetMetricData": "no resource-level permissions",
    "autoscaling:DescribeAutoScalingGroups": "Describe* calls take no resource",
    "autoscaling:DescribeAutoScalingInstances": "Describe* calls take no resource",
    "ec2:DescribeInstances": "Describe* calls take no resource",
}


# Statements both roles need.
PUBLISH_METRICS = {
    "Sid": "PublishMetrics",
    "Effect": "Allow",
    "Action": ["cloudwatch:PutMetricData"],
    "Resource": ["*"],
    "Condition": {"StringEquals": {"cloudwatch:namespace": "imageshare"}},
}


def _read_config(d: Deployment) -> dict:
    return {
        "Sid": "ReadConfig",
        "Effect": "Allow",
        "Action": ["ssm:GetParametersByPath", "ssm:GetParameters"],
        "Resource": [d.params_arn()],
    }


def worker_policy(d: Deployment) -> dict:
    b = d.cfg.bucket
    work_queues = [d.queue_arn(d.cfg.queue), d.queue_arn(d.cfg.extras_queue), d.queue_arn(d.cfg.analysis_queue)]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadOriginals",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{b}/originals/*"],
            },
            {
                "Sid": "WriteRenditions",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": [f"arn:aws:s3:::{b}/renditions/*"],
            },
            {
                "Sid": "ConsumeWorkQueue",
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                ],
                "Resource": work_queues,
            },
            {
                # A transient error retries the task: Celery sends it again, to the
                # queue it came from. Never to the dead-letter queue.
                "Sid": "RetryOnWorkQueues",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": work_queues,
            },
            {
                "Sid": "ProtectOwnInstanceAndDrain",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:SetInstanceProtection",
                    "autoscaling:CompleteLifecycleAction",
                    "autoscaling:RecordLifecycleActionHeartbeat",
                ],
                "Resource": [d.group_arn(d.cfg.groups["workers"])],
            },
            _read_config(d),
            {
                "Sid": "DescribeOwnGroup",
                "Effect": "Allow",
                "Action": ["autoscaling:DescribeAutoScalingInstances"],
                "Resource": ["*"],
            },
            PUBLISH_METRICS,
        ],
    }


def web_policy(d: Deployment) -> dict:
    b = d.cfg.bucket
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StoreAndServeImages",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                # incoming/: direct uploads (the presigned POST is the web role's PutObject; finalize
                # reads, copies and deletes the object).
                "Resource": [
                    f"arn:aws:s3:::{b}/originals/*",
                    f"arn:aws:s3:::{b}/renditions/*",
                    f"arn:aws:s3:::{b}/incoming/*",
                ],
            },
            {
                "Sid": "ListForDeletes",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{b}"],
            },
            {
                "Sid": "Enqueue",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": [
                    d.queue_arn(d.cfg.queue),
                    d.queue_arn(d.cfg.extras_queue),
                    d.queue_arn(d.cfg.analysis_queue),
                ],
            },
            {
                "Sid": "WatchQueues",
                "Effect": "Allow",
                "Action": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                "Resource": [d.queue_arn(name) for name in d.cfg.queues],
            },
            {
                # The periodic duties' dead-letter sweep marks those images failed.
                "Sid": "SweepDeadLetters",
                "Effect": "Allow",
                "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage"],
                "Resource": [d.queue_arn(d.cfg.dlq)],
            },
            {
                "Sid": "ScaleWorkers",
                "Effect": "Allow",
                "Action": ["autoscaling:SetDesiredCapacity"],
                "Resource": [d.group_arn(d.cfg.groups["workers"])],
            },
            _read_config(d),
            {
                "Sid": "ObserveFleet",
                "Effect": "Allow",
                # The console reads the pool's metrics back and shows each instance's host and uptime.
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "cloudwatch:GetMetricStatistics",
                    "cloudwatch:GetMetricData",
                    "ec2:DescribeInstances",
                ],
                "Resource": ["*"],
            },
            PUBLISH_METRICS,
        ],
    }


EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def ensure_roles(d: Deployment) -> None:
    iam = d.c("iam")
    roles = {r["RoleName"] for r in every(iam, "list_roles", "Roles[]")}
    profiles = {p["InstanceProfileName"] for p in every(iam, "list_instance_profiles", "InstanceProfiles[]")}
    for role, policy in ((d.cfg.roles["worker"], worker_policy(d)), (d.cfg.roles["web"], web_policy(d))):
        if d.record("iam:role", role, "ok" if role in roles else "create"):
            iam.create_role(
                RoleName=role, AssumeRolePolicyDocument=json.dumps(EC2_TRUST), Tags=[{"Key": TAG, "Value": d.cfg.stack}]
            )
        current = None
        if role in roles:
            try:
                current = iam.get_role_policy(RoleName=role, PolicyName=d.cfg.role_policy)["PolicyDocument"]
                current = json.loads(current) if isinstance(current, str) else current
            except iam.exceptions.NoSuchEntityException:
                current = None
        action = "ok" if current == policy else ("update" if current else "create")
        if d.record("iam:role-policy", role, action):
            iam.put_role_policy(RoleName=role, PolicyName=d.cfg.role_policy, PolicyDocument=json.dumps(policy))
        if d.record("iam:instance-profile", role, "ok" if role in profiles else "create"):
            iam.create_instance_profile(InstanceProfileName=role)
            iam.add_role_to_instance_profile(InstanceProfileName=role, RoleName=role)


def remove_roles(d: Deployment) -> list[str]:
    iam = d.c("iam")
    removed = []
    for role in d.cfg.roles.values():
        try:
            iam.remove_role_from_instance_profile(InstanceProfileName=role, RoleName=role)
        except iam.exceptions.NoSuchEntityException:
            pass
        try:
            iam.delete_instance_profile(InstanceProfileName=role)
            removed.append(f"iam:instance-profile {role}")
        except iam.exceptions.NoSuchEntityException:
            pass
        try:
            iam.delete_role_policy(RoleName=role, PolicyName=d.cfg.role_policy)
            iam.delete_role(RoleName=role)
            removed.append(f"iam:role {role}")
        except iam.exceptions.NoSuchEntityException:
            pass
    return removed
