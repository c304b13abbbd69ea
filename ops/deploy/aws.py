"""Provision (and tear down) imageshare's production fleet on AWS, with plain boto3.

    python -m ops.deploy.aws plan    --stack NAME --region R   # what deploy would create or change
    python -m ops.deploy.aws deploy  --stack NAME --region R [--mode open] [--cdn] [--native-scaling]
    python -m ops.deploy.aws outputs --stack NAME --region R   # site URL, Flower URL, queue URL, ...
    python -m ops.deploy.aws destroy --stack NAME --region R [--delete-data]
    python -m ops.deploy.aws bake-ami --stack NAME --region R --instance-id i-...

Why plain boto3 and not CloudFormation: every resource here must be tested
against moto in CI, and moto's CloudFormation lacks several of the types we
need (CloudWatch alarms, lifecycle hooks, bucket policies, CloudFront), while
its plain APIs have them all. Each resource is an "ensure" step that reads
what exists (by name) and creates or corrects only what differs, so a second
deploy changes nothing; ``plan`` runs the same reads without writing.

Secrets never travel in user data: deploy writes them to SSM Parameter Store
(SecureString) under /NAME/, and an instance reads them at boot with its role.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from dataclasses import dataclass, field
from functools import partial

from botocore.exceptions import WaiterError

from ops.deploy.clients import client, ensure_queues, every

TAG = "imageshare:stack"

# IAM actions AWS does not scope to a resource (no resource-level
# permissions); only these may use "*", each with a reason.
UNSCOPABLE_ACTIONS = {
    "cloudwatch:PutMetricData": "no resource-level permissions; limited by the namespace condition",
    "cloudwatch:GetMetricStatistics": "no resource-level permissions",
    "autoscaling:DescribeAutoScalingGroups": "Describe* calls take no resource",
    "autoscaling:DescribeAutoScalingInstances": "Describe* calls take no resource",
    "ec2:DescribeInstances": "Describe* calls take no resource",
}


@dataclass
class Config:
    stack: str
    region: str
    endpoint_url: str | None = None
    mode: str = "private"  # the app's IMAGESHARE_MODE: decides public renditions
    cdn: bool = False
    native_scaling: bool = False
    workers_min: int = 1
    workers_max: int = 8
    workers_desired: int = 1
    instance_type: str = "t3.small"
    image_id: str | None = None  # AMI; default: the newest Debian 12 the account can see, or a baked one
    admin_cidr: str = "127.0.0.1/32"  # who may reach Flower through the load balancer
    app_source: str = "https://example.invalid/imageshare.tar.gz"  # release tarball the instances install
    visibility_timeout: int = 300
    task_time_limit: int = 120
    max_receive_count: int = 5
    database_url: str = ""  # stored in SSM; empty: a placeholder the operator must replace

    # --- every resource name, derived here and nowhere else -------------------
    # deploy finds what exists by these names and destroy removes by them, so a
    # name spelt twice could drift and leave a resource behind.
    def name(self, suffix: str) -> str:
        return f"{self.stack}-{suffix}"

    @property
    def bucket(self) -> str:
        return self.name("media")

    @property
    def queue(self) -> str:
        return self.name("thumbnails")

    @property
    def dlq(self) -> str:
        return f"{self.queue}-dlq"

    @property
    def dlq_alarm(self) -> str:
        return self.name("dlq-not-empty")

    @property
    def age_alarm(self) -> str:
        return self.name("oldest-message-age")

    @property
    def parameter_prefix(self) -> str:
        return f"/{self.stack}/"

    def parameter(self, key: str) -> str:
        return self.parameter_prefix + key

    @property
    def roles(self) -> dict[str, str]:
        """IAM role by tier; each has an instance profile of the same name."""
        return {"worker": self.name("worker"), "web": self.name("web")}

    @property
    def role_policy(self) -> str:
        """The inline policy on each role."""
        return "imageshare"

    @property
    def security_groups(self) -> dict[str, str]:
        return {"alb": self.name("alb"), "web": self.name("web"), "workers": self.name("workers")}

    @property
    def launch_templates(self) -> dict[str, str]:
        return {"worker": self.name("worker"), "web": self.name("web")}

    @property
    def groups(self) -> dict[str, str]:
        """Auto Scaling group by tier."""
        return {"workers": self.name("workers"), "web": self.name("web")}

    @property
    def drain_hook(self) -> str:
        return self.name("drain")

    @property
    def tracking_policy(self) -> str:
        return self.name("backlog-tracking")

    @property
    def load_balancer(self) -> str:
        return self.name("alb")

    @property
    def target_groups(self) -> dict[str, str]:
        return {"web": self.name("web"), "flower": self.name("flower")}

    @property
    def cdn_comment(self) -> str:
        """How the stack's CloudFront distribution is found: CloudFront has no names."""
        return f"imageshare {self.stack} renditions"

    @property
    def cdn_reference(self) -> str:
        return self.name("cdn")

    @property
    def origin_access_control(self) -> str:
        return self.name("oac")

    def baked_ami(self, token: str) -> str:
        return self.name(f"worker-{token}")


@dataclass
class Change:
    kind: str
    name: str
    action: str  # "create", "update", "ok", "delete"
    detail: str = ""

    def __str__(self):
        return f"{self.action:7} {self.kind:28} {self.name}{'  (' + self.detail + ')' if self.detail else ''}"


@dataclass
class Deployment:
    cfg: Config
    dry_run: bool = False
    changes: list[Change] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self._clients = {}

    def c(self, service: str):
        if service not in self._clients:
            self._clients[service] = client(service, endpoint_url=self.cfg.endpoint_url, region=self.cfg.region)
        return self._clients[service]

    def record(self, kind, name, action, detail="") -> bool:
        """Log a change; True when the caller should go ahead and write it."""
        self.changes.append(Change(kind, name, action, detail))
        return action != "ok" and not self.dry_run

    @property
    def account(self) -> str:
        return self.c("sts").get_caller_identity()["Account"]

    # --- ARNs ------------------------------------------------------------------
    def queue_arn(self, name):
        return f"arn:aws:sqs:{self.cfg.region}:{self.account}:{name}"

    def group_arn(self, name):
        return f"arn:aws:autoscaling:{self.cfg.region}:{self.account}:autoScalingGroup:*:autoScalingGroupName/{name}"

    def params_arn(self):
        return f"arn:aws:ssm:{self.cfg.region}:{self.account}:parameter{self.cfg.parameter_prefix}*"


# --- S3 --------------------------------------------------------------------------
def bucket_policy(d: Deployment) -> dict:
    b = d.cfg.bucket
    statements = [
        {  # TLS only
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    if d.cfg.mode == "open" and not d.cfg.cdn:
        statements.append(
            {
                "Sid": "PublicRenditions",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{b}/renditions/*",
            }
        )
    if d.cfg.cdn and "oac_distribution_arn" in d.outputs:
        statements.append(
            {
                "Sid": "CloudFrontReadsRenditions",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{b}/renditions/*",
                "Condition": {"StringEquals": {"AWS:SourceArn": d.outputs["oac_distribution_arn"]}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def ensure_bucket(d: Deployment) -> None:
    """Private bucket: originals/ never public; renditions/ public only in open mode without a CDN."""
    s3, b = d.c("s3"), d.cfg.bucket
    exists = b in {x["Name"] for x in s3.list_buckets().get("Buckets", [])}
    if d.record("s3:bucket", b, "ok" if exists else "create"):
        kwargs = (
            {} if d.cfg.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": d.cfg.region}}
        )
        s3.create_bucket(Bucket=b, **kwargs)
        s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [{"Key": TAG, "Value": d.cfg.stack}]})
    public = d.cfg.mode == "open" and not d.cfg.cdn
    wanted = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": not public,
        "RestrictPublicBuckets": not public,
    }
    _ensure_s3_setting(
        d,
        "s3:public-access-block",
        lambda: s3.get_public_access_block(Bucket=b)["PublicAccessBlockConfiguration"],
        wanted,
        lambda: s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration=wanted),
        exists,
    )
    sse = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    _ensure_s3_setting(
        d,
        "s3:encryption",
        lambda: {
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": r["ApplyServerSideEncryptionByDefault"]}
                for r in s3.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]["Rules"]
            ]
        },
        sse,
        lambda: s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration=sse),
        exists,
    )
    lifecycle = {
        "Rules": [
            {
                "ID": "abort-incomplete-multipart-uploads",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            }
        ]
    }
    _ensure_s3_setting(
        d,
        "s3:lifecycle",
        lambda: {
            "Rules": [
                {k: r[k] for k in ("ID", "Status", "Filter", "AbortIncompleteMultipartUpload") if k in r}
                for r in s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
            ]
        },
        lifecycle,
        lambda: s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration=lifecycle),
        exists,
    )
    policy = bucket_policy(d)
    _ensure_s3_setting(
        d,
        "s3:bucket-policy",
        lambda: json.loads(s3.get_bucket_policy(Bucket=b)["Policy"]),
        policy,
        lambda: s3.put_bucket_policy(Bucket=b, Policy=json.dumps(policy)),
        exists,
    )
    d.outputs["bucket"] = b


def _ensure_s3_setting(d, kind, read, wanted, write, exists) -> None:
    current = None
    if exists:
        try:
            current = read()
        except d.c("s3").exceptions.ClientError:
            current = None
    action = "ok" if current == wanted else ("create" if current is None else "update")
    if d.record(kind, d.cfg.bucket, action):
        write()


def refuse_to_delete_images(d: Deployment, delete_data: bool) -> None:
    """destroy's first step, before anything is removed: users' images go only when asked."""
    s3, b = d.c("s3"), d.cfg.bucket
    if b in {x["Name"] for x in s3.list_buckets().get("Buckets", [])}:
        objects = s3.list_objects_v2(Bucket=b).get("Contents", [])
        if objects and not delete_data:
            raise SystemExit(
                f"bucket {b} holds {len(objects)}+ objects (users' images); pass --delete-data to remove them"
            )


def remove_bucket(d: Deployment) -> list[str]:
    s3, b = d.c("s3"), d.cfg.bucket
    if b not in {x["Name"] for x in s3.list_buckets().get("Buckets", [])}:
        return []
    while True:
        objects = s3.list_objects_v2(Bucket=b).get("Contents", [])
        if not objects:
            break
        s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": o["Key"]} for o in objects]})
    s3.delete_bucket(Bucket=b)
    return [f"s3:bucket {b}"]


# --- SQS and alarms --------------------------------------------------------------
def ensure_queues_and_alarms(d: Deployment) -> None:
    sqs, cw = d.c("sqs"), d.c("cloudwatch")
    names = {q.rsplit("/", 1)[-1] for q in every(sqs, "list_queues", "QueueUrls[]", QueueNamePrefix=d.cfg.stack)}
    for name in (d.cfg.dlq, d.cfg.queue):
        d.record("sqs:queue", name, "ok" if name in names else "create")
    if not d.dry_run:
        url, dlq_url = ensure_queues(
            sqs,
            d.cfg.queue,
            d.cfg.dlq,
            visibility_timeout=d.cfg.visibility_timeout,
            max_receive_count=d.cfg.max_receive_count,
            wait_seconds=20,
        )
        d.outputs.update(queue_url=url, dead_letter_queue_url=dlq_url)
    alarms = {
        d.cfg.dlq_alarm: dict(
            MetricName="ApproximateNumberOfMessagesVisible",
            Dimensions=[{"Name": "QueueName", "Value": d.cfg.dlq}],
            Threshold=0,
            AlarmDescription="Messages failed processing max-receive times and wait in the dead-letter queue.",
        ),
        d.cfg.age_alarm: dict(
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": d.cfg.queue}],
            Threshold=600,
            AlarmDescription="An upload has waited over 10 minutes: workers are not keeping up.",
        ),
    }
    existing = {a["AlarmName"]: a for a in every(cw, "describe_alarms", "MetricAlarms[]", AlarmNamePrefix=d.cfg.stack)}
    for name, spec in alarms.items():
        current = existing.get(name)
        same = current and current["Threshold"] == spec["Threshold"] and current["MetricName"] == spec["MetricName"]
        if d.record("cloudwatch:alarm", name, "ok" if same else ("update" if current else "create")):
            cw.put_metric_alarm(
                AlarmName=name,
                Namespace="AWS/SQS",
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
                **spec,
            )


def remove_queues_and_alarms(d: Deployment) -> list[str]:
    sqs, cw = d.c("sqs"), d.c("cloudwatch")
    removed = []
    alarms = [a["AlarmName"] for a in every(cw, "describe_alarms", "MetricAlarms[]", AlarmNamePrefix=d.cfg.stack)]
    if alarms:
        cw.delete_alarms(AlarmNames=alarms)
        removed += [f"cloudwatch:alarm {a}" for a in alarms]
    for url in every(sqs, "list_queues", "QueueUrls[]", QueueNamePrefix=d.cfg.queue):
        sqs.delete_queue(QueueUrl=url)
        removed.append(f"sqs:queue {url.rsplit('/', 1)[-1]}")
    return removed


# --- configuration in SSM --------------------------------------------------------
def ensure_parameters(d: Deployment) -> None:
    """App settings for the instances; secrets as SecureString, generated once and never overwritten."""
    ssm = d.c("ssm")
    current = {p["Name"] for p in _all_parameters(ssm, d.cfg.parameter_prefix)}
    plain = {
        "IMAGESHARE_ENV": "production",
        "IMAGESHARE_MODE": d.cfg.mode,
        "AWS_REGION": d.cfg.region,
        "S3_BUCKET": d.cfg.bucket,
        "SQS_QUEUE_NAME": d.cfg.queue,
        "SQS_QUEUE_URL": d.outputs.get("queue_url", ""),
        "SQS_VISIBILITY_TIMEOUT": str(d.cfg.visibility_timeout),
        "TASK_TIME_LIMIT": str(d.cfg.task_time_limit),
        "ASG_NAME": d.cfg.groups["workers"],
    }
    if d.outputs.get("cdn_url"):
        plain["CDN_BASE_URL"] = d.outputs["cdn_url"]
    secret = {
        "SECRET_KEY": lambda: secrets.token_urlsafe(48),
        "FLOWER_BASIC_AUTH": lambda: f"admin:{secrets.token_urlsafe(18)}",
        "METRICS_TOKEN": lambda: secrets.token_urlsafe(24),
        "DATABASE_URL": lambda: d.cfg.database_url or "postgres://REPLACE-ME@db.internal:5432/imageshare",
    }
    for key, value in plain.items():
        name = d.cfg.parameter(key)
        same = name in current and ssm.get_parameter(Name=name)["Parameter"]["Value"] == value
        if d.record("ssm:parameter", name, "ok" if same else ("update" if name in current else "create")):
            ssm.put_parameter(Name=name, Value=value or "-", Type="String", Overwrite=True)
    for key, make in secret.items():
        name = d.cfg.parameter(key)
        if d.record("ssm:parameter", name, "ok" if name in current else "create", "SecureString"):
            ssm.put_parameter(Name=name, Value=make(), Type="SecureString")


def _all_parameters(ssm, prefix):
    return every(ssm, "get_parameters_by_path", "Parameters[]", Path=prefix, Recursive=True)


def remove_parameters(d: Deployment) -> list[str]:
    ssm = d.c("ssm")
    params = [p["Name"] for p in _all_parameters(ssm, d.cfg.parameter_prefix)]
    for i in range(0, len(params), 10):  # the API's limit per call
        ssm.delete_parameters(Names=params[i : i + 10])
    return [f"ssm:parameter {p}" for p in params]


# --- IAM -------------------------------------------------------------------------
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
    b, q = d.cfg.bucket, d.cfg.queue
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
                "Resource": [d.queue_arn(q)],
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
    b, q = d.cfg.bucket, d.cfg.queue
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StoreAndServeImages",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                "Resource": [f"arn:aws:s3:::{b}/originals/*", f"arn:aws:s3:::{b}/renditions/*"],
            },
            {
                "Sid": "ListForDeletes",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{b}"],
            },
            {
                "Sid": "EnqueueAndWatchQueues",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                "Resource": [d.queue_arn(q), d.queue_arn(d.cfg.dlq)],
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
                "Action": ["autoscaling:DescribeAutoScalingGroups", "cloudwatch:GetMetricStatistics"],
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


# --- network -----------------------------------------------------------------------
def ensure_network(d: Deployment) -> None:
    """Security groups in the default VPC: workers accept nothing; web only from the load balancer."""
    ec2 = d.c("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    d.outputs["vpc"] = vpc
    d.outputs["subnets"] = ",".join(
        s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    )
    groups = {
        g["GroupName"]: g["GroupId"]
        for g in every(
            ec2, "describe_security_groups", "SecurityGroups[]", Filters=[{"Name": "vpc-id", "Values": [vpc]}]
        )
    }
    descriptions = {
        "alb": "imageshare load balancer",
        "web": "imageshare web tier",
        "workers": "imageshare workers: no inbound",
    }
    for suffix, name in d.cfg.security_groups.items():
        description = descriptions[suffix]
        if d.record("ec2:security-group", name, "ok" if name in groups else "create"):
            groups[name] = ec2.create_security_group(GroupName=name, Description=description, VpcId=vpc)["GroupId"]
        d.outputs[f"sg_{suffix}"] = groups.get(name, "")
    if d.dry_run and not all(d.outputs[f"sg_{s}"] for s in ("alb", "web")):
        return
    _ensure_ingress(
        d,
        "alb",
        [
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "FromPort": 5555, "ToPort": 5555, "IpRanges": [{"CidrIp": d.cfg.admin_cidr}]},
        ],
    )
    _ensure_ingress(
        d,
        "web",
        [
            {
                "IpProtocol": "tcp",
                "FromPort": port,
                "ToPort": port,
                "UserIdGroupPairs": [{"GroupId": d.outputs["sg_alb"]}],
            }
            for port in (8000, 5555)
        ],
    )


def _ensure_ingress(d, suffix, permissions):
    ec2 = d.c("ec2")
    gid = d.outputs[f"sg_{suffix}"]
    current = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]["IpPermissions"]
    have = {
        (
            p.get("FromPort"),
            tuple(sorted(r["CidrIp"] for r in p.get("IpRanges", []))),
            tuple(sorted(g["GroupId"] for g in p.get("UserIdGroupPairs", []))),
        )
        for p in current
    }
    for perm in permissions:
        key = (
            perm["FromPort"],
            tuple(sorted(r["CidrIp"] for r in perm.get("IpRanges", []))),
            tuple(sorted(g["GroupId"] for g in perm.get("UserIdGroupPairs", []))),
        )
        name = f"{d.cfg.security_groups[suffix]}:{perm['FromPort']}"
        if d.record("ec2:ingress", name, "ok" if key in have else "create"):
            ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[perm])


def remove_network(d: Deployment) -> list[str]:
    """The stack's security groups; first every rule, since the web group's rules name the ALB's."""
    ec2 = d.c("ec2")
    names = d.cfg.security_groups.values()
    for g in every(ec2, "describe_security_groups", "SecurityGroups[]"):
        if g["GroupName"] in names and g["IpPermissions"]:
            ec2.revoke_security_group_ingress(GroupId=g["GroupId"], IpPermissions=g["IpPermissions"])
    removed = []
    for g in every(ec2, "describe_security_groups", "SecurityGroups[]"):
        if g["GroupName"] in names:
            ec2.delete_security_group(GroupId=g["GroupId"])
            removed.append(f"ec2:security-group {g['GroupName']}")
    return removed


# --- instances -------------------------------------------------------------------
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
    from ops.deploy.userdata import user_data

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


def ensure_load_balancer(d: Deployment) -> None:
    """ALB -> web instances on 8000 (health check /healthz), and 5555 -> Flower for the admin CIDR."""
    elb = d.c("elbv2")
    name = d.cfg.load_balancer
    lbs = {lb["LoadBalancerName"]: lb for lb in every(elb, "describe_load_balancers", "LoadBalancers[]")}
    if d.record("elbv2:load-balancer", name, "ok" if name in lbs else "create"):
        lb = elb.create_load_balancer(
            Name=name,
            Subnets=d.outputs["subnets"].split(",")[:2],
            SecurityGroups=[d.outputs["sg_alb"]],
            Scheme="internet-facing",
            Type="application",
        )["LoadBalancers"][0]
        lbs[name] = lb
    if name not in lbs:
        return
    lb_arn = lbs[name]["LoadBalancerArn"]
    d.outputs["site_url"] = f"http://{lbs[name]['DNSName']}/"
    d.outputs["flower_url"] = f"http://{lbs[name]['DNSName']}:5555/"
    groups = {
        tg["TargetGroupName"]: tg["TargetGroupArn"] for tg in every(elb, "describe_target_groups", "TargetGroups[]")
    }
    listeners = {ls["Port"] for ls in elb.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]}
    for suffix, port, check in (("web", 8000, "/healthz"), ("flower", 5555, "/healthcheck")):
        tg = d.cfg.target_groups[suffix]
        if d.record("elbv2:target-group", tg, "ok" if tg in groups else "create"):
            groups[tg] = elb.create_target_group(
                Name=tg,
                Protocol="HTTP",
                Port=port,
                VpcId=d.outputs["vpc"],
                HealthCheckPath=check,
                TargetType="instance",
            )["TargetGroups"][0]["TargetGroupArn"]
        listen = 80 if suffix == "web" else 5555
        if d.record("elbv2:listener", f"{name}:{listen}", "ok" if listen in listeners else "create"):
            elb.create_listener(
                LoadBalancerArn=lb_arn,
                Protocol="HTTP",
                Port=listen,
                DefaultActions=[{"Type": "forward", "TargetGroupArn": groups[tg]}],
            )
        d.outputs[f"tg_{suffix}"] = groups.get(tg, "")


def remove_load_balancer(d: Deployment) -> list[str]:
    """The listeners and the load balancer, then the target groups they forwarded to."""
    elb = d.c("elbv2")
    removed = []
    for lb in every(elb, "describe_load_balancers", "LoadBalancers[]"):
        if lb["LoadBalancerName"] == d.cfg.load_balancer:
            for ls in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
                elb.delete_listener(ListenerArn=ls["ListenerArn"])
            elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
            removed.append(f"elbv2:load-balancer {lb['LoadBalancerName']}")
    for tg in every(elb, "describe_target_groups", "TargetGroups[]"):
        if tg["TargetGroupName"] in d.cfg.target_groups.values():
            elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
            removed.append(f"elbv2:target-group {tg['TargetGroupName']}")
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


def ensure_cdn(d: Deployment) -> None:
    if not d.cfg.cdn:
        return
    cf = d.c("cloudfront")
    comment = d.cfg.cdn_comment
    dists = [x for x in every(cf, "list_distributions", "DistributionList.Items[]") if x.get("Comment") == comment]
    if dists:
        d.record("cloudfront:distribution", comment, "ok")
        dist = dists[0]
    elif d.record("cloudfront:distribution", comment, "create"):
        # An earlier run may have made the access control and stopped before
        # the distribution: reuse it (its name is unique in the account).
        found = [o["Id"] for o in _origin_access_controls(cf) if o["Name"] == d.cfg.origin_access_control]
        oac = (
            found[0]
            if found
            else cf.create_origin_access_control(
                OriginAccessControlConfig={
                    "Name": d.cfg.origin_access_control,
                    "SigningProtocol": "sigv4",
                    "SigningBehavior": "always",
                    "OriginAccessControlOriginType": "s3",
                }
            )["OriginAccessControl"]["Id"]
        )
        origin = f"{d.cfg.bucket}.s3.{d.cfg.region}.amazonaws.com"
        dist = cf.create_distribution(
            DistributionConfig={
                "CallerReference": d.cfg.cdn_reference,
                "Comment": comment,
                "Enabled": True,
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": "renditions",
                            "DomainName": origin,
                            "OriginAccessControlId": oac,
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        }
                    ],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": "renditions",
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "MinTTL": 0,
                    "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                    "TrustedSigners": {"Enabled": False, "Quantity": 0},
                },
            }
        )["Distribution"]
    else:
        return
    d.outputs["cdn_url"] = f"https://{dist['DomainName']}"
    d.outputs["oac_distribution_arn"] = dist["ARN"]


def _origin_access_controls(cf) -> list[dict]:
    return every(cf, "list_origin_access_controls", "OriginAccessControlList.Items[]")


def remove_cdn(d: Deployment, wait_delay: int = 30, wait_attempts: int = 40) -> list[str]:
    """Remove the stack's CloudFront distribution and its origin access control.

    1. Find the distribution by its comment (``Config.cdn_comment``).
    2. Disable it if enabled; CloudFront deletes only disabled, deployed
       distributions.
    3. Wait until the change is deployed (minutes on AWS: bounded by
       ``wait_delay`` x ``wait_attempts``, 20 min by default).
    4. Delete it, then the access control it used.
    """
    cf = d.c("cloudfront")
    comment = d.cfg.cdn_comment
    removed = []
    for dist in every(cf, "list_distributions", "DistributionList.Items[]"):
        if dist.get("Comment") != comment:
            continue
        got = cf.get_distribution_config(Id=dist["Id"])
        etag, config = got["ETag"], got["DistributionConfig"]
        if config["Enabled"]:
            config["Enabled"] = False
            etag = cf.update_distribution(Id=dist["Id"], IfMatch=etag, DistributionConfig=config)["ETag"]
        try:
            cf.get_waiter("distribution_deployed").wait(
                Id=dist["Id"], WaiterConfig={"Delay": wait_delay, "MaxAttempts": wait_attempts}
            )
        except WaiterError as exc:
            raise SystemExit(
                f"distribution {dist['Id']} is disabled but not deployed yet; run destroy again later ({exc})"
            ) from exc
        cf.delete_distribution(Id=dist["Id"], IfMatch=cf.get_distribution(Id=dist["Id"])["ETag"])
        removed.append(f"cloudfront:distribution {dist['Id']}")
    for oac in _origin_access_controls(cf):
        if oac["Name"] == d.cfg.origin_access_control:
            etag = cf.get_origin_access_control(Id=oac["Id"])["ETag"]
            cf.delete_origin_access_control(Id=oac["Id"], IfMatch=etag)
            removed.append(f"cloudfront:origin-access-control {oac['Name']}")
    return removed


STEPS = [
    ensure_cdn,  # first: the bucket policy names the distribution
    ensure_bucket,
    ensure_queues_and_alarms,
    ensure_parameters,
    ensure_roles,
    ensure_network,
    ensure_launch_templates,
    ensure_load_balancer,
    ensure_groups,
]


def deploy(cfg: Config, dry_run: bool = False) -> Deployment:
    """Run every ensure step in order (plan: the same reads, no writes)."""
    d = Deployment(cfg, dry_run=dry_run)
    for step in STEPS:
        step(d)
    return d


def destroy(cfg: Config, delete_data: bool = False, cdn_wait_delay: int = 30) -> list[str]:
    """Remove everything deploy made, in reverse order. Refuses a bucket with images unless delete_data."""
    d = Deployment(cfg)
    refuse_to_delete_images(d, delete_data)
    steps = [
        remove_groups,
        remove_load_balancer,
        remove_launch_templates,
        remove_network,
        remove_roles,
        remove_parameters,
        remove_queues_and_alarms,
        remove_bucket,
        # Last: the slow one (disabling a distribution takes minutes on AWS).
        partial(remove_cdn, wait_delay=cdn_wait_delay),
    ]
    return [line for remove in steps for line in remove(d)]


def bake_ami(cfg: Config, instance_id: str) -> str:
    """An AMI of a configured worker (app installed), recorded for the next launch template version."""
    d = Deployment(cfg)
    image = d.c("ec2").create_image(InstanceId=instance_id, Name=cfg.baked_ami(secrets.token_hex(4)), NoReboot=False)[
        "ImageId"
    ]
    d.c("ssm").put_parameter(Name=cfg.parameter("WORKER_AMI"), Value=image, Type="String", Overwrite=True)
    return image


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.deploy.aws", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["plan", "deploy", "outputs", "destroy", "bake-ami"])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--endpoint-url", help="an AWS-compatible endpoint (moto) instead of AWS")
    parser.add_argument("--mode", choices=["private", "open"], default="private")
    parser.add_argument("--cdn", action="store_true")
    parser.add_argument("--native-scaling", action="store_true", help="also attach a target-tracking policy")
    parser.add_argument("--workers-min", type=int, default=1)
    parser.add_argument("--workers-max", type=int, default=8)
    parser.add_argument("--instance-type", default="t3.small")
    parser.add_argument("--image-id")
    parser.add_argument("--admin-cidr", default="127.0.0.1/32", help="who may reach Flower (port 5555)")
    parser.add_argument("--app-source", default=Config.app_source, help="release tarball URL the instances install")
    parser.add_argument("--database-url", default="", help="stored as a SecureString; never in user data")
    parser.add_argument("--delete-data", action="store_true", help="destroy: also delete users' images")
    parser.add_argument("--instance-id", help="bake-ami: the configured instance")
    args = parser.parse_args(argv)
    cfg = Config(
        stack=args.stack, region=args.region, endpoint_url=args.endpoint_url, mode=args.mode, cdn=args.cdn,
        native_scaling=args.native_scaling, workers_min=args.workers_min, workers_max=args.workers_max,
        instance_type=args.instance_type, image_id=args.image_id, admin_cidr=args.admin_cidr,
        app_source=args.app_source, database_url=args.database_url,
    )  # fmt: skip
    if args.command in ("plan", "deploy", "outputs"):
        d = deploy(cfg, dry_run=args.command != "deploy")
        if args.command != "outputs":
            for change in d.changes:
                print(change)
            pending = [c for c in d.changes if c.action != "ok"]
            verb = "to change" if args.command == "plan" else "changed"
            print(f"\n{len(pending)} {verb}, {len(d.changes) - len(pending)} unchanged")
        for key in (
            "site_url",
            "flower_url",
            "queue_url",
            "dead_letter_queue_url",
            "bucket",
            "cdn_url",
            "workers_group",
        ):
            if d.outputs.get(key):
                print(f"{key}: {d.outputs[key]}")
    elif args.command == "destroy":
        for line in destroy(cfg, delete_data=args.delete_data):
            print(f"deleted {line}")
    else:
        if not args.instance_id:
            parser.error("bake-ami needs --instance-id")
        print(bake_ami(cfg, args.instance_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
