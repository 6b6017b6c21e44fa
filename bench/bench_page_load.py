"""Time from opening a participant link to the first trial on screen (cold cache).

Usage: .venv/bin/python bench/bench_page_load.py URL [--runs N]
URL is a live study's participant link on a local server, e.g. the demo's printed URL. Each run
uses a new browser context (empty cache) and a new PROLIFIC_PID, and stops the clock when the
first jsPsych trial (the consent screen) is rendered and its button can be clicked. Chromium
itself is started and warmed on the server's /readyz first; the server is not warmed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def with_participant(url: str, run: int) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query["PROLIFIC_PID"] = f"bench-{int(time.time())}-{run}"
    return urlunsplit(parts._replace(query=urlencode(query)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    timings = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        # A participant's browser is already running: start Chromium's own services (about 3 s
        # on a first navigation) on a page of the server before the clock runs.
        warm_up = browser.new_page()
        warm_up.goto(urlunsplit(urlsplit(args.url)._replace(path="/readyz", query="")))
        warm_up.close()
        for run in range(args.runs):
            context = browser.new_context()
            page = context.new_page()
            started = time.perf_counter()
            page.goto(with_participant(args.url, run))
            page.locator("#jspsych-content button").first.wait_for(state="visible")
            timings.append(time.perf_counter() - started)
            context.close()
        browser.close()
    print("| runs | median (s) | max (s) | target |\n| --- | --- | --- | --- |")
    print(f"| {args.runs} | {statistics.median(timings):.2f} | {max(timings):.2f} | < 2 s |")
    print("per run (s):", ", ".join(f"{timing:.2f}" for timing in timings))


if __name__ == "__main__":
    main()
