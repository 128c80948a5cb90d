"""Running a command while measuring its wall time and peak memory, and writing benchmark reports."""
import json
import os
import platform
import statistics
import subprocess
import threading
import time
from pathlib import Path

import psutil

REPORTS = Path(os.environ.get("SHOPLENS_PROJECT_DIR", ".")).resolve() / "reports" / "benchmarks"


def run_measured(command, cwd, env=None, interval=0.05):
    """Run ``command``; return ``(seconds, peak_bytes)``.

    Peak memory is the largest sum of resident memory over the process and all its
    children (worker processes included), sampled every ``interval`` seconds. Shared
    pages count once per process, so this errs on the high side.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})})
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        parent = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                total = 0
                for proc in tree:
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, total)
            except psutil.Error:
                pass
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    done.set()
    sampler.join()
    if code:
        raise SystemExit(f"benchmark command failed with exit status {code}: {' '.join(map(str, command))}")
    return time.perf_counter() - started, peak


def median(values):
    return statistics.median(values)


def machine():
    """The machine a benchmark ran on, with its load average over the last minute when it ended: on a shared
    machine, what its timings are worth."""
    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average": round(os.getloadavg()[0], 1)}


def write_report(name, data, markdown):
    """Write ``reports/benchmarks/<name>.json`` and ``.md``."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (REPORTS / f"{name}.md").write_text(markdown)
    print(markdown)
