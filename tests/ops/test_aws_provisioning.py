"""Provisioning the production fleet, against moto (in-process mock_aws from tests/conftest.py)."""

import base64
import json
import shlex
import shutil
import subprocess
import sys

import pytest

from ops.deploy.cli import deploy, destroy
from ops.deploy.clients import every
from ops.deploy.compute import _launch_templates
from ops.deploy.config import Config, Deployment
from ops.deploy.iam import UNSCOPABLE_ACTIONS, web_policy, worker_policy
from ops.deploy.userdata import config_unit, drain_unit, user_data, worker_exec, worker_unit
from ops.worker.command import worker_command

REGION = "us-east-1"


@pytest.fixture
def cfg(aws, request):
    # A stack name per test: the fake account is shared by the session.
    name = "t" + str(abs(hash(request.node.name)) % 10**8)
    return Config(stack=name, region=REGION)


def inventory(cfg):
    """Everything in the account that belongs to the stack, by kind (all pages)."""
    c = Deployment(cfg).c
    s = cfg.stack

    def mine(service, method, path, key, **kwargs):
        return [x[key] if key else x for x in every(c(service), method, path, **kwargs) if (x[key] if key else x)]

    def named(items):
        return [x for x in items if x.startswith(s)]

    return {
        "buckets": named(b["Name"] for b in c("s3").list_buckets()["Buckets"]),
        "queues": every(c("sqs"), "list_queues", "QueueUrls[]", QueueNamePrefix=s),
        "alarms": mine("cloudwatch", "describe_alarms", "MetricAlarms[]", "AlarmName", AlarmNamePrefix=s),
        "roles": named(mine("iam", "list_roles", "Roles[]", "RoleName")),
        "profiles": named(mine("iam", "list_instance_profiles", "InstanceProfiles[]", "InstanceProfileName")),
        "security_groups": named(mine("ec2", "describe_security_groups", "SecurityGroups[]", "GroupName")),
        "launch_templates": [t["LaunchTemplateName"] for t in _launch_templates(c("ec2"), cfg)],
        "groups": named(
            mine("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups[]", "AutoScalingGroupName")
        ),
        "load_balancers": named(mine("elbv2", "describe_load_balancers", "LoadBalancers[]", "LoadBalancerName")),
        "target_groups": named(mine("elbv2", "describe_target_groups", "TargetGroups[]", "TargetGroupName")),
        "parameters": mine("ssm", "get_parameters_by_path", "Parameters[]", "Name", Path=f"/{s}/", Recursive=True),
        "distributions": [
            x["Id"]
            for x in every(c("cloudfront"), "list_distributions", "DistributionList.Items[]")
            if x.get("Comment") == cfg.cdn_comment
        ],
        "origin_access_controls": named(
            mine("cloudfront", "list_origin_access_controls", "OriginAccessControlList.Items[]", "Name")
        ),
    }


def test_deploying_twice_creates_each_resource_exactly_once(cfg):
    first = deploy(cfg)
    assert all(ch.action == "create" for ch in first.changes)
    after_first = inventory(cfg)
    second = deploy(cfg)
    assert [str(ch) for ch in second.changes if ch.action != "ok"] == []
    assert inventory(cfg) == after_first
    counts = {k: len(v) for k, v in after_first.items()}
    assert counts["buckets"] == 1 and counts["queues"] == 2 and counts["alarms"] == 2
    assert counts["roles"] == 2 and counts["profiles"] == 2 and counts["security_groups"] == 3
    assert counts["launch_templates"] == 2 and counts["groups"] == 2 and counts["load_balancers"] == 1
    assert counts["target_groups"] == 2
    for kind, items in after_first.items():
        assert len(items) == len(set(items)), kind


def test_plan_shows_what_deploy_would_do_and_writes_nothing(cfg):
    plan = deploy(cfg, dry_run=True)
    assert plan.changes and all(ch.action == "create" for ch in plan.changes)
    assert all(not v for v in inventory(cfg).values())


def test_destroy_leaves_nothing_behind(cfg):
    deploy(cfg)
    removed = destroy(cfg)
    assert removed
    leftovers = {k: v for k, v in inventory(cfg).items() if v}
    assert leftovers == {}


def test_destroy_refuses_to_delete_users_images_unless_asked(cfg):
    deploy(cfg)
    s3 = Deployment(cfg).c("s3")
    # moto treats its in-process calls as non-TLS, so the bucket's deny-insecure
    # statement would refuse this test's write: lift it for the test.
    s3.delete_bucket_policy(Bucket=cfg.bucket)
    s3.put_object(Bucket=cfg.bucket, Key="originals/x", Body=b"photo")
    with pytest.raises(SystemExit):
        destroy(cfg)
    assert inventory(cfg)["buckets"] == [cfg.bucket]
    destroy(cfg, delete_data=True)
    assert not inventory(cfg)["buckets"]


def test_the_queue_has_its_redrive_policy_visibility_timeout_and_long_polling(cfg):
    d = deploy(cfg)
    attrs = d.c("sqs").get_queue_attributes(QueueUrl=d.outputs["queue_url"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f"{cfg.queue}-dlq")
    assert int(redrive["maxReceiveCount"]) == cfg.max_receive_count
    assert int(attrs["VisibilityTimeout"]) == cfg.visibility_timeout > cfg.task_time_limit
    assert attrs["ReceiveMessageWaitTimeSeconds"] == "20"
    alarms = d.c("cloudwatch").describe_alarms(AlarmNamePrefix=cfg.stack)["MetricAlarms"]
    assert {a["MetricName"] for a in alarms} == {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}


def test_the_worker_group_has_its_bounds_warmup_and_drain_hook(cfg):
    d = deploy(cfg)
    asg = d.c("autoscaling")
    (group,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[cfg.name("workers")])["AutoScalingGroups"]
    assert (group["MinSize"], group["MaxSize"]) == (cfg.workers_min, cfg.workers_max)
    (hook,) = asg.describe_lifecycle_hooks(AutoScalingGroupName=cfg.name("workers"))["LifecycleHooks"]
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook["HeartbeatTimeout"] > cfg.visibility_timeout


def test_the_bucket_is_private_and_encrypted_and_public_only_for_renditions_in_open_mode(aws, cfg):
    d = deploy(cfg)
    s3 = d.c("s3")
    block = s3.get_public_access_block(Bucket=cfg.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert s3.get_bucket_encryption(Bucket=cfg.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=cfg.bucket)["Rules"]
    assert rules[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7
    policy = json.loads(s3.get_bucket_policy(Bucket=cfg.bucket)["Policy"])
    assert not [st for st in policy["Statement"] if st["Effect"] == "Allow"]

    open_cfg = Config(stack=cfg.stack + "o", region=REGION, mode="open")
    deploy(open_cfg)
    policy = json.loads(s3.get_bucket_policy(Bucket=open_cfg.bucket)["Policy"])
    (public,) = [st for st in policy["Statement"] if st["Effect"] == "Allow"]
    assert public["Resource"].endswith("/renditions/*")  # never the originals
    assert (
        s3.get_public_access_block(Bucket=open_cfg.bucket)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"]
        is False
    )


def test_the_cdn_option_creates_a_distribution_and_the_app_gets_its_url(cfg):
    cdn_cfg = Config(stack=cfg.stack + "c", region=REGION, mode="open", cdn=True)
    d = deploy(cdn_cfg)
    assert d.outputs["cdn_url"].startswith("https://")
    ssm = d.c("ssm")
    assert ssm.get_parameter(Name=f"/{cdn_cfg.stack}/CDN_BASE_URL")["Parameter"]["Value"] == d.outputs["cdn_url"]
    policy = json.loads(d.c("s3").get_bucket_policy(Bucket=cdn_cfg.bucket)["Policy"])
    (allow,) = [st for st in policy["Statement"] if st["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert [ch for ch in deploy(cdn_cfg).changes if ch.action != "ok"] == []
    assert len(inventory(cdn_cfg)["distributions"]) == 1


def test_destroy_removes_the_cdn_too(cfg):
    cdn_cfg = Config(stack=cfg.stack + "d", region=REGION, mode="private", cdn=True)
    deploy(cdn_cfg)
    assert inventory(cdn_cfg)["distributions"] and inventory(cdn_cfg)["origin_access_controls"]
    removed = destroy(cdn_cfg, cdn_wait_delay=1)
    assert any(r.startswith("cloudfront:distribution") for r in removed)
    assert {k: v for k, v in inventory(cdn_cfg).items() if v} == {}


def test_native_target_tracking_uses_backlog_per_instance_metric_math(cfg):
    native = Config(stack=cfg.stack + "n", region=REGION, native_scaling=True)
    d = deploy(native)
    (policy,) = d.c("autoscaling").describe_policies(AutoScalingGroupName=native.name("workers"))["ScalingPolicies"]
    metrics = policy["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]["Metrics"]
    assert [m["Id"] for m in metrics if m.get("ReturnData")] == ["e1"]
    assert next(m for m in metrics if m["Id"] == "e1")["Expression"] == "m1 / m2"


@pytest.mark.parametrize("policy_of", [worker_policy, web_policy])
def test_iam_policies_name_only_the_created_resources(cfg, policy_of):
    """Fails when someone adds a wildcard resource where AWS allows narrowing."""
    d = Deployment(cfg)
    for statement in policy_of(d)["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert "Principal" not in statement
        for resource in resources:
            if resource == "*":
                assert set(actions) <= set(UNSCOPABLE_ACTIONS), (statement["Sid"], actions)
            else:
                assert cfg.stack in resource, (statement["Sid"], resource)
                assert not resource.endswith(":*") and resource != "arn:aws:s3:::*", resource
        assert not any(a.endswith(":*") or a == "*" for a in actions), actions


def test_the_worker_policy_cannot_touch_originals_for_writing_or_other_queues(cfg):
    d = Deployment(cfg)
    by_sid = {st["Sid"]: st for st in worker_policy(d)["Statement"]}
    assert by_sid["ReadOriginals"]["Action"] == ["s3:GetObject"]
    assert by_sid["WriteRenditions"]["Resource"] == [f"arn:aws:s3:::{cfg.bucket}/renditions/*"]
    assert "sqs:SendMessage" not in by_sid["ConsumeWorkQueue"]["Action"]


def test_the_user_data_is_valid_bash_and_carries_no_secret(cfg, tmp_path):
    d = deploy(cfg)
    secret = d.c("ssm").get_parameter(Name=f"/{cfg.stack}/SECRET_KEY", WithDecryption=True)["Parameter"]["Value"]
    for role in ("worker", "web"):
        script = user_data(cfg, role)
        path = tmp_path / f"{role}.sh"
        path.write_text(script)
        subprocess.run(["bash", "-n", str(path)], check=True)
        assert secret not in script and "SECRET_KEY=" not in script
        assert base64.b64decode(user_data(cfg, role, encoded=True)).decode() == script
    lt = d.c("ec2").describe_launch_template_versions(LaunchTemplateName=cfg.name("worker"), Versions=["$Latest"])
    assert base64.b64decode(lt["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode() == user_data(
        cfg, "worker"
    )


def test_the_worker_unit_runs_the_same_command_as_the_local_stack(cfg):
    unit = worker_unit(cfg)
    exec_line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_line.removeprefix("ExecStart=").replace("%%", "%"))
    local = worker_command(cfg.queue, 2, "worker")
    assert argv[0] == "/opt/imageshare/.venv/bin/python"
    assert argv[1:] == local[1:] == worker_exec(cfg)[1:]
    assert "KillMode=mixed" in unit and "Restart=on-failure" in unit and "StandardOutput=journal" in unit
    assert f"TimeoutStopSec={cfg.visibility_timeout}" in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_systemd_units_pass_systemd_analyze_verify(cfg, tmp_path):
    def write(units):
        for name, text in units.items():
            # Point paths that exist only on the instance at ones that exist here.
            text = (
                text.replace("/opt/imageshare/.venv/bin/python", sys.executable)
                .replace("User=imageshare", "User=root")
                .replace("/etc/imageshare/env", "/dev/null")
                .replace("/usr/local/bin/imageshare-config", "/bin/true")
            )
            (tmp_path / name).write_text(text)

    def verify():
        files = sorted(str(p) for p in tmp_path.glob("*.service"))
        env = {"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"}
        return subprocess.run(["systemd-analyze", "verify", *files], env=env, capture_output=True, text=True)

    write(
        {
            "imageshare-worker.service": worker_unit(cfg),
            "imageshare-config.service": config_unit(cfg),
            "imageshare-drain.service": drain_unit(cfg),
        }
    )
    result = verify()
    assert result.returncode == 0, result.stderr
    # The check can fail: a broken unit is caught.
    write({"imageshare-worker.service": worker_unit(cfg).replace("Restart=on-failure", "Restart=sometimes")})
    assert verify().returncode != 0 or "sometimes" in verify().stderr


def test_the_drain_agent_stops_the_worker_then_releases_the_instance(asg):
    from ops.worker.drain import drain_once

    name, autoscaling = asg
    instance = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0][
        "Instances"
    ][0]["InstanceId"]
    stopped = []
    assert drain_once(autoscaling, instance, name, "drain", lambda: stopped.append(1)) is False  # in service: nothing
    assert stopped == []
