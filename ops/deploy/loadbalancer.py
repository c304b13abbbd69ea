"""The application load balancer: port 80 to the web tier, 5555 to Flower for the admin CIDR."""

from __future__ import annotations

from ops.deploy.clients import every
from ops.deploy.config import Deployment


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
