"""The application load balancer: HTTPS only, for the site and for Flower.

- 443, HTTPS with the ACM certificate on Config and a TLS 1.3/1.2 policy: the web tier (8000).
- 80, HTTP: a 301 redirect to the same host, path and query over HTTPS; nothing is served.
- 5555, HTTPS (same certificate and policy), reachable from the admin CIDR only
  (network.py): Flower, behind its own basic auth. Flower serves Prometheus
  metrics at /metrics without asking for it, so the load balancer answers
  /metrics* itself with a 403: that path never reaches Flower from outside.

The load balancer ends TLS: its health checks speak plain HTTP to the instances
(/healthz, which the app exempts from its HTTPS redirect; Flower's /healthcheck),
and the app learns the scheme from X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER).
"""

from __future__ import annotations

from ops.deploy.clients import every, matches
from ops.deploy.config import FLOWER_PORT, HTTP_PORT, HTTPS_PORT, WEB_PORT, Deployment

HEALTH_CHECKS = {"web": (WEB_PORT, "/healthz"), "flower": (FLOWER_PORT, "/healthcheck")}

REDIRECT_TO_HTTPS = {
    "Type": "redirect",
    "RedirectConfig": {
        "Protocol": "HTTPS",
        "Port": str(HTTPS_PORT),
        "Host": "#{host}",
        "Path": "/#{path}",
        "Query": "#{query}",
        "StatusCode": "HTTP_301",
    },
}

# On Flower's listener: /metrics, /metrics/ and anything under it.
FLOWER_METRICS_BLOCKED = {
    "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/metrics*"]}}],
    "Actions": [
        {
            "Type": "fixed-response",
            "FixedResponseConfig": {"StatusCode": "403", "ContentType": "text/plain", "MessageBody": "Forbidden\n"},
        }
    ],
}


def read_certificate(d: Deployment) -> None:
    """Deploy's first step: the certificate exists in the stack's region and is issued.

    Its names become the site's hosts (ALLOWED_HOSTS, the URLs deploy prints):
    point them at the load balancer in DNS.
    """
    arn = d.cfg.certificate_arn
    if not arn:
        raise SystemExit(
            "deploy needs --certificate-arn: an issued ACM certificate for the site's domain, in the stack's region"
        )
    acm = d.c("acm")
    try:
        cert = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    except acm.exceptions.ResourceNotFoundException:
        raise SystemExit(f"certificate {arn} not found in {d.cfg.region} (a load balancer uses its region's)") from None
    if cert["Status"] != "ISSUED":
        raise SystemExit(f"certificate {arn} is {cert['Status']}: validate it (its DNS record) first, then deploy")
    names = [cert["DomainName"], *cert.get("SubjectAlternativeNames", [])]
    d.outputs["certificate"] = arn
    d.outputs["hosts"] = ",".join(dict.fromkeys(names))


def listener_specs(d: Deployment, target_groups: dict[str, str]) -> dict[int, dict]:
    """Each listener by port: protocol, TLS settings and default action."""
    tls = {
        "Protocol": "HTTPS",
        "SslPolicy": d.cfg.tls_policy,
        "Certificates": [{"CertificateArn": d.cfg.certificate_arn}],
    }

    def forward(suffix):
        return [{"Type": "forward", "TargetGroupArn": target_groups.get(suffix, "")}]

    return {
        HTTPS_PORT: {**tls, "DefaultActions": forward("web")},
        HTTP_PORT: {"Protocol": "HTTP", "DefaultActions": [REDIRECT_TO_HTTPS]},
        FLOWER_PORT: {**tls, "DefaultActions": forward("flower")},
    }


def ensure_load_balancer(d: Deployment) -> None:
    """The ALB, its target groups, its three listeners and the rule that keeps Flower's /metrics private."""
    elb = d.c("elbv2")
    lb = _ensure_alb(d, elb)
    groups = _ensure_target_groups(d, elb)
    listeners = {}
    if lb is not None:
        host = next((h for h in d.outputs.get("hosts", "").split(",") if h and not h.startswith("*")), lb["DNSName"])
        d.outputs.update(
            load_balancer_dns=lb["DNSName"],
            site_url=f"https://{host}/",
            flower_url=f"https://{host}:{FLOWER_PORT}/",
        )
        described = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        listeners = {ls["Port"]: ls for ls in described}
    arns = {}
    for port, spec in listener_specs(d, groups).items():
        arns[port] = _ensure_listener(d, elb, lb, port, spec, listeners.get(port))
    _ensure_flower_metrics_blocked(d, elb, arns[FLOWER_PORT])


def _ensure_alb(d: Deployment, elb) -> dict | None:
    """The load balancer, or None in a plan that would create it."""
    name = d.cfg.load_balancer
    lbs = {lb["LoadBalancerName"]: lb for lb in every(elb, "describe_load_balancers", "LoadBalancers[]")}
    if d.record("elbv2:load-balancer", name, "ok" if name in lbs else "create"):
        lbs[name] = elb.create_load_balancer(
            Name=name,
            Subnets=d.outputs["subnets"].split(",")[:2],
            SecurityGroups=[d.outputs["sg_alb"]],
            Scheme="internet-facing",
            Type="application",
        )["LoadBalancers"][0]
    return lbs.get(name)


def _ensure_target_groups(d: Deployment, elb) -> dict[str, str]:
    """Target group ARN by suffix; health checks over plain HTTP to the instance's port."""
    groups = {
        tg["TargetGroupName"]: tg["TargetGroupArn"] for tg in every(elb, "describe_target_groups", "TargetGroups[]")
    }
    arns = {}
    for suffix, (port, check) in HEALTH_CHECKS.items():
        tg = d.cfg.target_groups[suffix]
        if d.record("elbv2:target-group", tg, "ok" if tg in groups else "create", f"HTTP {port} {check}"):
            groups[tg] = elb.create_target_group(
                Name=tg,
                Protocol="HTTP",
                Port=port,
                VpcId=d.outputs["vpc"],
                HealthCheckProtocol="HTTP",
                HealthCheckPath=check,
                TargetType="instance",
            )["TargetGroups"][0]["TargetGroupArn"]
        arns[suffix] = groups.get(tg, "")
        d.outputs[f"tg_{suffix}"] = arns[suffix]
    return arns


def _ensure_listener(d: Deployment, elb, lb, port: int, spec: dict, current: dict | None) -> str:
    """Create the listener or correct it (an older stack's HTTP listeners become HTTPS and a redirect)."""
    label = f"{d.cfg.load_balancer}:{port}"
    detail = spec["Protocol"] + (" -> HTTPS" if spec["DefaultActions"][0]["Type"] == "redirect" else "")
    if current is None:
        if d.record("elbv2:listener", label, "create", detail):
            return elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Port=port, **spec)["Listeners"][0][
                "ListenerArn"
            ]
        return ""
    if d.record("elbv2:listener", label, "ok" if matches(spec, current) else "update", detail):
        elb.modify_listener(ListenerArn=current["ListenerArn"], Port=port, **spec)
    return current["ListenerArn"]


def _ensure_flower_metrics_blocked(d: Deployment, elb, listener_arn: str) -> None:
    """A rule on Flower's listener: /metrics* answers 403 at the load balancer."""
    rules = elb.describe_rules(ListenerArn=listener_arn)["Rules"] if listener_arn else []
    found = next(
        (r for r in rules if not r["IsDefault"] and matches(FLOWER_METRICS_BLOCKED["Conditions"], r["Conditions"])),
        None,
    )
    label = f"{d.cfg.load_balancer}:{FLOWER_PORT} /metrics*"
    if found is None:
        if d.record("elbv2:listener-rule", label, "create", "fixed 403"):
            elb.create_rule(ListenerArn=listener_arn, Priority=1, **FLOWER_METRICS_BLOCKED)
        return
    same = matches(FLOWER_METRICS_BLOCKED["Actions"], found["Actions"])
    if d.record("elbv2:listener-rule", label, "ok" if same else "update", "fixed 403"):
        elb.modify_rule(RuleArn=found["RuleArn"], **FLOWER_METRICS_BLOCKED)


def remove_load_balancer(d: Deployment) -> list[str]:
    """The listeners (their rules go with them) and the load balancer, then the target groups they forwarded to."""
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
