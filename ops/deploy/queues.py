"""The work queue and its dead-letter queue (made by clients.ensure_queues, as the local stack makes
them), and the two alarms that say work is failing or piling up."""

from __future__ import annotations

from ops.deploy.clients import ensure_queues, every
from ops.deploy.config import Deployment


def ensure_queues_and_alarms(d: Deployment) -> None:
    sqs, cw = d.c("sqs"), d.c("cloudwatch")
    names = {q.rsplit("/", 1)[-1] for q in every(sqs, "list_queues", "QueueUrls[]", QueueNamePrefix=d.cfg.stack)}
    for name in (d.cfg.dlq, d.cfg.queue):
        d.record("sqs:queue", name, "ok" if name in names else "create")
    if not d.dry_run:
        url, dlq_url = ensure_queues(
            sqs,
            d.cfg.queue,
            d.cfg.dlq,
            visibility_timeout=d.cfg.visibility_timeout,
            max_receive_count=d.cfg.max_receive_count,
            wait_seconds=20,
        )
        d.outputs.update(queue_url=url, dead_letter_queue_url=dlq_url)
    alarms = {
        d.cfg.dlq_alarm: dict(
            MetricName="ApproximateNumberOfMessagesVisible",
            Dimensions=[{"Name": "QueueName", "Value": d.cfg.dlq}],
            Threshold=0,
            AlarmDescription="Messages failed processing max-receive times and wait in the dead-letter queue.",
        ),
        d.cfg.age_alarm: dict(
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": d.cfg.queue}],
            Threshold=600,
            AlarmDescription="An upload has waited over 10 minutes: workers are not keeping up.",
        ),
    }
    existing = {a["AlarmName"]: a for a in every(cw, "describe_alarms", "MetricAlarms[]", AlarmNamePrefix=d.cfg.stack)}
    for name, spec in alarms.items():
        current = existing.get(name)
        same = current and current["Threshold"] == spec["Threshold"] and current["MetricName"] == spec["MetricName"]
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
    sqs, cw = d.c("sqs"), d.c("cloudwatch")
    removed = []
    alarms = [a["AlarmName"] for a in every(cw, "describe_alarms", "MetricAlarms[]", AlarmNamePrefix=d.cfg.stack)]
    if alarms:
        cw.delete_alarms(AlarmNames=alarms)
        removed += [f"cloudwatch:alarm {a}" for a in alarms]
    for url in every(sqs, "list_queues", "QueueUrls[]", QueueNamePrefix=d.cfg.queue):
        sqs.delete_queue(QueueUrl=url)
        removed.append(f"sqs:queue {url.rsplit('/', 1)[-1]}")
    return removed
