"""The one Celery app. Configured from the top-level ``celeryconfig.py``."""

import os
from pathlib import Path

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageshare.settings")

# DjangoTask gives every task delay_on_commit(): enqueue after the DB commit.
app = Celery("imageshare", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("celeryconfig")
# Best-effort monitoring: a down events channel never blocks the work.
app.events.dispatcher_cls = "ops.worker.events:BestEffortEventDispatcher"


@worker_ready.connect
def _announce_ready(**kwargs):
    """Tell the local scaling hook this worker consumes now (it counts as starting until then)."""
    from django.conf import settings

    if settings.WORKER_READY_FILE:
        Path(settings.WORKER_READY_FILE).touch()
