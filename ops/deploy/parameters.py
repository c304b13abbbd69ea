"""The instances' configuration in SSM Parameter Store, under /STACK/.

Secrets never travel in user data: deploy writes them here as SecureString,
and an instance reads them at boot with its role.
"""

from __future__ import annotations

import secrets

from ops.deploy.clients import every
from ops.deploy.config import FLOWER_PORT, Config, Deployment


def allowed_hosts(hosts: list[str]) -> str:
    """Django's ALLOWED_HOSTS for the certificate's names: '*.example.com' is '.example.com' to Django."""
    return ",".join("." + h.removeprefix("*.") if h.startswith("*.") else h for h in hosts)


def app_settings(cfg: Config, outputs: dict[str, str]) -> dict[str, str]:
    """The plain (non-secret) settings the instances get, as imageshare/settings.py reads them.

    Production's own rules stay the app's (HTTPS redirect, secure cookies,
    HSTS, one trusted proxy): nothing here overrides them. ``outputs`` are the
    earlier steps' (queue URLs, the certificate's host names, the CDN URL).
    """
    hosts = [h for h in outputs.get("hosts", "").split(",") if h]
    site = next((h for h in hosts if not h.startswith("*")), "")
    plain = {
        "IMAGESHARE_ENV": "production",
        "IMAGESHARE_MODE": cfg.mode,
        "ALLOWED_HOSTS": allowed_hosts(hosts),
        "AWS_REGION": cfg.region,
        "S3_BUCKET": cfg.bucket,
        "SQS_QUEUE_NAME": cfg.queue,
        "SQS_QUEUE_URL": outputs.get("queue_url", ""),
        "SQS_EXTRAS_QUEUE_NAME": cfg.extras_queue,
        "SQS_EXTRAS_QUEUE_URL": outputs.get("extras_queue_url", ""),
        "SQS_ANALYSIS_QUEUE_NAME": cfg.analysis_queue,
        "SQS_ANALYSIS_QUEUE_URL": outputs.get("analysis_queue_url", ""),
        "SQS_DEAD_LETTER_QUEUE_NAME": cfg.dlq,
        "SQS_DEAD_LETTER_QUEUE_URL": outputs.get("dead_letter_queue_url", ""),
        "SQS_VISIBILITY_TIMEOUT": str(cfg.visibility_timeout),
        "SQS_MAX_RECEIVE_COUNT": str(cfg.max_receive_count),
        "TASK_TIME_LIMIT": str(cfg.task_time_limit),
        "ASG_NAME": cfg.groups["workers"],
    }
    if site:
        plain["FLOWER_URL"] = f"https://{site}:{FLOWER_PORT}/"
    if outputs.get("cdn_url"):
        plain["CDN_BASE_URL"] = outputs["cdn_url"]
    return plain


def ensure_parameters(d: Deployment) -> None:
    """App settings for the instances; secrets as SecureString, generated once and never overwritten."""
    ssm = d.c("ssm")
    current = {p["Name"] for p in _all_parameters(ssm, d.cfg.parameter_prefix)}
    secret = {
        "SECRET_KEY": lambda: secrets.token_urlsafe(48),
        "FLOWER_BASIC_AUTH": lambda: f"admin:{secrets.token_urlsafe(18)}",
        "METRICS_TOKEN": lambda: secrets.token_urlsafe(24),
        "DATABASE_URL": lambda: d.cfg.database_url or "postgres://REPLACE-ME@db.internal:5432/imageshare",
    }
    for key, value in app_settings(d.cfg, d.outputs).items():
        name = d.cfg.parameter(key)
        value = value or "-"  # SSM refuses an empty value
        same = name in current and ssm.get_parameter(Name=name)["Parameter"]["Value"] == value
        if d.record("ssm:parameter", name, "ok" if same else ("update" if name in current else "create")):
            ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
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
