"""Lab benchmarks: warm lab-up time (median of N up/down cycles) and lab idle memory.

    python -m bench.lab_bench [--runs 5] [--cold-build]   (--runs 0 --cold-build: the cold build only)

--cold-build also measures a cold build of the lab binaries in empty, temporary Go and lab caches
(about 15 minutes on 2 cores; the machine's own caches are left alone). Results go to
bench/results/lab.json, with the command that produced them.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab import labctl

RESULTS = Path(__file__).resolve().parent / "results" / "lab.json"


def run(*args, env=None):
    subprocess.run([sys.executable, "-m", "lab.labctl", *args], cwd=labctl.REPO, env={**os.environ, **(env or {})},
                   check=True, capture_output=True, text=True)


def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def lab_memory_mib():
    pids = {pid for pid, _ in labctl.lab_processes()}
    pids |= {labctl.read_pid(labctl.PIDS / f"{name}.pid") for name in ("karpenter", "aws")} - {None}
    return sum(rss_kib(pid) for pid in pids) / 1024, len(pids)


def cold_build():
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "GOCACHE": f"{scratch}/gocache", "GOMODCACHE": f"{scratch}/gomod", "LAB_CACHE_DIR": f"{scratch}/lab"}
        started = time.time()
        subprocess.run([str(labctl.REPO / "lab" / "build.sh")], env=env, check=True, capture_output=True)
        seconds = time.time() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        subprocess.run(["chmod", "-R", "u+w", scratch], check=False)  # the module cache is read-only
    return {"seconds": round(seconds, 1), "peak_rss_mib_largest_process": round(peak_mib)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=int, default=30)
    parser.add_argument("--cold-build", action="store_true")
    args = parser.parse_args()

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    if args.cold_build:
        results["cold_build"] = cold_build()
        results["cold_build"]["command"] = "python -m bench.lab_bench --cold-build"

    if args.runs > 0:
        labctl.bin_dir(build=True)
        run("down")
        up_times = []
        for _ in range(args.runs):
            started = time.time()
            run("up")
            up_times.append(time.time() - started)
            if len(up_times) < args.runs:
                run("down")
        time.sleep(args.idle_seconds)
        memory, processes = lab_memory_mib()
        run("down")
        results["warm_lab_up"] = {
            "median_seconds": round(statistics.median(up_times), 2),
            "runs_seconds": [round(t, 2) for t in up_times],
            "goal_seconds": 30,
            "command": f"python -m bench.lab_bench --runs {args.runs}",
        }
        results["lab_idle_memory"] = {"rss_mib": round(memory), "processes": processes, "after_idle_seconds": args.idle_seconds}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
