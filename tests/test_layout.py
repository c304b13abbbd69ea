"""The layout's promise: nothing a production process loads imports the local launcher or test tools."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What production must never load: the local launcher, the local AWS, the benchmarks, the tests.
FORBIDDEN = ("ops.devstack", "moto", "bench", "tests", "pytest")

LOADERS = {
    # gunicorn imports the WSGI module; every URL's view is imported once the resolver is filled.
    "web": (
        "import imageshare.wsgi\n"
        "from django.urls import get_resolver\n"
        "get_resolver().url_patterns\n"
        "from django.test import Client\n"
        "Client().get('/healthz')\n"
    ),
    # `celery -A imageshare worker` imports the app, its configured modules and its consumer class.
    "worker": (
        "from celery.utils.imports import symbol_by_name\n"
        "from imageshare.celery import app\n"
        "app.loader.import_default_modules()\n"
        "symbol_by_name(app.conf.worker_consumer)\n"
        "symbol_by_name(app.events.dispatcher_cls)\n"
    ),
    # The periodic duties (`manage.py duties`), as the web nodes' service starts them.
    "duties": ("import django\ndjango.setup()\nimport imageshare.console.management.commands.duties\n"),
}


@pytest.mark.parametrize("role", sorted(LOADERS))
def test_a_production_process_never_loads_the_launcher(role, tmp_path):
    code = (
        "import json, os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'imageshare.settings')\n"
        + LOADERS[role]
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "IMAGESHARE_VAR_DIR": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "imageshare" in loaded  # the probe did load the app
    leaked = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert leaked == []
