"""Provision (and tear down) imageshare's production fleet on AWS, with plain boto3.

    python -m ops.deploy plan    --stack NAME --region R --certificate-arn ARN   # what deploy would change
    python -m ops.deploy deploy  --stack NAME --region R --certificate-arn ARN [--mode open] [--cdn] ...
    python -m ops.deploy outputs --stack NAME --region R --certificate-arn ARN   # site URL, Flower URL, ...
    python -m ops.deploy destroy --stack NAME --region R [--delete-data]
    python -m ops.deploy bake-ami --stack NAME --region R --instance-id i-...

Why plain boto3 and not CloudFormation: every resource here must be tested
against moto in CI, and moto's CloudFormation lacks several of the types we
need (CloudWatch alarms, lifecycle hooks, bucket policies, CloudFront), while
its plain APIs have them all. Each resource is an "ensure" step that reads
what exists (by name) and creates or corrects only what differs, so a second
deploy changes nothing; ``plan`` runs the same reads without writing.

Each resource family has its module with an ensure step and a remove step:
config (names), storage, queues, parameters, iam, network, compute,
loadbalancer, cdn. This module orders them.

The site is served over HTTPS only, with an ACM certificate of the stack's
region (``--certificate-arn``, required: production's app redirects to HTTPS
and marks its cookies Secure, so a stack without TLS could not serve a page).
"""

from __future__ import annotations

import argparse
import secrets
from functools import partial

from ops.deploy.cdn import ensure_cdn, remove_cdn
from ops.deploy.compute import ensure_groups, ensure_launch_templates, remove_groups, remove_launch_templates
from ops.deploy.config import Config, Deployment
from ops.deploy.iam import ensure_roles, remove_roles
from ops.deploy.loadbalancer import ensure_load_balancer, read_certificate, remove_load_balancer
from ops.deploy.network import ensure_network, remove_network
from ops.deploy.parameters import ensure_parameters, remove_parameters
from ops.deploy.queues import ensure_queues_and_alarms, remove_queues_and_alarms
from ops.deploy.storage import ensure_media_bucket, refuse_to_delete_images, remove_media_bucket

STEPS = [
    read_certificate,  # first: refuse early without one; its names are the site's hosts
    ensure_cdn,  # before the bucket: the bucket policy names the distribution
    ensure_media_bucket,
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
        remove_media_bucket,
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
    parser = argparse.ArgumentParser(prog="python -m ops.deploy", description=__doc__.split("\n")[0])
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
    parser.add_argument("--admin-cidr", default="127.0.0.1/32", help="who may reach Flower (HTTPS, port 5555)")
    parser.add_argument(
        "--certificate-arn", help="plan/deploy/outputs: the ACM certificate (issued, same region) of the site's domain"
    )
    parser.add_argument("--app-source", default=Config.app_source, help="release tarball URL the instances install")
    parser.add_argument("--database-url", default="", help="stored as a SecureString; never in user data")
    parser.add_argument("--delete-data", action="store_true", help="destroy: also delete users' images")
    parser.add_argument("--instance-id", help="bake-ami: the configured instance")
    args = parser.parse_args(argv)
    cfg = Config(
        stack=args.stack, region=args.region, endpoint_url=args.endpoint_url, mode=args.mode, cdn=args.cdn,
        native_scaling=args.native_scaling, workers_min=args.workers_min, workers_max=args.workers_max,
        instance_type=args.instance_type, image_id=args.image_id, admin_cidr=args.admin_cidr,
        app_source=args.app_source, database_url=args.database_url, certificate_arn=args.certificate_arn,
    )  # fmt: skip
    if args.command in ("plan", "deploy", "outputs") and not args.certificate_arn:
        parser.error(f"{args.command} needs --certificate-arn: the site is served over HTTPS only")
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
            "load_balancer_dns",
            "hosts",
            "queue_url",
            "extras_queue_url",
            "analysis_queue_url",
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
