"""The stack's settings, and every resource name derived from them, in one place.

deploy finds what exists by these names and destroy removes by them: a name
spelt out twice could drift and leave a resource behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imageshare import settings as app
from ops.deploy.clients import client

TAG = "imageshare:stack"

# Ports: the web tier (gunicorn) and Flower on the instances; the load balancer
# serves HTTPS on 443 (HTTP on 80 only redirects) and Flower's HTTPS on its own port.
WEB_PORT = 8000
FLOWER_PORT = 5555
HTTPS_PORT = 443
HTTP_PORT = 80

# A warm shutdown finishes the task in hand, which may have just started: the
# task time limit, plus this for Celery to wind down (release prefetched
# messages, close its connections).
STOP_MARGIN = 30
# The drain agent polls every 10 s, stops the worker (up to the stop timeout),
# then completes the lifecycle action: the hook waits this much longer.
DRAIN_MARGIN = 60


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
    # The ACM certificate (same region) of the site's domain: the load balancer
    # serves HTTPS with it; deploy refuses to run without one.
    certificate_arn: str | None = None
    tls_policy: str = "ELBSecurityPolicy-TLS13-1-2-2021-06"  # TLS 1.3 and 1.2 only
    # The app's own defaults (imageshare/settings.py), so deploy and the app
    # agree: a short visibility timeout the worker's heartbeat extends.
    visibility_timeout: int = app.SQS_VISIBILITY_TIMEOUT
    task_time_limit: int = app.TASK_TIME_LIMIT
    max_receive_count: int = app.SQS_MAX_RECEIVE_COUNT
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
    def extras_queue(self) -> str:
        """Extra sizes asked for after upload: a queue of their own, consumed beside the work queue."""
        return f"{self.queue}-extras"

    @property
    def analysis_queue(self) -> str:
        """Faces and masks (thumbnails/analysis.py): a queue of its own, for the worker nodes' analysis unit."""
        return f"{self.queue}-analysis"

    @property
    def dlq(self) -> str:
        return f"{self.queue}-dlq"

    @property
    def queues(self) -> tuple[str, str, str, str]:
        """Every queue of the stack: the two work queues, the analysis queue, then the dead-letter queue they share."""
        return (self.queue, self.extras_queue, self.analysis_queue, self.dlq)

    @property
    def dlq_alarm(self) -> str:
        return self.name("dlq-not-empty")

    @property
    def age_alarm(self) -> str:
        return self.name("oldest-message-age")

    @property
    def extras_age_alarm(self) -> str:
        return self.name("extras-oldest-message-age")

    @property
    def alarms(self) -> tuple[str, str, str]:
        """Every alarm of the stack, by exact name (a prefix would also match stack "prod2" for "prod")."""
        return (self.dlq_alarm, self.age_alarm, self.extras_age_alarm)

    # --- timeouts derived from the settings -------------------------------------
    @property
    def worker_stop_timeout(self) -> int:
        """systemd's TimeoutStopSec for the worker: long enough for a warm shutdown to finish a task."""
        return self.task_time_limit + STOP_MARGIN

    @property
    def drain_hook_timeout(self) -> int:
        """The termination lifecycle hook's heartbeat timeout: the drain agent's stop, and some."""
        return self.worker_stop_timeout + DRAIN_MARGIN

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
