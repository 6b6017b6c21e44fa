"""Docker does not run here, so the deploy files are checked for consistency instead: every
Dockerfile, path, command and environment variable that docker-compose.yml and the Dockerfiles
name exists in the repository and in settings."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SETTINGS_SOURCES = (ROOT / "backend/settings.py").read_text() + (
    ROOT / "deploy/gunicorn.conf.py"
).read_text()


def built_services() -> dict[str, Any]:
    return {name: spec for name, spec in SERVICES.items() if "build" in spec}


def test_compose_wires_the_designed_services() -> None:
    assert set(SERVICES) == {"postgres", "redis", "web", "nginx", "worker-gpu", "worker-cpu"}
    gpu = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert gpu["count"] == "all"  # one pool process per visible GPU
    gpu_script = SERVICES["worker-gpu"]["command"][-1]
    assert queue_of((ROOT / gpu_script).read_text().split()) == "gpu"
    assert queue_of(SERVICES["worker-cpu"]["command"]) == "default"


def queue_of(command: list[str]) -> str:
    return command[command.index("-Q") + 1]


def test_every_dockerfile_and_the_paths_it_copies_exist() -> None:
    for name, spec in built_services().items():
        dockerfile = ROOT / spec["build"]["context"] / spec["build"]["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        for source in copied_paths(dockerfile):
            assert (ROOT / source).exists(), f"{dockerfile.name} copies missing {source}"


def copied_paths(dockerfile: Path) -> list[str]:
    paths = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            paths += line.split()[1:-1]
    return paths


def test_every_mounted_file_exists() -> None:
    for spec in SERVICES.values():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{source} is mounted but missing"
        for env_file in [spec["env_file"]] if "env_file" in spec else []:
            assert (ROOT / "deploy/env.example").exists(), f"{env_file} has no example"


def test_commands_name_modules_and_files_that_exist() -> None:
    for spec in SERVICES.values():
        command = " ".join(spec.get("command", []))
        if "gunicorn" in command:
            assert "backend.wsgi" in command and (ROOT / "backend/wsgi.py").exists()
            assert (ROOT / "deploy/gunicorn.conf.py").exists()
        if "celery" in command:
            assert "-A backend" in command and (ROOT / "backend/celery.py").exists()
    nginx = (ROOT / "deploy/nginx.conf").read_text()
    assert "server web:8000" in nginx


def test_every_variable_in_the_env_example_is_read_by_settings() -> None:
    names = re.findall(r"^([A-Z_]+)=", (ROOT / "deploy/env.example").read_text(), re.M)
    assert names, "deploy/env.example names no variables"
    for name in names:
        assert f'"{name}"' in SETTINGS_SOURCES, f"{name} is in env.example but nothing reads it"


def test_every_variable_settings_read_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    read = set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z_]+)"', SETTINGS_SOURCES))
    read |= set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', SETTINGS_SOURCES))
    missing = sorted(name for name in read if f"`{name}`" not in readme)
    assert not missing, f"README's variable table lacks {missing}"


def test_gunicorn_freezes_each_workers_loaded_heap_unless_told_not_to(monkeypatch: Any) -> None:
    import gc
    import runpy

    config = runpy.run_path(str(ROOT / "deploy/gunicorn.conf.py"))
    gc.unfreeze()
    try:
        monkeypatch.setenv("GUNICORN_GC_FREEZE", "0")
        config["post_worker_init"](None)
        assert gc.get_freeze_count() == 0
        monkeypatch.setenv("GUNICORN_GC_FREEZE", "1")
        config["post_worker_init"](None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_gunicorn_worker_imports_every_view_before_its_first_request() -> None:
    """As gunicorn does: load the WSGI app, then post_worker_init; the results page's views
    (scipy, matplotlib) are imported then, not during a participant's first request."""
    import subprocess
    import sys

    script = f"""
import runpy, sys
from django.core.wsgi import get_wsgi_application
get_wsgi_application()
assert "backend.analysis.views" not in sys.modules, "loaded before the warm-up: test void"
runpy.run_path({str(ROOT / "deploy/gunicorn.conf.py")!r})["post_worker_init"](None)
print(" ".join(name for name in ("backend.analysis.views", "backend.participation.api",
                                 "matplotlib.pyplot") if name in sys.modules))
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backend.settings", "GUNICORN_GC_FREEZE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "backend.analysis.views", "backend.participation.api", "matplotlib.pyplot"
    ]  # fmt: skip


def test_every_python_image_runs_the_pinned_python_and_no_second_torch() -> None:
    """The images run the Python the project pins, and none starts from an image that brings its
    own torch (a PyTorch base image's torch would differ from the pinned one that
    `pip install .` then installs over it)."""
    for name, spec in built_services().items():
        dockerfile = ROOT / spec["build"]["context"] / spec["build"]["dockerfile"]
        bases = [
            line.split()[1]
            for line in dockerfile.read_text().splitlines()
            if line.startswith("FROM ")
        ]
        final = bases[-1]
        assert final.startswith("python:3.11"), f"{name}: final stage {final} is not Python 3.11"
        assert not any(base.startswith("pytorch/") for base in bases), f"{name}: {bases}"
