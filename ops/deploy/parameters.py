"""The instances' configuration in SSM Parameter Store, under /STACK/.

Secrets never travel in user data: deploy writes them here as SecureString,
and an instance reads them at boot with its role.
"""

from __future__ import annotations

import secrets

from ops.deploy.clients import every
from ops.deploy.config import Deployment


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
