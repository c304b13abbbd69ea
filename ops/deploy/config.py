"""The stack's settings, and every resource name derived from them, in one place.

deploy finds what exists by these names and destroy removes by them: a name
spelt out twice could drift and leave a resource behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ops.deploy.clients import client

TAG = "imageshare:stack"


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
