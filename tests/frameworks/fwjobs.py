"""Job functions for the framework interop drivers (imported by the RQ and Celery workers)."""

import time


def square(x):
    return x * x


def flaky(x):
    """Fails on its first attempt, then succeeds: exercises the framework's retries.

    The attempt count lives in the broker itself, so the retry is observable end to end.
    """
    from rq import get_current_job

    job = get_current_job()
    attempt = job.connection.incr(f"fwtest:attempts:{x}")
    if attempt == 1:
        raise RuntimeError(f"first attempt of {x} fails on purpose")
    return -x


def slow(x, seconds):
    time.sleep(seconds)
    return x
