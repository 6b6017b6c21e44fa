"""Settings come from the environment and refuse unsafe production values with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAFE_KEY = "x" * 40


def import_settings(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    base.update({"DATABASE_URL": "postgres://u@127.0.0.1:5432/db", "REDIS_URL": "redis://h/0"})
    base.update(env)
    code = "import backend.settings as s; print(s.DEBUG, s.ALLOWED_HOSTS)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True
    )


def test_production_refuses_the_default_secret_key() -> None:
    result = import_settings(PSYLENS_ENV="production", ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "set SECRET_KEY" in result.stderr


def test_production_refuses_debug_on() -> None:
    env = {"PSYLENS_ENV": "production", "SECRET_KEY": SAFE_KEY, "ALLOWED_HOSTS": "example.org"}
    result = import_settings(DEBUG="true", **env)
    assert result.returncode != 0
    assert "DEBUG on" in result.stderr


def test_production_starts_with_safe_values() -> None:
    env = {"PSYLENS_ENV": "production", "SECRET_KEY": SAFE_KEY, "ALLOWED_HOSTS": "example.org"}
    result = import_settings(**env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False ['example.org']"


def test_a_malformed_boolean_is_named_in_the_error() -> None:
    result = import_settings(DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_a_database_url_that_is_not_postgres_is_refused() -> None:
    result = import_settings(DATABASE_URL="sqlite:///x.db")
    assert result.returncode != 0
    assert "must point at PostgreSQL" in result.stderr


def test_a_frame_ancestor_that_is_not_an_origin_is_refused() -> None:
    result = import_settings(PARTICIPANT_FRAME_ANCESTORS="https://www.mturk.com,*")
    assert result.returncode != 0
    assert "PARTICIPANT_FRAME_ANCESTORS: '*' is not an origin" in result.stderr
