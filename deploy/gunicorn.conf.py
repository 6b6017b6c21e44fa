"""gunicorn configuration, from the environment (same file for the demo and production)."""

from __future__ import annotations

import gc
import multiprocessing
import os
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(min(4, multiprocessing.cpu_count() * 2))))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then (a guard against slow leaks); rarely, because a restart costs the
# requests queued behind it their latency.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "50000"))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker: Any) -> None:
    """Before the worker takes its first request: import every view (the URLconf), so the first
    participants after a start or a worker recycle do not wait for it (about 1.8 s per worker,
    most of it the results page's scipy and matplotlib; docs/benchmarks.md, participant page).
    Then freeze what loading allocated, so that the worker's garbage collections (which hold the
    GIL and stall every thread of the worker) scan only what requests allocate (the response
    PUT's p99). GUNICORN_GC_FREEZE=0 turns the freezing off."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports the URLconf and with it every view)
    if os.environ.get("GUNICORN_GC_FREEZE", "1") == "1":
        gc.collect()
        gc.freeze()
