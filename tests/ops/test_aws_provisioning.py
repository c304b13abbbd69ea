"""Provisioning the production fleet, against moto (in-process mock_aws from tests/conftest.py)."""

import base64
import dataclasses
import datetime
import json
import shlex
import shutil
import subprocess
import sys

import pytest

from imageshare import settings as app_settings
from ops.deploy.cli import deploy, destroy, main
from ops.deploy.clients import client, every
from ops.deploy.compute import _launch_templates
from ops.deploy.config import Config, Deployment
from ops.deploy.iam import UNSCOPABLE_ACTIONS, web_policy, worker_policy
from ops.deploy.storage import remove_media_bucket
from ops.deploy.userdata import (
    analysis_unit,
    config_unit,
    drain_unit,
    user_data,
    web_units,
    worker_exec,
    worker_unit,
)
from ops.worker.command import worker_command

REGION = "us-east-1"
SITE = "example.com"


def self_signed(*names):
    """A certificate and its key (PEM) for ``names``: moto's ACM imports it as ISSUED."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def certificate_arn(aws):
    """An issued ACM certificate for the site, in the stack's region."""
    pem, key = self_signed(SITE, f"www.{SITE}")
    return client("acm", endpoint_url=None, region=REGION).import_certificate(Certificate=pem, PrivateKey=key)[
        "CertificateArn"
    ]


@pytest.fixture
def cfg(aws, request, certificate_arn):
    # A stack name per test: the fake account is shared by the session.
    name = "t" + str(abs(hash(request.node.name)) % 10**8)
    return Config(stack=name, region=REGION, certificate_arn=certificate_arn)


def variant(cfg, suffix, **changes):
    """Another stack like ``cfg`` (same certificate), named ``cfg.stack + suffix``."""
    return dataclasses.replace(cfg, stack=cfg.stack + suffix, **changes)


def inventory(cfg):
    """Everything in the account that belongs to the stack, by kind (all pages)."""
    c = Deployment(cfg).c
    s = cfg.stack + "-"  # not another stack whose name starts with this one's

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
        "parameters": mine(
            "ssm", "get_parameters_by_path", "Parameters[]", "Name", Path=cfg.parameter_prefix, Recursive=True
        ),
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
    assert counts["buckets"] == 1 and counts["queues"] == 4 and counts["alarms"] == 3
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


def test_both_work_queues_have_the_redrive_policy_short_visibility_timeout_and_long_polling(cfg):
    d = deploy(cfg)
    # The app's own default (imageshare/settings.py): short, the worker's heartbeat extends it.
    assert cfg.visibility_timeout == app_settings.SQS_VISIBILITY_TIMEOUT == 45
    assert cfg.task_time_limit == app_settings.TASK_TIME_LIMIT
    sqs = d.c("sqs")
    for key, name in (
        ("queue_url", cfg.queue),
        ("extras_queue_url", cfg.extras_queue),
        ("analysis_queue_url", cfg.analysis_queue),
    ):
        assert d.outputs[key].endswith("/" + name)
        attrs = sqs.get_queue_attributes(QueueUrl=d.outputs[key], AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(":" + cfg.dlq)
        assert int(redrive["maxReceiveCount"]) == cfg.max_receive_count
        assert int(attrs["VisibilityTimeout"]) == cfg.visibility_timeout
        assert attrs["ReceiveMessageWaitTimeSeconds"] == "20"
    alarms = d.c("cloudwatch").describe_alarms(AlarmNames=list(cfg.alarms))["MetricAlarms"]
    watched = {(a["MetricName"], a["Dimensions"][0]["Value"]) for a in alarms}
    assert watched == {
        ("ApproximateNumberOfMessagesVisible", cfg.dlq),
        ("ApproximateAgeOfOldestMessage", cfg.queue),
        ("ApproximateAgeOfOldestMessage", cfg.extras_queue),
    }
    ssm = d.c("ssm")
    assert (
        ssm.get_parameter(Name=cfg.parameter("SQS_EXTRAS_QUEUE_URL"))["Parameter"]["Value"]
        == d.outputs["extras_queue_url"]
    )
    assert ssm.get_parameter(Name=cfg.parameter("SQS_VISIBILITY_TIMEOUT"))["Parameter"]["Value"] == "45"
    assert (
        ssm.get_parameter(Name=cfg.parameter("SQS_ANALYSIS_QUEUE_URL"))["Parameter"]["Value"]
        == d.outputs["analysis_queue_url"]
    )


def test_the_worker_group_has_its_bounds_warmup_and_drain_hook(cfg):
    d = deploy(cfg)
    asg = d.c("autoscaling")
    (group,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[cfg.name("workers")])["AutoScalingGroups"]
    assert (group["MinSize"], group["MaxSize"]) == (cfg.workers_min, cfg.workers_max)
    (hook,) = asg.describe_lifecycle_hooks(AutoScalingGroupName=cfg.name("workers"))["LifecycleHooks"]
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    # The hook outlasts the worker's stop, which outlasts a task started just before it.
    assert hook["HeartbeatTimeout"] == cfg.drain_hook_timeout > cfg.worker_stop_timeout > cfg.task_time_limit


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

    open_cfg = variant(cfg, "o", mode="open")
    deploy(open_cfg)
    policy = json.loads(s3.get_bucket_policy(Bucket=open_cfg.bucket)["Policy"])
    (public,) = [st for st in policy["Statement"] if st["Effect"] == "Allow"]
    assert public["Resource"].endswith("/renditions/*")  # never the originals
    assert (
        s3.get_public_access_block(Bucket=open_cfg.bucket)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"]
        is False
    )


def test_the_cdn_option_creates_a_distribution_and_the_app_gets_its_url(cfg):
    cdn_cfg = variant(cfg, "c", mode="open", cdn=True)
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
    cdn_cfg = variant(cfg, "d", mode="private", cdn=True)
    deploy(cdn_cfg)
    assert inventory(cdn_cfg)["distributions"] and inventory(cdn_cfg)["origin_access_controls"]
    removed = destroy(cdn_cfg, cdn_wait_delay=1)
    assert any(r.startswith("cloudfront:distribution") for r in removed)
    assert {k: v for k, v in inventory(cdn_cfg).items() if v} == {}


def test_native_target_tracking_uses_backlog_per_instance_metric_math(cfg):
    native = variant(cfg, "n", native_scaling=True)
    d = deploy(native)
    (policy,) = d.c("autoscaling").describe_policies(AutoScalingGroupName=native.name("workers"))["ScalingPolicies"]
    metrics = policy["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]["Metrics"]
    assert [m["Id"] for m in metrics if m.get("ReturnData")] == ["e1"]
    # The backlog is both work queues' (as the app's own scaling hook counts it).
    assert next(m for m in metrics if m["Id"] == "e1")["Expression"] == "(m1 + m3) / m2"
    queues = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for m in metrics if m["Id"] in ("m1", "m3")}
    assert queues == {native.queue, native.extras_queue}


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
    work_queues = [d.queue_arn(cfg.queue), d.queue_arn(cfg.extras_queue), d.queue_arn(cfg.analysis_queue)]
    assert by_sid["ConsumeWorkQueue"]["Resource"] == work_queues  # the work queues, never the DLQ
    # Sending only for Celery's retries, to the work queues.
    senders = [st for st in by_sid.values() if "sqs:SendMessage" in st["Action"]]
    assert [(st["Action"], st["Resource"]) for st in senders] == [(["sqs:SendMessage"], work_queues)]


def test_the_web_policy_sends_to_both_work_queues_and_sweeps_only_the_dead_letters(cfg):
    d = Deployment(cfg)
    by_sid = {st["Sid"]: st for st in web_policy(d)["Statement"]}
    assert by_sid["Enqueue"]["Resource"] == [d.queue_arn(q) for q in (cfg.queue, cfg.extras_queue, cfg.analysis_queue)]
    assert by_sid["WatchQueues"]["Resource"] == [d.queue_arn(q) for q in cfg.queues]
    receivers = [st for st in by_sid.values() if "sqs:ReceiveMessage" in st["Action"]]
    assert [st["Resource"] for st in receivers] == [[d.queue_arn(cfg.dlq)]]


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


def exec_argv(unit):
    exec_line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    return shlex.split(exec_line.removeprefix("ExecStart=").replace("%%", "%"))


def test_the_worker_unit_runs_the_same_command_as_the_local_stack_on_both_queues(cfg):
    unit = worker_unit(cfg)
    argv = exec_argv(unit)
    local = worker_command(f"{cfg.queue},{cfg.extras_queue}", 2, "worker")
    assert argv[0] == "/opt/imageshare/.venv/bin/python"
    assert argv[1:] == local[1:] == worker_exec(cfg)[1:]
    assert argv[argv.index("--queues") + 1].split(",") == [cfg.queue, cfg.extras_queue]
    assert "KillMode=mixed" in unit and "Restart=on-failure" in unit and "StandardOutput=journal" in unit
    # Time for a warm shutdown to finish a task that has just started: not the (short) visibility timeout.
    assert f"TimeoutStopSec={cfg.worker_stop_timeout}" in unit
    assert cfg.worker_stop_timeout > cfg.task_time_limit > cfg.visibility_timeout


def test_worker_nodes_run_an_analysis_unit_on_the_analysis_queue_alone(cfg):
    unit = analysis_unit(cfg)
    argv = exec_argv(unit)
    assert argv[1:] == worker_command(cfg.analysis_queue, 1, "analysis")[1:]
    assert "KillMode=mixed" in unit and f"TimeoutStopSec={cfg.worker_stop_timeout}" in unit
    assert "imageshare-analysis.service" in user_data(cfg, "worker")
    assert "imageshare-analysis.service" not in user_data(cfg, "web")


def test_flowers_password_is_read_from_the_environment_file_never_the_command_line(cfg):
    flower = web_units(cfg)["imageshare-flower.service"]
    argv = exec_argv(flower)
    assert argv[1:3] == ["-m", "ops.worker.flower"]
    assert not any("auth" in a.lower() or ":" in a for a in argv[1:]), argv
    assert "EnvironmentFile=/etc/imageshare/env" in flower
    for unit in [*web_units(cfg).values(), worker_unit(cfg), drain_unit(cfg)]:
        assert "FLOWER_BASIC_AUTH" not in "".join(exec_argv(unit))


def test_the_boot_script_reads_the_parameters_under_the_configs_prefix(cfg):
    script = user_data(cfg, "web")
    assert f"--path {shlex.quote(cfg.parameter_prefix)} " in script
    assert "$STACK" not in script and "STACK=" not in script


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


# --- HTTPS at the load balancer ------------------------------------------------------


def listeners_of(d, cfg):
    elb = d.c("elbv2")
    (lb,) = elb.describe_load_balancers(Names=[cfg.load_balancer])["LoadBalancers"]
    return {ls["Port"]: ls for ls in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}


def test_the_site_and_flower_are_served_over_https_only_and_flowers_metrics_are_not_public(cfg):
    d = deploy(cfg)
    elb = d.c("elbv2")
    listeners = listeners_of(d, cfg)
    assert set(listeners) == {80, 443, 5555}
    groups = {
        tg["TargetGroupName"]: tg
        for tg in elb.describe_target_groups(Names=list(cfg.target_groups.values()))["TargetGroups"]
    }
    web, flower = groups[cfg.target_groups["web"]], groups[cfg.target_groups["flower"]]
    for port, target in ((443, web), (5555, flower)):
        ls = listeners[port]
        assert ls["Protocol"] == "HTTPS" and ls["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
        assert ls["Certificates"] == [{"CertificateArn": cfg.certificate_arn}]
        assert ls["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": target["TargetGroupArn"]}]
    # Plain HTTP only redirects, permanently, to the same URL over HTTPS.
    (redirect,) = listeners[80]["DefaultActions"]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS" and redirect["RedirectConfig"]["Port"] == "443"
    assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"
    # Flower's /metrics answers 403 at the load balancer; everything else goes to Flower (basic auth).
    (rule,) = [r for r in elb.describe_rules(ListenerArn=listeners[5555]["ListenerArn"])["Rules"] if not r["IsDefault"]]
    assert rule["Conditions"][0]["PathPatternConfig"]["Values"] == ["/metrics*"]
    assert rule["Actions"][0]["Type"] == "fixed-response"
    assert rule["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "403"
    # Health checks: plain HTTP from the load balancer to the instance (the app exempts /healthz from its redirect).
    assert (web["Protocol"], web["Port"], web["HealthCheckProtocol"], web["HealthCheckPath"]) == (
        "HTTP",
        8000,
        "HTTP",
        "/healthz",
    )
    assert web["HealthCheckPort"] == "traffic-port"
    assert d.outputs["site_url"] == f"https://{SITE}/" and d.outputs["flower_url"] == f"https://{SITE}:5555/"


def test_the_security_groups_open_https_and_the_redirect_to_all_and_flower_to_the_admin(cfg):
    d = deploy(dataclasses.replace(cfg, admin_cidr="203.0.113.7/32"))
    ec2 = d.c("ec2")
    (alb,) = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [cfg.security_groups["alb"]]}])[
        "SecurityGroups"
    ]
    opened = {(p["FromPort"], r["CidrIp"]) for p in alb["IpPermissions"] for r in p.get("IpRanges", [])}
    assert opened == {(443, "0.0.0.0/0"), (80, "0.0.0.0/0"), (5555, "203.0.113.7/32")}


def test_the_apps_settings_say_production_and_name_the_certificates_hosts(cfg):
    d = deploy(cfg)
    ssm = d.c("ssm")
    params = {
        p["Name"].removeprefix(cfg.parameter_prefix): p["Value"]
        for p in every(ssm, "get_parameters_by_path", "Parameters[]", Path=cfg.parameter_prefix, Recursive=True)
    }
    assert params["IMAGESHARE_ENV"] == "production"
    assert params["ALLOWED_HOSTS"] == f"{SITE},www.{SITE}"
    assert params["FLOWER_URL"] == f"https://{SITE}:5555/"
    assert params["SQS_EXTRAS_QUEUE_NAME"] == cfg.extras_queue
    # Nothing undoes production's HTTPS rules (redirect, secure cookies, HSTS, one trusted proxy).
    assert not {k for k in params if k.startswith("SECURE_") or k in ("DEBUG", "TRUSTED_PROXY_COUNT")}


def test_deploy_upgrades_an_older_stack_in_place(cfg):
    """An HTTP-only stack with a 300 s visibility timeout, as deployed before, is corrected by the next deploy."""
    d = deploy(cfg)
    elb, sqs, asg = d.c("elbv2"), d.c("sqs"), d.c("autoscaling")
    listeners = listeners_of(d, cfg)
    web_tg, flower_tg = d.outputs["tg_web"], d.outputs["tg_flower"]
    elb.delete_listener(ListenerArn=listeners[443]["ListenerArn"])
    elb.modify_listener(
        ListenerArn=listeners[80]["ListenerArn"], DefaultActions=[{"Type": "forward", "TargetGroupArn": web_tg}]
    )
    elb.delete_listener(ListenerArn=listeners[5555]["ListenerArn"])
    elb.create_listener(
        LoadBalancerArn=listeners[80]["LoadBalancerArn"],
        Protocol="HTTP",
        Port=5555,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": flower_tg}],
    )
    sqs.set_queue_attributes(QueueUrl=d.outputs["queue_url"], Attributes={"VisibilityTimeout": "300"})
    asg.put_lifecycle_hook(
        LifecycleHookName=cfg.drain_hook,
        AutoScalingGroupName=cfg.groups["workers"],
        LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
        HeartbeatTimeout=360,
    )

    plan = {(ch.kind, ch.name): ch.action for ch in deploy(cfg, dry_run=True).changes if ch.action != "ok"}
    assert plan == {
        ("elbv2:listener", f"{cfg.load_balancer}:443"): "create",
        ("elbv2:listener", f"{cfg.load_balancer}:80"): "update",
        ("elbv2:listener", f"{cfg.load_balancer}:5555"): "update",
        ("elbv2:listener-rule", f"{cfg.load_balancer}:5555 /metrics*"): "create",
        ("sqs:queue", cfg.queue): "update",
        ("autoscaling:lifecycle-hook", cfg.drain_hook): "update",
    }
    deploy(cfg)
    assert [str(ch) for ch in deploy(cfg).changes if ch.action != "ok"] == []
    listeners = listeners_of(d, cfg)
    assert listeners[80]["DefaultActions"][0]["Type"] == "redirect"
    assert listeners[5555]["Protocol"] == "HTTPS"
    attrs = sqs.get_queue_attributes(QueueUrl=d.outputs["queue_url"], AttributeNames=["VisibilityTimeout"])
    assert attrs["Attributes"]["VisibilityTimeout"] == str(cfg.visibility_timeout)
    (hook,) = asg.describe_lifecycle_hooks(AutoScalingGroupName=cfg.groups["workers"])["LifecycleHooks"]
    assert hook["HeartbeatTimeout"] == cfg.drain_hook_timeout


def test_deploy_refuses_to_start_without_an_issued_certificate(cfg):
    with pytest.raises(SystemExit, match="--certificate-arn"):
        deploy(dataclasses.replace(cfg, certificate_arn=None), dry_run=True)
    pending = client("acm", endpoint_url=None, region=REGION).request_certificate(DomainName=SITE)["CertificateArn"]
    with pytest.raises(SystemExit, match="PENDING_VALIDATION"):
        deploy(dataclasses.replace(cfg, certificate_arn=pending))
    elsewhere = cfg.certificate_arn.replace(REGION, "eu-west-1")
    with pytest.raises(SystemExit, match="not found"):
        deploy(dataclasses.replace(cfg, certificate_arn=elsewhere))
    assert not any(inventory(cfg).values())  # refused before creating anything


def test_the_command_line_asks_for_the_certificate(cfg, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["deploy", "--stack", cfg.stack, "--region", REGION])
    assert exit_.value.code == 2 and "--certificate-arn" in capsys.readouterr().err


# --- destroy and the groups: bugs that were --------------------------------------------


def test_destroy_stops_and_names_the_objects_s3_refuses_to_delete(cfg, monkeypatch):
    d = Deployment(cfg)
    s3 = d.c("s3")
    s3.create_bucket(Bucket=cfg.bucket)
    s3.put_object(Bucket=cfg.bucket, Key="originals/locked", Body=b"photo")
    s3.put_object(Bucket=cfg.bucket, Key="originals/fine", Body=b"photo")
    real_delete = s3.delete_objects
    calls = []

    def delete_all_but_locked(Bucket, Delete):
        calls.append(1)
        keep = [o for o in Delete["Objects"] if o["Key"] == "originals/locked"]
        rest = [o for o in Delete["Objects"] if o not in keep]
        if rest:
            real_delete(Bucket=Bucket, Delete={"Objects": rest})
        # As S3 answers: 200, with the refused keys under Errors.
        return {"Errors": [{"Key": o["Key"], "Code": "AccessDenied", "Message": "Access Denied"} for o in keep]}

    monkeypatch.setattr(s3, "delete_objects", delete_all_but_locked)
    with pytest.raises(SystemExit, match=r"originals/locked \(AccessDenied: Access Denied\)"):
        remove_media_bucket(d)
    assert len(calls) <= 3  # bounded, not for ever
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=cfg.bucket)["Contents"]]
    assert keys == ["originals/locked"]  # the bucket is kept, with only what S3 refused
    monkeypatch.undo()
    assert remove_media_bucket(d) == [f"s3:bucket {cfg.bucket}"]


def test_destroy_removes_only_its_own_alarms_and_queues_not_a_similarly_named_stacks(cfg):
    d = Deployment(cfg)
    cw, sqs = d.c("cloudwatch"), d.c("sqs")
    neighbour = variant(cfg, "2")  # "prod2" beside "prod"
    other_alarm = neighbour.dlq_alarm
    cw.put_metric_alarm(
        AlarmName=other_alarm,
        MetricName="ApproximateNumberOfMessagesVisible",
        Namespace="AWS/SQS",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
    )
    other_queue = variant(cfg, "-thumbnails").queue  # stack "prod-thumbnails": "prod-thumbnails-thumbnails"
    sqs.create_queue(QueueName=other_queue)
    destroy(cfg)
    assert [a["AlarmName"] for a in cw.describe_alarms(AlarmNames=[other_alarm])["MetricAlarms"]] == [other_alarm]
    assert sqs.get_queue_url(QueueName=other_queue)["QueueUrl"].endswith(other_queue)


def test_the_web_groups_size_depends_on_its_role_not_on_the_stacks_name(cfg):
    stack = variant(cfg, "workers", workers_min=1, workers_desired=2)  # "...workers": in both groups' names
    d = deploy(stack)
    asg = d.c("autoscaling")
    sizes = {
        g["AutoScalingGroupName"]: g["DesiredCapacity"]
        for g in asg.describe_auto_scaling_groups(AutoScalingGroupNames=list(stack.groups.values()))[
            "AutoScalingGroups"
        ]
    }
    assert sizes == {stack.groups["workers"]: 2, stack.groups["web"]: 1}
    # A changed launch template gets a new version, which becomes the default.
    changes = deploy(dataclasses.replace(stack, instance_type="t3.medium")).changes
    assert {ch.name for ch in changes if ch.kind == "ec2:launch-template" and ch.action == "update"} == set(
        stack.launch_templates.values()
    )
    (template,) = d.c("ec2").describe_launch_templates(LaunchTemplateNames=[stack.launch_templates["worker"]])[
        "LaunchTemplates"
    ]
    assert template["DefaultVersionNumber"] == template["LatestVersionNumber"] == 2
