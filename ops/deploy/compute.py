"""The instances: launch templates, their Auto Scaling groups, and the workers' drain hook.

The hook holds a terminating worker until the task in hand is done (ops/worker/drain.py
completes the lifecycle action), so scaling in never cuts a thumbnail short.
"""

from __future__ import annotations

from ops.deploy.clients import every, matches
from ops.deploy.config import TAG, Deployment
from ops.deploy.userdata import user_data


def default_image(d: Deployment) -> str:
    if d.cfg.image_id:
        return d.cfg.image_id
    ssm = d.c("ssm")
    try:
        return ssm.get_parameter(Name=d.cfg.parameter("WORKER_AMI"))["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        pass
    images = d.c("ec2").describe_images(
        Owners=["amazon", "136693071363"], Filters=[{"Name": "name", "Values": ["debian-12-amd64-*"]}]
    )["Images"]
    if not images:
        images = d.c("ec2").describe_images()["Images"]  # moto: any image will do
    return sorted(images, key=lambda i: i.get("CreationDate", ""))[-1]["ImageId"]


def _launch_templates(ec2, cfg) -> list[dict]:
    # By name: moto returns only the first 15 templates of an unfiltered
    # listing, without a token for the rest.
    names = list(cfg.launch_templates.values())
    return ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": names}])["LaunchTemplates"]


def ensure_launch_templates(d: Deployment) -> None:
    ec2 = d.c("ec2")
    existing = {t["LaunchTemplateName"] for t in _launch_templates(d.c("ec2"), d.cfg)}
    for role, name in d.cfg.launch_templates.items():
        data = {
            "ImageId": default_image(d),
            "InstanceType": d.cfg.instance_type,
            "IamInstanceProfile": {"Name": d.cfg.roles[role]},
            "SecurityGroupIds": [d.outputs.get(f"sg_{'workers' if role == 'worker' else 'web'}", "")],
            "UserData": user_data(d.cfg, role, encoded=True),
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},  # IMDSv2 only
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": TAG, "Value": d.cfg.stack}, {"Key": "Name", "Value": name}],
                }
            ],
        }
        if name in existing:
            current = ec2.describe_launch_template_versions(LaunchTemplateName=name, Versions=["$Latest"])[
                "LaunchTemplateVersions"
            ][0]["LaunchTemplateData"]
            same = all(
                current.get(k) == v for k, v in data.items() if k not in ("TagSpecifications", "MetadataOptions")
            )
            if d.record("ec2:launch-template", name, "ok" if same else "update", "new version"):
                version = ec2.create_launch_template_version(LaunchTemplateName=name, LaunchTemplateData=data)
                number = version["LaunchTemplateVersion"]["VersionNumber"]
                ec2.modify_launch_template(LaunchTemplateName=name, DefaultVersion=str(number))
        elif d.record("ec2:launch-template", name, "create"):
            ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)


def remove_launch_templates(d: Deployment) -> list[str]:
    ec2 = d.c("ec2")
    removed = []
    for t in _launch_templates(ec2, d.cfg):
        if t["LaunchTemplateName"] in d.cfg.launch_templates.values():
            ec2.delete_launch_template(LaunchTemplateName=t["LaunchTemplateName"])
            removed.append(f"ec2:launch-template {t['LaunchTemplateName']}")
    return removed


def group_specs(d: Deployment) -> dict[str, dict]:
    """Each Auto Scaling group's settings, by role (never guessed from its name, which holds the stack's)."""
    return {
        "workers": dict(
            MinSize=d.cfg.workers_min,
            MaxSize=d.cfg.workers_max,
            DesiredCapacity=max(d.cfg.workers_min, d.cfg.workers_desired),
            template=d.cfg.launch_templates["worker"],
            targets=[],
        ),
        "web": dict(
            MinSize=1,
            MaxSize=2,
            DesiredCapacity=1,
            template=d.cfg.launch_templates["web"],
            targets=[d.outputs.get("tg_web"), d.outputs.get("tg_flower")],
        ),
    }


def ensure_groups(d: Deployment) -> None:
    """The workers' group (with the drain hook) and the web group behind the load balancer."""
    asg = d.c("autoscaling")
    existing = {
        g["AutoScalingGroupName"]: g
        for g in every(
            asg,
            "describe_auto_scaling_groups",
            "AutoScalingGroups[]",
            AutoScalingGroupNames=list(d.cfg.groups.values()),
        )
    }
    for role, spec in group_specs(d).items():
        _ensure_group(d, d.cfg.groups[role], spec, existing.get(d.cfg.groups[role]))
    workers = d.cfg.groups["workers"]
    _ensure_drain_hook(d, workers, exists=workers in existing)
    if d.cfg.native_scaling:
        ensure_target_tracking(d, workers)
    d.outputs["workers_group"] = workers


def _ensure_group(d: Deployment, name: str, spec: dict, current: dict | None) -> None:
    asg = d.c("autoscaling")
    bounds = f"{spec['MinSize']}..{spec['MaxSize']}"
    if current is None:
        if d.record("autoscaling:group", name, "create", bounds):
            asg.create_auto_scaling_group(
                AutoScalingGroupName=name,
                LaunchTemplate={"LaunchTemplateName": spec["template"], "Version": "$Latest"},
                MinSize=spec["MinSize"],
                MaxSize=spec["MaxSize"],
                DesiredCapacity=spec["DesiredCapacity"],
                DefaultInstanceWarmup=120,
                VPCZoneIdentifier=d.outputs["subnets"],
                TargetGroupARNs=[t for t in spec["targets"] if t],
                HealthCheckType="ELB" if spec["targets"] else "EC2",
                HealthCheckGracePeriod=180,
                Tags=[{"Key": TAG, "Value": d.cfg.stack, "PropagateAtLaunch": True}],
            )
        return
    same = current["MinSize"] == spec["MinSize"] and current["MaxSize"] == spec["MaxSize"]
    if d.record("autoscaling:group", name, "ok" if same else "update", bounds):
        asg.update_auto_scaling_group(AutoScalingGroupName=name, MinSize=spec["MinSize"], MaxSize=spec["MaxSize"])


def _ensure_drain_hook(d: Deployment, workers: str, exists: bool) -> None:
    """The termination hook: time for the drain agent to stop the worker, which finishes its task."""
    asg = d.c("autoscaling")
    hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName=workers)["LifecycleHooks"] if exists else []
    hook, timeout = d.cfg.drain_hook, d.cfg.drain_hook_timeout
    current = next((h for h in hooks if h["LifecycleHookName"] == hook), None)
    action = "create" if current is None else ("ok" if current["HeartbeatTimeout"] == timeout else "update")
    if d.record("autoscaling:lifecycle-hook", hook, action, f"EC2_INSTANCE_TERMINATING, {timeout} s"):
        asg.put_lifecycle_hook(
            LifecycleHookName=hook,
            AutoScalingGroupName=workers,
            LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
            HeartbeatTimeout=timeout,
            DefaultResult="CONTINUE",
        )


def remove_groups(d: Deployment) -> list[str]:
    """Force-deleted: their instances terminate (the lifecycle hook and policies go with them)."""
    asg = d.c("autoscaling")
    removed = []
    for name in d.cfg.groups.values():
        if asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]:
            asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
            removed.append(f"autoscaling:group {name}")
    return removed


def backlog_metric_math(d: Deployment, group: str) -> dict:
    """Visible messages (both work queues) / in-service instances, as CloudWatch metric math (AWS's SQS recipe)."""

    def visible(metric_id, queue):
        return {
            "Label": f"visible in {queue}",
            "Id": metric_id,
            "ReturnData": False,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": "ApproximateNumberOfMessagesVisible",
                    "Dimensions": [{"Name": "QueueName", "Value": queue}],
                },
                "Stat": "Sum",
            },
        }

    return {
        "Metrics": [
            visible("m1", d.cfg.queue),
            visible("m3", d.cfg.extras_queue),
            {
                "Label": "instances",
                "Id": "m2",
                "ReturnData": False,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/AutoScaling",
                        "MetricName": "GroupInServiceInstances",
                        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": group}],
                    },
                    "Stat": "Average",
                },
            },
            {"Label": "backlog per instance", "Id": "e1", "Expression": "(m1 + m3) / m2", "ReturnData": True},
        ]
    }


def ensure_target_tracking(d: Deployment, group: str) -> None:
    asg = d.c("autoscaling")
    name = d.cfg.tracking_policy
    wanted = {"CustomizedMetricSpecification": backlog_metric_math(d, group), "TargetValue": 30.0}
    current = next(
        (p for p in asg.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"] if p["PolicyName"] == name),
        None,
    )
    if current is None:
        action = "create"
    else:
        action = "ok" if matches(wanted, current.get("TargetTrackingConfiguration")) else "update"
    if d.record("autoscaling:policy", name, action, "target tracking on backlog per instance"):
        asg.put_scaling_policy(
            AutoScalingGroupName=group,
            PolicyName=name,
            PolicyType="TargetTrackingScaling",
            TargetTrackingConfiguration=wanted,
        )
