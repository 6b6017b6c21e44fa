"""Health endpoints and the Celery round trip through the real Redis and a real worker."""

from __future__ import annotations

import os
import platform
from typing import Any

import pytest
from django.test import Client

from worker.tasks import ping

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_reports_the_database(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"]["ok"] is True


def test_readyz_is_unavailable_while_no_worker_runs(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["workers"]["ok"] is False


class TestWithAWorker:
    def test_a_task_makes_the_round_trip_through_redis(self, celery_worker: Any) -> None:
        result = ping.delay({"hello": "worker"}).get(timeout=60)
        assert result["payload"] == {"hello": "worker"}
        assert result["pid"] != os.getpid()
        # worker processes keep freed tensor memory for reuse from their start (worker.memory)
        assert result["keeps_freed_memory"] is (platform.libc_ver()[0] == "glibc")

    def test_readyz_is_ready_with_a_live_worker(self, celery_worker: Any, client: Client) -> None:
        response = client.get("/readyz")
        assert response.status_code == 200, response.json()
        assert response.json()["checks"]["workers"]["ok"] is True
