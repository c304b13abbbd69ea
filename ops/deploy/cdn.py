"""The optional CloudFront distribution in front of renditions/, reading the bucket through origin access control."""

from __future__ import annotations

from botocore.exceptions import WaiterError

from ops.deploy.clients import every
from ops.deploy.config import Deployment


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
                    # The rendition URLs' ?v=<version> is part of the cache key: a re-made rendition
                    # gets a new URL, so renditions are cached for a year (links.rendition_cache_control).
                    "ForwardedValues": {
                        "QueryString": True,
                        "QueryStringCacheKeys": {"Quantity": 1, "Items": ["v"]},
                        "Cookies": {"Forward": "none"},
                    },
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
