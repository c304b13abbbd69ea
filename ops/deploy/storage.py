"""The media bucket. It holds users' images, so destroy empties it only when asked (--delete-data).

(``ensure_media_bucket``: production's bucket with its policies; ``clients.ensure_bucket``
is the local stack's plain private bucket.)
"""

from __future__ import annotations

import json

from ops.deploy.clients import every, upload_cors_rules
from ops.deploy.config import TAG, Deployment

DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
EMPTY_PASSES = 3  # list-and-delete rounds before destroy gives up on objects S3 keeps refusing


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


def ensure_media_bucket(d: Deployment) -> None:
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
            },
            {  # direct uploads never finalized (imageshare/images/direct.py): finalize deletes the others
                "ID": "expire-unfinished-direct-uploads",
                "Status": "Enabled",
                "Filter": {"Prefix": "incoming/"},
                "Expiration": {"Days": 1},
            },
        ]
    }
    _ensure_s3_setting(
        d,
        "s3:lifecycle",
        lambda: {
            "Rules": [
                {k: r[k] for k in ("ID", "Status", "Filter", "AbortIncompleteMultipartUpload", "Expiration") if k in r}
                for r in s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
            ]
        },
        lifecycle,
        lambda: s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration=lifecycle),
        exists,
    )
    _ensure_upload_cors(d, exists)
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


def _ensure_upload_cors(d: Deployment, exists: bool) -> None:
    """The site's pages (https://<each host of its certificate>) may POST files to the bucket: direct uploads."""
    hosts = [h for h in d.outputs.get("hosts", "").split(",") if h]
    if not hosts:
        return  # no site name known: the upload page falls back to its multipart form
    s3, b = d.c("s3"), d.cfg.bucket
    wanted = upload_cors_rules([f"https://{h}" for h in hosts])
    _ensure_s3_setting(
        d,
        "s3:cors",
        lambda: {
            "CORSRules": [
                {k: r[k] for k in wanted["CORSRules"][0] if k in r} for r in s3.get_bucket_cors(Bucket=b)["CORSRules"]
            ]
        },
        wanted,
        lambda: s3.put_bucket_cors(Bucket=b, CORSConfiguration=wanted),
        exists,
    )


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


def _empty_bucket(s3, bucket: str, passes: int = EMPTY_PASSES) -> dict[str, str]:
    """Delete every object, in a bounded number of passes; return what is left: key -> why.

    DeleteObjects answers 200 even when it refuses some keys (access denied,
    object lock...): those come back in ``Errors``, and listing again would
    find them again for ever. So: at most ``passes`` rounds, then report.
    """
    refused: dict[str, str] = {}
    for _ in range(passes):
        keys = every(s3, "list_objects_v2", "Contents[].Key", Bucket=bucket)
        if not keys:
            return {}
        refused = {}
        for i in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": k} for k in keys[i : i + DELETE_BATCH]]
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            refused.update({e["Key"]: f"{e.get('Code')}: {e.get('Message')}" for e in answer.get("Errors", [])})
    left = every(s3, "list_objects_v2", "Contents[].Key", Bucket=bucket)
    return {k: refused.get(k, "still listed after deleting") for k in left}


def remove_media_bucket(d: Deployment) -> list[str]:
    """Empty the bucket (bounded), then delete it; stop with the keys S3 refused to delete."""
    s3, b = d.c("s3"), d.cfg.bucket
    if b not in {x["Name"] for x in s3.list_buckets().get("Buckets", [])}:
        return []
    left = _empty_bucket(s3, b)
    if left:
        shown = "; ".join(f"{k} ({why})" for k, why in list(left.items())[:10])
        more = f" and {len(left) - 10} more" if len(left) > 10 else ""
        raise SystemExit(
            f"bucket {b} kept: S3 did not delete {len(left)} objects: {shown}{more}. "
            "Fix their permissions (or object lock), then run destroy again."
        )
    s3.delete_bucket(Bucket=b)
    return [f"s3:bucket {b}"]
