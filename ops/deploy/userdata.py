"""Instance boot: the cloud-init user data and the systemd units it installs.

The worker unit runs exactly the command the local stack runs
(``ops.worker.command.worker_command``), under systemd: started at boot, restarted
on failure, stopped with SIGTERM to the main process only (Celery's warm
shutdown: it finishes the task in hand), logs to the journal.

Configuration is read at boot from SSM Parameter Store with the instance's
role, into a root-only environment file: no secret is in the user data.
"""

from __future__ import annotations

import base64
import shlex

from ops.deploy.config import FLOWER_PORT, WEB_PORT
from ops.worker.command import worker_command

APP_DIR = "/opt/imageshare"
PYTHON = f"{APP_DIR}/.venv/bin/python"
ENV_FILE = "/etc/imageshare/env"
# Each web worker is replaced after 500 requests (jittered): `make soak` measured
# the web processes' memory growing under steady uploads.
GUNICORN_OPTIONS = "--workers 3 --worker-class gthread --threads 4 --max-requests 500 --max-requests-jitter 100"


def _systemd_exec(argv: list[str]) -> str:
    """Quote for ExecStart and escape '%' (a systemd specifier): '%h' -> '%%h'."""
    return " ".join(shlex.quote(a) for a in argv).replace("%", "%%")


def worker_exec(cfg) -> list[str]:
    """The worker consumes both work queues: new uploads and extra sizes."""
    argv = worker_command(f"{cfg.queue},{cfg.extras_queue}", 2, "worker")
    return [PYTHON, *argv[1:]]


def worker_unit(cfg) -> str:
    return f"""[Unit]
Description=imageshare thumbnail worker (Celery over SQS)
After=network-online.target imageshare-config.service
Wants=network-online.target
Requires=imageshare-config.service

[Service]
Type=simple
User=imageshare
WorkingDirectory={APP_DIR}
EnvironmentFile={ENV_FILE}
ExecStart={_systemd_exec(worker_exec(cfg))}
Restart=on-failure
RestartSec=5
# Warm shutdown: SIGTERM to Celery's main process only; it stops taking
# messages and finishes the tasks in hand (the heartbeat keeps them hidden),
# within the task time limit and a margin.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={cfg.worker_stop_timeout}
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=multi-user.target
"""


def analysis_exec(cfg) -> list[str]:
    """The analysis worker: the analysis queue only, one process (docs/analysis.md)."""
    argv = worker_command(cfg.analysis_queue, 1, "analysis")
    return [PYTHON, *argv[1:]]


def analysis_unit(cfg) -> str:
    """The worker unit's twin for faces and masks: its own process, so a slow model never holds a resize slot."""
    return (
        worker_unit(cfg)
        .replace("imageshare thumbnail worker (Celery over SQS)", "imageshare analysis worker (faces, masks)")
        .replace(_systemd_exec(worker_exec(cfg)), _systemd_exec(analysis_exec(cfg)))
    )


def drain_unit(cfg) -> str:
    return f"""[Unit]
Description=imageshare: finish work before the Auto Scaling group terminates this instance
After=imageshare-worker.service

[Service]
Type=simple
EnvironmentFile={ENV_FILE}
ExecStart={PYTHON} -m ops.worker.drain
Restart=always
RestartSec=10
StandardOutput=journal

[Install]
WantedBy=multi-user.target
"""


def web_units(cfg) -> dict[str, str]:
    common = f"""User=imageshare
WorkingDirectory={APP_DIR}
EnvironmentFile={ENV_FILE}
Restart=on-failure
RestartSec=5
StandardOutput=journal
StandardError=journal"""
    return {
        "imageshare-web.service": f"""[Unit]
Description=imageshare web tier (gunicorn)
After=network-online.target imageshare-config.service
Requires=imageshare-config.service

[Service]
ExecStart={PYTHON} -m gunicorn imageshare.wsgi --bind 0.0.0.0:{WEB_PORT} {GUNICORN_OPTIONS}
{common}

[Install]
WantedBy=multi-user.target
""",
        "imageshare-autoscale.service": f"""[Unit]
Description=imageshare scaling hook (EC2 Auto Scaling provider)
After=imageshare-web.service

[Service]
ExecStart={PYTHON} manage.py duties --provider asg
{common}

[Install]
WantedBy=multi-user.target
""",
        # Behind the load balancer's HTTPS listener. The basic auth is read from
        # the environment file (FLOWER_BASIC_AUTH), never on the command line.
        "imageshare-flower.service": f"""[Unit]
Description=imageshare Flower (events from Redis, basic auth)
After=network-online.target imageshare-config.service

[Service]
ExecStart={PYTHON} -m ops.worker.flower --address 0.0.0.0 --port {FLOWER_PORT}
{common}

[Install]
WantedBy=multi-user.target
""",
    }


def config_unit(cfg) -> str:
    """Fetch the settings from SSM into the env file before the app starts."""
    return """[Unit]
Description=imageshare: read configuration from SSM Parameter Store
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/imageshare-config

[Install]
WantedBy=multi-user.target
"""


CONFIG_SCRIPT = """#!/bin/bash
# Write /etc/imageshare/env (root and the app user only) from SSM, with the instance role.
set -euo pipefail
install -d -m 750 -o root -g imageshare /etc/imageshare
tmp=$(mktemp)
aws ssm get-parameters-by-path --region @REGION@ --path @PREFIX@ --recursive --with-decryption \\
  --query 'Parameters[*].[Name,Value]' --output text |
  while IFS=$'\\t' read -r name value; do printf '%s=%s\\n' "${name##*/}" "$value"; done > "$tmp"
# The load balancer's health checks name this instance by its private address
# (Host: 10.x.y.z:8000): Django must accept it as a host too.
token=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
ip=$(curl -fsS -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/local-ipv4)
sed -i "s/^ALLOWED_HOSTS=.*/&,$ip/" "$tmp"
install -m 640 -o root -g imageshare "$tmp" /etc/imageshare/env
rm -f "$tmp"
"""


def config_script(cfg) -> str:
    """/usr/local/bin/imageshare-config: the parameters under ``Config.parameter_prefix`` (derived there only)."""
    return CONFIG_SCRIPT.replace("@REGION@", shlex.quote(cfg.region)).replace(
        "@PREFIX@", shlex.quote(cfg.parameter_prefix)
    )


def user_data(cfg, role: str, encoded: bool = False) -> str:
    """The cloud-init script for a ``worker`` or ``web`` instance."""
    units = {"imageshare-config.service": config_unit(cfg)}
    if role == "worker":
        units["imageshare-worker.service"] = worker_unit(cfg)
        units["imageshare-analysis.service"] = analysis_unit(cfg)
        units["imageshare-drain.service"] = drain_unit(cfg)
    else:
        units.update(web_units(cfg))
    parts = [
        "#!/bin/bash",
        "# imageshare instance boot (cloud-init user data). No secrets here: they come from SSM.",
        "set -euxo pipefail",
        "export DEBIAN_FRONTEND=noninteractive",
        "apt-get update -q",
        "apt-get install -y -q python3 python3-venv awscli curl ca-certificates",
        "id imageshare >/dev/null 2>&1 ||"
        " useradd --system --home-dir /opt/imageshare --shell /usr/sbin/nologin imageshare",
        f"if [ ! -x {PYTHON} ]; then",
        f"  install -d -o imageshare {APP_DIR}",
        f"  curl -fsSL {shlex.quote(cfg.app_source)} | tar -xz -C {APP_DIR} --strip-components=1",
        f"  python3 -m venv {APP_DIR}/.venv",
        f"  {APP_DIR}/.venv/bin/pip install --quiet -r {APP_DIR}/requirements.txt",
        f"  chown -R imageshare {APP_DIR}",
        "fi",
        "cat > /usr/local/bin/imageshare-config <<'CONFIG'",
        config_script(cfg).rstrip(),
        "CONFIG",
        "chmod 755 /usr/local/bin/imageshare-config",
    ]
    for name, text in units.items():
        parts += [f"cat > /etc/systemd/system/{name} <<'UNIT'", text.rstrip(), "UNIT"]
    parts += ["systemctl daemon-reload", f"systemctl enable --now {' '.join(units)}"]
    script = "\n".join(parts) + "\n"
    return base64.b64encode(script.encode()).decode() if encoded else script
