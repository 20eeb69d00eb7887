"""The command line run as users run it: a fresh process, its exit, stderr, time and memory."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Run:
    code: int
    stdout: str
    lines: list  # stderr, one item per line
    seconds: float
    max_rss: int  # bytes, peak resident memory of the process


def run_xafsmap(argv, *, cwd=None, env=None, timeout=120.0, preexec_fn=None) -> Run:
    """Run ``python -m xafsmap.cli ARGV`` in a new process and measure it (Linux: os.wait4)."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), environment.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        tic = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "xafsmap.cli", *map(str, argv)], cwd=cwd,
                                   env=environment, stdout=out, stderr=err, preexec_fn=preexec_fn)
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - tic
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return Run(process.returncode, stdout, stderr.strip().splitlines(), seconds, usage.ru_maxrss * 1024)


def tree_digest(folder) -> dict:
    """Every file under ``folder`` (hidden ones too) and the sha256 of its content."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def xafsmap_cli():
    if not hasattr(os, "wait4"):
        pytest.skip("measuring a process needs os.wait4 (POSIX)")
    return run_xafsmap
