"""keep_freed_memory: large tensors come from the reusable heap instead of fresh mmap() calls."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from worker import memory

ROOT = Path(__file__).resolve().parents[2]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Prints, for a 16 MB and a 48 MB tensor, whether its memory lies in the process's heap (reused
# after free) rather than in a mapping of its own (returned to the OS on free, faulted in again).
WHERE = """
import json, sys, torch
from worker.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keep_freed_memory()
def in_heap(tensor):
    address = tensor.data_ptr()
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            low, high = (int(part, 16) for part in line.split()[0].split("-"))
            if low <= address < high:
                return True
    return False
mb = 1024 * 1024 // 4
print(json.dumps([in_heap(torch.ones(16 * mb)), in_heap(torch.ones(48 * mb))]))
"""


def placements(mode: str) -> list[bool]:
    # glibc's defaults, whatever the environment says (GLIBC_TUNABLES, MALLOC_*_ variables)
    env = {
        k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")
    }
    result = subprocess.run(
        [sys.executable, "-c", WHERE, mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(result.stdout))


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_tensors_up_to_32_mb_come_from_the_heap_once_kept() -> None:
    assert placements("default") == [False, False]  # glibc starts by mmap()ing blocks > 128 KB
    assert placements("keep") == [True, False]  # above the 32 MB ceiling they still are


def test_a_process_asks_glibc_once() -> None:
    first = memory.keep_freed_memory()
    assert memory.keep_freed_memory() is first
    assert first is GLIBC
