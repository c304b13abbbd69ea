"""The instances: launch templates, their Auto Scaling groups, and the workers' drain hook.

The hook holds a terminating worker until the task in hand is done (ops/worker/drain.py
completes the lifecycle action), so scaling in never cuts a thumbnail short.
"""

from __future__ import annotations

from ops.deploy.clients import every
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
                ec2.create_launch_template_version(LaunchTemplateName=name, LaunchTemplateData=data)
                ec2.modify_launch_template(LaunchTemplateName=name, DefaultVersion="$Latest")
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
    specs = {
        d.cfg.groups["workers"]: dict(
            MinSize=d.cfg.workers_min,
            MaxSize=d.cfg.workers_max,
            template=d.cfg.launch_templates["worker"],
            targets=[],
        ),
        d.cfg.groups["web"]: dict(
            MinSize=1,
            MaxSize=2,
            template=d.cfg.launch_templates["web"],
            targets=[d.outputs.get("tg_web"), d.outputs.get("tg_flower")],
        ),
    }
    for name, spec in specs.items():
        current = existing.get(name)
        if current is None:
            if d.record("autoscaling:group", name, "create", f"{spec['MinSize']}..{spec['MaxSize']}"):
                asg.create_auto_scaling_group(
                    AutoScalingGroupName=name,
                    LaunchTemplate={"LaunchTemplateName": spec["template"], "Version": "$Latest"},
                    MinSize=spec["MinSize"],
                    MaxSize=spec["MaxSize"],
                    DesiredCapacity=max(spec["MinSize"], d.cfg.workers_desired if "workers" in name else 1),
                    DefaultInstanceWarmup=120,
                    VPCZoneIdentifier=d.outputs["subnets"],
                    TargetGroupARNs=[t for t in spec["targets"] if t],
                    HealthCheckType="ELB" if spec["targets"] else "EC2",
                    HealthCheckGracePeriod=180,
                    Tags=[{"Key": TAG, "Value": d.cfg.stack, "PropagateAtLaunch": True}],
                )
        else:
            same = current["MinSize"] == spec["MinSize"] and current["MaxSize"] == spec["MaxSize"]
            if d.record("autoscaling:group", name, "ok" if same else "update", f"{spec['MinSize']}..{spec['MaxSize']}"):
                asg.update_auto_scaling_group(
                    AutoScalingGroupName=name, MinSize=spec["MinSize"], MaxSize=spec["MaxSize"]
                )
    workers = d.cfg.groups["workers"]
    hooks = (
        {h["LifecycleHookName"] for h in asg.describe_lifecycle_hooks(AutoScalingGroupName=workers)["LifecycleHooks"]}
        if workers in existing
        else set()
    )
    hook = d.cfg.drain_hook
    if d.record("autoscaling:lifecycle-hook", hook, "ok" if hook in hooks else "create", "EC2_INSTANCE_TERMINATING"):
        asg.put_lifecycle_hook(
            LifecycleHookName=hook,
            AutoScalingGroupName=workers,
            LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
            HeartbeatTimeout=d.cfg.visibility_timeout + 60,  # time for the task in hand
            DefaultResult="CONTINUE",
        )
    if d.cfg.native_scaling:
        ensure_target_tracking(d, workers)
    d.outputs["workers_group"] = workers


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
    """Visible messages / in-service instances, as CloudWatch metric math (AWS's SQS recipe)."""
    return {
        "Metrics": [
            {
                "Label": "visible",
                "Id": "m1",
                "ReturnData": False,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateNumberOfMessagesVisible",
                        "Dimensions": [{"Name": "QueueName", "Value": d.cfg.queue}],
                    },
                    "Stat": "Sum",
                },
            },
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
            {"Label": "backlog per instance", "Id": "e1", "Expression": "m1 / m2", "ReturnData": True},
        ]
    }


def ensure_target_tracking(d: Deployment, group: str) -> None:
    asg = d.c("autoscaling")
    name = d.cfg.tracking_policy
    have = {p["PolicyName"] for p in asg.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"]}
    if d.record(
        "autoscaling:policy", name, "ok" if name in have else "create", "target tracking on backlog per instance"
    ):
        asg.put_scaling_policy(
            AutoScalingGroupName=group,
            PolicyName=name,
            PolicyType="TargetTrackingScaling",
            TargetTrackingConfiguration={
                "CustomizedMetricSpecification": backlog_metric_math(d, group),
                "TargetValue": 30.0,
            },
        )
