"""The demo's supervisor: a child that stops (SIGKILL of the Celery worker) is logged and started
again while the others keep running; a child that keeps dying stops the stack with a reason."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from backend.core import stack

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


@pytest.fixture
def supervisor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(stack, "LOG_DIR", tmp_path)
    made: list[stack.Supervisor] = []

    def make(commands: dict[str, list[str]]) -> stack.Supervisor:
        made.append(stack.Supervisor(commands, dict(os.environ)))
        made[-1].start()
        return made[-1]

    yield make
    for one in made:
        one.stop()


def wait_for_exit(process: Any) -> None:
    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_killed_child_is_started_again_and_the_others_keep_running(
    supervisor: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    running = supervisor({"worker": SLEEPER, "web": SLEEPER})
    worker, web = running.children["worker"], running.children["web"]
    assert running.check() == []
    os.killpg(worker.pid, signal.SIGKILL)
    wait_for_exit(worker)
    assert running.check() == ["worker"]
    assert running.children["worker"].pid != worker.pid
    assert running.children["worker"].poll() is None
    assert running.children["web"] is web and web.poll() is None
    assert "worker stopped (exit code -9); starting it again" in capsys.readouterr().err


def test_a_child_that_keeps_dying_stops_the_stack_with_a_reason(supervisor: Any) -> None:
    running = supervisor({"worker": CRASHER, "web": SLEEPER})
    with pytest.raises(stack.CrashLoop, match="worker stopped 6 times"):
        for _ in range(20):
            wait_for_exit(running.children["worker"])
            running.check()
    assert running.children["web"].poll() is None
