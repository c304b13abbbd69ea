"""The Celery configuration, loaded by the one app in ``imageshare/celery.py``.

Values come from ``imageshare.settings`` (which reads the environment), so the
web tier, the workers and the local stack agree on queue names and limits.
"""

from imageshare import settings as _s

_queue = _s.SQS_QUEUE_NAME

if _s.AWS_ENDPOINT_URL:
    # Local stack: moto. kombu takes the endpoint from the broker URL's host.
    from urllib.parse import urlsplit

    _endpoint = urlsplit(_s.AWS_ENDPOINT_URL)
    broker_url = f"sqs://{_s.AWS_S3_ACCESS_KEY_ID}:{_s.AWS_S3_SECRET_ACCESS_KEY}@{_endpoint.netloc}"
    _secure = _endpoint.scheme == "https"
else:
    # Real AWS: credentials from the instance role / environment chain.
    broker_url = "sqs://"
    _secure = True

broker_transport_options = {
    "region": _s.AWS_REGION,
    "is_secure": _secure,
    # Used by kombu only for queues it creates (none: predefined queues); the
    # queue's own VisibilityTimeout, set by ops/, is the one SQS applies.
    "visibility_timeout": _s.SQS_VISIBILITY_TIMEOUT,
    # Long polling: fewer empty receives (cost) and quicker pick-up.
    "wait_time_seconds": 10,
    "polling_interval": 0.05,
}
if _s.SQS_QUEUE_URL:
    # Predefined queues: kombu never creates or lists queues, so the DLQ and
    # redrive policy set up by ops/ are the ones in use, and IAM can stay narrow.
    broker_transport_options["predefined_queues"] = {_queue: {"url": _s.SQS_QUEUE_URL}}
    if _s.SQS_EXTRAS_QUEUE_URL:
        broker_transport_options["predefined_queues"][_s.SQS_EXTRAS_QUEUE_NAME] = {"url": _s.SQS_EXTRAS_QUEUE_URL}
    if _s.SQS_ANALYSIS_QUEUE_URL:
        broker_transport_options["predefined_queues"][_s.SQS_ANALYSIS_QUEUE_NAME] = {"url": _s.SQS_ANALYSIS_QUEUE_URL}
broker_connection_retry_on_startup = True

task_default_queue = _queue
task_routes = {"thumbnails.tasks.*": {"queue": _queue}, "thumbnails.analysis.*": {"queue": _s.SQS_ANALYSIS_QUEUE_NAME}}
imports = ("thumbnails.tasks", "thumbnails.analysis", "ops.worker.protection")

task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"
task_ignore_result = True  # status lives in the database, not a result backend

# SQS delivers at least once: acknowledge after the work is done, and give the
# message back if the worker process dies mid-task. Tasks are idempotent.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = _s.WORKER_PREFETCH_MULTIPLIER  # docs/pipeline.md
task_time_limit = _s.TASK_TIME_LIMIT
task_soft_time_limit = max(1, _s.TASK_TIME_LIMIT - 10)
# The queue hides a received message for a short time only (a killed worker's
# messages return within it); the worker's Consumer extends the messages it
# holds while it holds them (ops/worker/heartbeat.py). A message is extended
# for at most max_hold: longer than any real hold (a wait for a pool slot
# behind the prefetched messages, a retry countdown of up to a minute, the
# run), so a wedged worker cannot hide one for ever.
imageshare_visibility_heartbeat = {
    "endpoint_url": _s.AWS_ENDPOINT_URL,
    "region": _s.AWS_REGION,
    "visibility_timeout": _s.SQS_VISIBILITY_TIMEOUT,
    "interval": _s.SQS_VISIBILITY_HEARTBEAT_SECONDS,
    # A prefetched message may wait for every message ahead of it in its pool process: one run each.
    "max_hold": (_s.WORKER_PREFETCH_MULTIPLIER + 1) * _s.TASK_TIME_LIMIT + 120,
}

# SQS has no broadcast, so remote control (pidbox) cannot work on it; with
# predefined queues kombu would refuse the pidbox queue anyway.
worker_enable_remote_control = False

# Monitoring events travel on a separate channel (Redis), never on SQS; see
# ops/worker/events.py. Without CELERY_EVENTS_URL the workers send none.
imageshare_events_url = _s.CELERY_EVENTS_URL or None
worker_send_task_events = bool(imageshare_events_url)
worker_consumer = "ops.worker.consumer:WorkerConsumer"
event_queue_expires = 60  # a stopped Flower leaves no queue behind for long
event_queue_ttl = 10
worker_max_tasks_per_child = 500  # bound memory growth from image buffers
