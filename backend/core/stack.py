"""Run the PsyLens stack on one machine: `python -m backend.core.stack demo|run|up|down`.

`demo` starts what the environment does not provide (embedded PostgreSQL and Redis when
DATABASE_URL / REDIS_URL are unset), migrates, ensures an admin account and the demo data, then
runs a real Celery worker and gunicorn until Ctrl-C, which stops everything it started. A child
that stops (a killed worker) is started again and the rest keep running (`Supervisor`).
`run -- CMD` does the same set-up of servers for one command (the test suite) and stops them after.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from backend.core import local_services as services

ROOT = services.ROOT
LOG_DIR = services.LOCAL_DIR / "logs"


@contextmanager
def servers(keep_running: bool = False) -> Iterator[dict[str, str]]:
    """Yield an environment with DATABASE_URL and REDIS_URL; stop the servers this call started."""
    env = dict(os.environ)
    stops: list[Callable[[], None]] = []
    state = services.read_state()
    if not env.get("DATABASE_URL"):
        if not services.postgres_running():
            stops.append(services.stop_postgres)
        env["DATABASE_URL"] = state.database_url = services.start_postgres()
    if not env.get("REDIS_URL"):
        if not services.redis_running():
            stops.append(services.stop_redis)
        env["REDIS_URL"] = state.redis_url = services.start_redis()
    services.write_state(state)
    try:
        yield env
    finally:
        if not keep_running:
            for stop in stops:
                stop()
            if stops:
                services.write_state(services.EmbeddedState())


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True)


def start_process(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a long-running child in its own session so Ctrl-C reaches us, not it."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / f"{name}.log").open("ab")
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)


def stop_processes(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)


def worker_command() -> list[str]:
    """One Celery worker on both queues with WORKER_CONCURRENCY processes (default 1): each
    process takes one shard at a time, so N processes run N shards of a job side by side."""
    celery = str(Path(sys.executable).parent / "celery")
    concurrency = os.environ.get("WORKER_CONCURRENCY", "1")
    if not concurrency.isdigit() or int(concurrency) < 1:
        raise services.LocalServiceError(f"WORKER_CONCURRENCY={concurrency!r}: give a number ≥ 1")
    queues = ["-Q", "gpu,default", "--concurrency", concurrency, "--loglevel", "INFO"]
    return [celery, "-A", "backend", "worker", *queues, "--hostname", "demo@%h"]


def web_command(port: int) -> list[str]:
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    config = str(ROOT / "deploy" / "gunicorn.conf.py")
    return [gunicorn, "backend.wsgi", "-c", config, "--bind", f"127.0.0.1:{port}"]


def wait_until_serving(port: int, children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while not services.port_is_open(port):
        if time.monotonic() > deadline or any(c.poll() is not None for c in children):
            raise services.LocalServiceError(f"the web server did not start; see {LOG_DIR}")
        time.sleep(0.2)


class CrashLoop(services.LocalServiceError):
    """A child that stops again and again: restarting it no longer helps."""


class Supervisor:
    """Keeps named children running: one that stops is logged and started again, the others are
    left alone (one killed Celery worker must not take the participant site down). A child that
    stopped MAX_RESTARTS times within RESTART_WINDOW seconds raises CrashLoop."""

    MAX_RESTARTS = 5
    RESTART_WINDOW = 60.0

    def __init__(self, commands: dict[str, list[str]], env: dict[str, str]) -> None:
        self.commands, self.env = commands, env
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, list[float]] = {name: [] for name in commands}

    def start(self) -> None:
        for name, command in self.commands.items():
            self.children[name] = start_process(name, command, self.env)

    def processes(self) -> list[subprocess.Popen[bytes]]:
        return list(self.children.values())

    def check(self) -> list[str]:
        """Start again every child that stopped; returns their names."""
        restarted = []
        for name, child in self.children.items():
            code = child.poll()
            if code is None:
                continue
            now = time.monotonic()
            recent = [t for t in self.restarts[name] if now - t < self.RESTART_WINDOW] + [now]
            self.restarts[name] = recent
            if len(recent) > self.MAX_RESTARTS:
                raise CrashLoop(f"{name} stopped {len(recent)} times in a minute; see {LOG_DIR}")
            print(f"{name} stopped (exit code {code}); starting it again. Log: "
                  f"{LOG_DIR / (name + '.log')}", file=sys.stderr, flush=True)  # fmt: skip
            self.children[name] = start_process(name, self.commands[name], self.env)
            restarted.append(name)
        return restarted

    def run(self, poll_seconds: float = 0.5) -> None:
        """Until Ctrl-C (or CrashLoop)."""
        try:
            while True:
                self.check()
                time.sleep(poll_seconds)
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        stop_processes(self.processes())


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def demo(port: int) -> int:
    started = time.monotonic()
    # Ctrl-C, or SIGTERM/SIGINT from a supervisor, at any moment: stop what was started.
    # (SIGINT is set explicitly: a shell starts background jobs with it ignored.)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with servers() as env:
        env.setdefault("PSYLENS_BASE_URL", f"http://127.0.0.1:{port}")
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "ensure_admin")
        supervisor = Supervisor({"worker": worker_command(), "web": web_command(port)}, env)
        supervisor.start()
        try:
            wait_until_serving(port, supervisor.processes())
            print(f"\nPsyLens is serving after {time.monotonic() - started:.1f} s.")
            print(f"  Admin:  http://127.0.0.1:{port}/admin/")
            print(f"  Health: http://127.0.0.1:{port}/readyz")
            print(f"  Logs:   {LOG_DIR}\n", flush=True)
            if os.environ.get("PSYLENS_DEMO_SEED", "true").lower() != "false":
                manage(env, "seed_demo")
            print(f"Demo ready after {time.monotonic() - started:.1f} s. Press Ctrl-C to stop.\n")
            sys.stdout.flush()
            supervisor.run()
        except KeyboardInterrupt:
            pass
        finally:
            print("Stopping…", flush=True)
            supervisor.stop()
    return 0


def run(command: list[str]) -> int:
    with servers() as env:
        return subprocess.run(command, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.core.stack")
    sub = parser.add_subparsers(dest="action", required=True)
    demo_parser = sub.add_parser("demo", help="run the whole stack with the demo study")
    demo_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    run_parser = sub.add_parser("run", help="run a command with the servers up")
    run_parser.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("up", help="start the embedded servers and leave them running")
    sub.add_parser("down", help="stop the embedded servers")
    args = parser.parse_args(argv)
    try:
        return dispatch(args)
    except services.LocalServiceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # interrupted before the children started: servers are stopped
        return 130


def dispatch(args: argparse.Namespace) -> int:
    if args.action == "demo":
        return demo(args.port)
    if args.action == "run":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        return run(command)
    if args.action == "up":
        with servers(keep_running=True) as env:
            print(f"DATABASE_URL={env['DATABASE_URL']}\nREDIS_URL={env['REDIS_URL']}")
        return 0
    services.stop_postgres()
    services.stop_redis()
    services.write_state(services.EmbeddedState())
    return 0


if __name__ == "__main__":
    sys.exit(main())
