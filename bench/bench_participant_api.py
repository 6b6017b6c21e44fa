"""Load benchmark of the response PUT under gunicorn + Postgres, beside a minimal Django view.

    .venv/bin/python -m backend.core.stack run -- .venv/bin/python bench/bench_participant_api.py

Sets up a live study and 1,000 sessions in the database the stack points at, starts gunicorn
(deploy/gunicorn.conf.py, PSYLENS_ENV=production, DEBUG off) on a loopback port with this module
as its URLconf (the production routes plus `/bench/minimal`: a plain Django view doing one
INSERT), then measures, in the same run and against the same server:

1. open loop: 1,000 simulated participants, each answering every 2 s (PUT …/responses/<i>),
   then the same pattern against the minimal view: throughput, p50/p99, errors;
2. saturation: closed-loop clients sending back to back: the most each endpoint serves.

Each phase alternates the two endpoints in short rounds (PUT, minimal, PUT, minimal, …) and
adds the rounds up, so that a burst of other work on a shared machine falls on both alike.
The load generator measures with its garbage collector off (its pauses would be charged to the
requests in flight), and each participant's connection is opened just before its first answer,
timed apart.

Only loopback addresses; every loop is bounded by a duration and a request count. Afterwards
it removes what it stored (the bench studies, their sessions and answers, the minimal view's
table), unless `--keep`.
Not a test: it prints a table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import URLPattern, URLResolver, include, path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

MINIMAL_TABLE = "bench_minimal_insert"


# --- the URLconf gunicorn serves (this module) ------------------------------------------------


@csrf_exempt
def minimal_insert(request: HttpRequest) -> HttpResponse:
    """The floor: parse the JSON body, one INSERT, a small JSON answer."""
    body = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {MINIMAL_TABLE} (client, payload) VALUES (%s, %s)",
            [body.get("client", 0), json.dumps(body)],
        )
    return JsonResponse({"ok": True}, status=201)


urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/minimal", minimal_insert),
    path("", include("backend.urls")),
]
handler404 = "backend.core.errors.handler404"
handler400 = "backend.core.errors.handler400"


def application(environ: dict[str, Any], start_response: Any) -> Any:
    """gunicorn's entry point: the production WSGI app with this module as URLconf."""
    from backend.wsgi import application as wsgi

    settings.ROOT_URLCONF = __name__
    return wsgi(environ, start_response)


# --- set-up -----------------------------------------------------------------------------------


def png(seed: int) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 64), (seed * 37 % 256, seed * 91 % 256, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def tear_down() -> None:
    """Remove every bench study and what its sessions stored, the bench networks and the
    minimal view's table: the database the stack points at (the demo's, under `make bench`)
    is left as it was, but for the few images (content-addressed, shared)."""
    from django.contrib.auth.models import User

    from backend.participation.models import (
        Participant,
        PracticeResponse,
        Response,
        Session,
        SessionEvent,
    )
    from backend.stimuli.models import Layer, Network, UnitSet
    from backend.studies.models import Study, Trial

    studies = Study.objects.filter(slug__startswith="bench-", owner__username="bench-owner")
    sessions = Session.objects.filter(study__in=studies)
    participants = list(sessions.values_list("participant_id", flat=True).distinct())
    for model in (Response, PracticeResponse, SessionEvent):
        model.objects.filter(session__in=sessions).delete()
    sessions.delete()
    Participant.objects.filter(pk__in=participants, sessions__isnull=True).delete()
    Trial.objects.filter(task_list__study__in=studies).delete()  # in bulk, before the studies
    studies.delete()
    networks = Network.objects.filter(
        name__startswith="bench-", source="builtin:efficientnet_lite0"
    )
    UnitSet.objects.filter(layer__network__in=networks).delete()
    Layer.objects.filter(network__in=networks).delete()
    networks.delete()
    User.objects.filter(username="bench-owner", owned_studies__isnull=True).delete()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {MINIMAL_TABLE}")


def set_up(participants: int, saturation_clients: int, n_trials: int) -> dict[str, list[str]]:
    """A live study, one session per simulated participant; returns the tokens."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from backend.participation.services import do_start_session
    from backend.stimuli.models import Layer, Network, Unit, UnitSet
    from backend.stimuli.services import store_image
    from backend.studies.models import Condition, Study, TaskList, Trial

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {MINIMAL_TABLE} (id bigserial PRIMARY KEY, "
            "client integer, payload jsonb, created_at timestamptz DEFAULT now())"
        )
    tag = secrets.token_hex(4)
    owner, _ = User.objects.get_or_create(username="bench-owner")
    study = Study.objects.create(
        slug=f"bench-{tag}", title="bench", state="live", owner=owner, platform="prolific"
    )
    condition = Condition.objects.create(study=study, name="natural", n_references=2)
    network = Network.objects.create(name=f"bench-{tag}", source="builtin:efficientnet_lite0")
    layer = Layer.objects.create(network=network, name="blocks.6", shape=[320, 7, 7])
    unit_set = UnitSet.objects.create(name=f"bench-{tag}", layer=layer, kind="channels")
    unit = Unit.objects.create(unit_set=unit_set, index=0)
    images = [store_image(png(seed)).pk for seed in range(6)]
    rng = random.Random(0)
    for list_index in range(4):
        task_list = TaskList.objects.create(study=study, index=list_index, seed=list_index)
        Trial.objects.bulk_create(
            Trial(
                task_list=task_list,
                index=index,
                kind="reference_choice",
                unit=unit,
                condition=condition,
                references_min=images[:2],
                references_max=images[2:4],
                queries=images[4:6],
                correct_query=rng.randrange(2),
            )
            for index in range(n_trials)
        )
    tokens: dict[str, list[str]] = {"open": [], "saturation": [], "warm": []}
    groups = (("open", participants), ("saturation", saturation_clients), ("warm", 4))
    for group, count in groups:
        for n in range(count):
            platform = {"PROLIFIC_PID": f"{group}{n}x{tag}"}
            session, _ = do_start_session(study, platform, {}, None)
            tokens[group].append(session.token)
    return tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PSYLENS_ENV": "production",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SERVE_MEDIA": "false",
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_ACCESS_LOG": "/dev/null",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}",
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    args = [gunicorn, "bench_participant_api:application", "-c", "deploy/gunicorn.conf.py"]
    args += ["--bind", f"127.0.0.1:{port}"]
    process = subprocess.Popen(args, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("gunicorn did not start")


# --- a tiny HTTP/1.1 keep-alive client (no dependency) -----------------------------------------


class Connection:
    """One keep-alive connection to 127.0.0.1:port; reconnects when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method: str, target: str, body: bytes) -> int:
        for attempt in range(2):
            if self.writer is None:
                await self.open()
            try:
                return await self._exchange(method, target, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, target: str, body: bytes) -> int:
        assert self.reader is not None and self.writer is not None
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
            elif name.lower() == "connection" and "close" in value.lower():
                close = True
        await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# --- load -------------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    connects_ms: list[float] = field(default_factory=list)  # opening the connections (untimed)
    started: float = 0.0
    finished: float = 0.0
    elapsed: float = 0.0  # seconds of earlier rounds added by `add`

    def record(self, status: int, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status in (200, 201):
            self.latencies_ms.append(seconds * 1000)
        else:
            self.errors += 1

    def add(self, round_: Tally) -> None:
        """Counts another round of the same endpoint into this one."""
        self.latencies_ms += round_.latencies_ms
        self.connects_ms += round_.connects_ms
        self.errors += round_.errors
        for status, count in round_.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.elapsed += round_.finished - round_.started

    def row(self, name: str) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms) or [float("nan")]
        wall = max(self.elapsed + self.finished - self.started, 1e-9)
        return {
            "endpoint": name,
            "requests": len(self.latencies_ms) + self.errors,
            "errors": self.errors,
            "throughput_rps": len(self.latencies_ms) / wall,
            "p50_ms": statistics.median(ordered),
            "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            "max_ms": ordered[-1],
        }


def answer_body(index: int, client: int) -> bytes:
    raw = {
        "trial_type": "reference-choice",
        "trial_index": index + 4,
        "time_elapsed": 60_000 + index * 2000,
        "choice": index % 2,
        "confidence": 3,
        "rt": 1234.5,
        "response_device": "mouse",
        "queries": ["/media/img/ab/" + "a" * 64 + ".png", "/media/img/cd/" + "b" * 64 + ".png"],
        "load_ms": 12.3,
        "client": client,
    }
    body = {
        "choice": index % 2,
        "confidence": 3,
        "rt_ms": 1234.5,
        "client_started_at": "2026-11-22T10:00:00.000Z",
        "client_answered_at": "2026-11-22T10:00:01.234Z",
        "raw": raw,
        "client": client,
    }
    return json.dumps(body).encode()


def target_for(kind: str, token: str, index: int) -> tuple[str, str]:
    if kind == "put":
        return "PUT", f"/api/v1/sessions/{token}/responses/{index}"
    return "POST", "/bench/minimal"


async def one(conn: Connection, tally: Tally, kind: str, token: str, index: int, n: int) -> None:
    method, target = target_for(kind, token, index)
    start = time.perf_counter()
    try:
        status = await conn.request(method, target, answer_body(index, n))
    except OSError:
        status = 0
    tally.record(status, time.perf_counter() - start)


async def open_loop(
    port: int, kind: str, tokens: list[str], seconds: float, interval: float, first_index: int
) -> Tally:
    """Each participant answers one trial every `interval` s, staggered, for `seconds`, on a
    connection it opens just before its first answer, as a browser that loaded the page (and
    started the session) from the same server already has one: the answer's latency is the
    server's, the connection's opening is counted apart (`connects_ms`)."""
    tally = Tally(started=time.perf_counter())
    answers = int(seconds / interval)

    async def participant(n: int, token: str) -> None:
        conn = Connection(port)
        await asyncio.sleep(interval * n / len(tokens))
        opening = time.perf_counter()
        await conn.open()
        tally.connects_ms.append((time.perf_counter() - opening) * 1000)
        begin = time.perf_counter()
        for step in range(answers):
            await asyncio.sleep(max(0.0, begin + step * interval - time.perf_counter()))
            await one(conn, tally, kind, token, first_index + step, n)
        conn.close()

    await asyncio.gather(*(participant(n, token) for n, token in enumerate(tokens)))
    tally.finished = time.perf_counter()
    return tally


async def closed_loop(
    port: int, kind: str, tokens: list[str], seconds: float, progress: dict[int, int], end: int
) -> Tally:
    """Each client sends back to back until `seconds` pass or its trials run out; `progress`
    (client → next trial index) carries on from an earlier round, so answers stay in order."""
    tally = Tally(started=time.perf_counter())
    deadline = tally.started + seconds

    async def client(n: int, token: str) -> None:
        conn = Connection(port)
        while progress.get(n, 0) < end and time.perf_counter() <= deadline:
            await one(conn, tally, kind, token, progress.get(n, 0), n)
            progress[n] = progress.get(n, 0) + 1
        conn.close()

    await asyncio.gather(*(client(n, token) for n, token in enumerate(tokens)))
    tally.finished = time.perf_counter()
    return tally


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| phase | endpoint | requests | errors | throughput (req/s) | p50 (ms) | p99 (ms) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['phase']} | {row['endpoint']} | {row['requests']} | {row['errors']} | "
            f"{row['throughput_rps']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
        )


def stored_responses(tokens: list[str]) -> int:
    from backend.participation.models import Response

    return Response.objects.filter(session__token__in=tokens).count()


def alternating(
    port: int, tokens: dict[str, list[str]], args: argparse.Namespace, n_trials: int
) -> list[dict[str, Any]]:
    """Both phases, each in `args.rounds` rounds alternating PUT and the minimal view."""
    rounds = max(1, args.rounds)
    open_totals = {kind: Tally() for kind in ("put", "minimal")}
    answers = int(args.seconds / rounds / args.interval)
    for round_ in range(rounds):
        for kind, total in open_totals.items():
            total.add(
                asyncio.run(
                    open_loop(
                        port,
                        kind,
                        tokens["open"],
                        args.seconds / rounds,
                        args.interval,
                        round_ * answers,
                    )
                )
            )
    saturation_totals = {kind: Tally() for kind in ("put", "minimal")}
    progress: dict[str, dict[int, int]] = {"put": {}, "minimal": {}}
    for _ in range(rounds):
        for kind, total in saturation_totals.items():
            seconds = args.saturation_seconds / rounds
            total.add(
                asyncio.run(
                    closed_loop(port, kind, tokens["saturation"], seconds, progress[kind], n_trials)
                )
            )
    for kind, total in open_totals.items():
        connects = sorted(total.connects_ms)
        p99 = connects[min(len(connects) - 1, int(0.99 * len(connects)))]
        median = statistics.median(connects)
        print(f"{kind}: {len(connects)} connections opened, p50 {median:.1f} ms, "
              f"p99 {p99:.1f} ms (not in the table)")  # fmt: skip
    rows = [{"phase": "1,000 participants / 2 s", **t.row(k)} for k, t in open_totals.items()]
    rows += [{"phase": "saturation", **t.row(k)} for k, t in saturation_totals.items()]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--saturation-clients", type=int, default=32)
    parser.add_argument("--saturation-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers; 0: its config")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two endpoints")
    parser.add_argument(
        "--keep", action="store_true", help="keep the bench study and its sessions afterwards"
    )
    args = parser.parse_args()
    n_trials = 400
    print("setting up…", flush=True)
    tokens = set_up(args.participants, args.saturation_clients, n_trials)
    port = free_port()
    server = start_gunicorn(port, args.workers or min(4, (os.cpu_count() or 1) * 2))
    rows: list[dict[str, Any]] = []
    # The load generator's own garbage collections stop its event loop for tens of ms, and
    # every request in flight would be charged with the pause (a client on another machine
    # has none of these): set-up's objects are frozen and collection is off while it measures.
    gc.collect()
    gc.freeze()
    gc.disable()
    load_before = os.getloadavg()
    try:
        warm = asyncio.run(closed_loop(port, "put", tokens["warm"], 3, {}, 20))
        asyncio.run(closed_loop(port, "minimal", tokens["warm"], 3, {}, 20))
        rows = alternating(port, tokens, args, n_trials)
    finally:
        server.terminate()
        server.wait(timeout=30)
    gc.enable()
    print_table(rows)
    put_open, minimal_open, put_sat, minimal_sat = rows
    sent_ok = put_open["requests"] - put_open["errors"] + put_sat["requests"] - put_sat["errors"]
    sent_ok += len(warm.latencies_ms)
    stored = stored_responses(tokens["open"] + tokens["saturation"] + tokens["warm"])
    ratio = put_sat["throughput_rps"] / minimal_sat["throughput_rps"]
    print(f"\nPUT throughput / minimal view throughput (saturation): {ratio:.2f}")
    print(f"acknowledged PUTs {sent_ok}, response rows stored {stored}")
    workers = args.workers or min(4, (os.cpu_count() or 1) * 2)
    print(f"machine: {os.cpu_count()} CPUs; gunicorn gthread, {workers} workers × 4 threads")
    load = ", ".join(f"{a:.1f}→{b:.1f}" for a, b in zip(load_before, os.getloadavg(), strict=True))
    print(f"load average (1, 5, 15 min) before→after: {load}")
    if not args.keep:
        tear_down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
