"""The command line run as users run it: a fresh process, its exit, stderr, time and memory."""

from __future__ import annotations

import os
import signal
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


#: Starts the command and reports its exit status and peak memory. Linux carries a
#: process's peak memory across exec, so a command forked straight from pytest would
#: report pytest's; from this small launcher it reports its own.
LAUNCHER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_xafsmap(argv, *, cwd=None, env=None, timeout=120.0, preexec_fn=None) -> Run:
    """Run ``python -m xafsmap.cli ARGV`` in a new process and measure it (Linux: os.wait4)."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), environment.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        report = Path(scratch) / "status"
        command = [sys.executable, "-c", LAUNCHER, str(report), sys.executable, "-m", "xafsmap.cli", *map(str, argv)]
        tic = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=out, stderr=err, preexec_fn=preexec_fn,
                                   start_new_session=True)
        watchdog = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
        watchdog.start()
        try:
            process.wait()
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - tic
        code, max_rss = (int(v) for v in report.read_text().split())
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return Run(code, stdout, stderr.strip().splitlines(), seconds, max_rss * 1024)


@pytest.fixture(scope="session")
def xafsmap_cli():
    if not hasattr(os, "wait4") or not hasattr(os, "killpg"):
        pytest.skip("measuring a process needs os.wait4 (POSIX)")
    return run_xafsmap
