"""The security groups chain the tiers: only the load balancer reaches the web tier, and nothing
reaches the workers (they pull their work from SQS). The load balancer takes HTTPS (443) from
anywhere, HTTP (80) only to redirect it, and Flower's port from the admin CIDR."""

from __future__ import annotations

from ops.deploy.clients import every
from ops.deploy.config import FLOWER_PORT, HTTP_PORT, HTTPS_PORT, WEB_PORT, Deployment


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

    def port_from(port, cidr):
        return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}

    # HTTPS for everyone; HTTP only to be redirected to HTTPS; Flower (HTTPS) for the admin CIDR.
    _ensure_ingress(
        d,
        "alb",
        [
            port_from(HTTPS_PORT, "0.0.0.0/0"),
            port_from(HTTP_PORT, "0.0.0.0/0"),
            port_from(FLOWER_PORT, d.cfg.admin_cidr),
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
            for port in (WEB_PORT, FLOWER_PORT)
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
