"""The Celery app of the interop driver: the Redis transport as broker and result backend."""

import os
import time

import redis

from celery import Celery

URL = os.environ.get("FWTEST_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("celeryapp", broker=URL, backend=URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    # A message a worker took but never acknowledged is given to another worker after this
    # long (the transport's promise for a worker that died mid-task).
    broker_transport_options={
        "visibility_timeout": 3,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    result_expires=3600,
)


@app.task
def square(x):
    return x * x


@app.task(bind=True, max_retries=3, default_retry_delay=0.2)
def flaky(self, x):
    """Fails on its first attempt; Celery's retry runs it again. Attempts are counted in the
    broker itself, so the retry is observable end to end."""
    attempt = redis.Redis.from_url(URL).incr(f"fwtest:attempts:{x}")
    if attempt == 1:
        raise self.retry(exc=RuntimeError(f"first attempt of {x} fails on purpose"))
    return -x


@app.task
def slow(x, seconds):
    time.sleep(seconds)
    return x
