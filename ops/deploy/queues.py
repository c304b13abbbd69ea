"""The work queues and their dead-letter queue (made by clients.ensure_queues, as the local stack makes
them), and the alarms that say work is failing or piling up.

Two work queues, same attributes, one dead-letter queue: new uploads, and the
extra sizes asked for afterwards (so one account's flood of extra sizes never
waits in front of anyone's upload); the workers consume both.
"""

from __future__ import annotations

import json

from ops.deploy.clients import ensure_queues, every
from ops.deploy.config import Deployment

LONG_POLL_SECONDS = 20
OLDEST_MESSAGE_ALARM_SECONDS = 600


def _wanted_attributes(d: Deployment) -> dict[str, str]:
    """The work queues' attributes deploy compares (ensure_queues sets them, with the redrive target)."""
    return {
        "VisibilityTimeout": str(d.cfg.visibility_timeout),
        "ReceiveMessageWaitTimeSeconds": str(LONG_POLL_SECONDS),
        "maxReceiveCount": str(d.cfg.max_receive_count),
    }


def _queue_action(d: Deployment, name: str, url: str | None) -> str:
    """create, ok, or update when a work queue's attributes differ (e.g. an older visibility timeout)."""
    if url is None:
        return "create"
    if name == d.cfg.dlq:
        return "ok"
    attrs = d.c("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    current = {**attrs, **json.loads(attrs.get("RedrivePolicy", "{}"))}
    same = all(str(current.get(k)) == v for k, v in _wanted_attributes(d).items())
    return "ok" if same else "update"


def ensure_queues_and_alarms(d: Deployment) -> None:
    sqs = d.c("sqs")
    urls = {q.rsplit("/", 1)[-1]: q for q in every(sqs, "list_queues", "QueueUrls[]", QueueNamePrefix=d.cfg.stack)}
    for name in (d.cfg.dlq, d.cfg.queue, d.cfg.extras_queue, d.cfg.analysis_queue):
        detail = "" if name == d.cfg.dlq else f"visibility timeout {d.cfg.visibility_timeout} s"
        d.record("sqs:queue", name, _queue_action(d, name, urls.get(name)), detail)
    if not d.dry_run:
        options = dict(
            visibility_timeout=d.cfg.visibility_timeout,
            max_receive_count=d.cfg.max_receive_count,
            wait_seconds=LONG_POLL_SECONDS,
        )
        url, dlq_url = ensure_queues(sqs, d.cfg.queue, d.cfg.dlq, **options)
        extras_url, _ = ensure_queues(sqs, d.cfg.extras_queue, d.cfg.dlq, **options)
        analysis_url, _ = ensure_queues(sqs, d.cfg.analysis_queue, d.cfg.dlq, **options)
    else:  # plan and outputs: the URLs of the queues that exist
        url, extras_url, analysis_url, dlq_url = (urls.get(name, "") for name in d.cfg.queues)
    d.outputs.update(
        queue_url=url, extras_queue_url=extras_url, analysis_queue_url=analysis_url, dead_letter_queue_url=dlq_url
    )
    _ensure_alarms(d)


def alarm_specs(d: Deployment) -> dict[str, dict]:
    """Each alarm by its name on Config: the DLQ has messages; a work queue's oldest message waits too long."""

    def oldest(queue: str, what: str) -> dict:
        return dict(
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue}],
            Threshold=OLDEST_MESSAGE_ALARM_SECONDS,
            AlarmDescription=f"{what} has waited over 10 minutes: workers are not keeping up.",
        )

    return {
        d.cfg.dlq_alarm: dict(
            MetricName="ApproximateNumberOfMessagesVisible",
            Dimensions=[{"Name": "QueueName", "Value": d.cfg.dlq}],
            Threshold=0,
            AlarmDescription="Messages failed processing max-receive times and wait in the dead-letter queue.",
        ),
        d.cfg.age_alarm: oldest(d.cfg.queue, "An upload"),
        d.cfg.extras_age_alarm: oldest(d.cfg.extras_queue, "An extra size"),
    }


def _stack_alarms(cw, d: Deployment) -> list[dict]:
    return every(cw, "describe_alarms", "MetricAlarms[]", AlarmNames=list(d.cfg.alarms))


def _ensure_alarms(d: Deployment) -> None:
    cw = d.c("cloudwatch")
    existing = {a["AlarmName"]: a for a in _stack_alarms(cw, d)}
    for name, spec in alarm_specs(d).items():
        current = existing.get(name)
        same = current and all(current.get(k) == spec[k] for k in ("Threshold", "MetricName", "Dimensions"))
        if d.record("cloudwatch:alarm", name, "ok" if same else ("update" if current else "create")):
            cw.put_metric_alarm(
                AlarmName=name,
                Namespace="AWS/SQS",
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
                **spec,
            )


def remove_queues_and_alarms(d: Deployment) -> list[str]:
    """The stack's alarms and queues, each by its exact name (never by prefix: another stack's may share it)."""
    sqs, cw = d.c("sqs"), d.c("cloudwatch")
    removed = []
    alarms = [a["AlarmName"] for a in _stack_alarms(cw, d)]
    if alarms:
        cw.delete_alarms(AlarmNames=alarms)
        removed += [f"cloudwatch:alarm {a}" for a in alarms]
    for name in d.cfg.queues:
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            continue
        sqs.delete_queue(QueueUrl=url)
        removed.append(f"sqs:queue {name}")
    return removed
