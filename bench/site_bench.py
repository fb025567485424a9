"""site.yml benchmarks on the lab, medians of N runs, each on a fresh lab:

    python -m bench.site_bench [--runs 5]

Per run: site.yml cold converge; the idempotent rerun (and its changed count); with the HPA out of the
way, time from `scale --replicas=6` to 6 pods Running (Karpenter adds nodes); with the HPA back at 3,
time from load start (playbooks/load.yml) to 12 replicas, and to 12 pods Running. Results go to
bench/results/site.json with the command that produced them. Targets (issue #4): cold <= 90 s,
rerun <= 25 s with changed=0.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lab import labctl

RESULTS = Path(__file__).resolve().parent / "results" / "site.json"
APP_NS = "nlb-app-karpenter"


def labctl_run(*args):
    subprocess.run([sys.executable, "-m", "lab.labctl", *args], cwd=labctl.REPO, check=True, capture_output=True, text=True)


def playbook(name, *args, extra=None):
    cmd = [str(labctl.REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(labctl.REPO / "inventories" / "lab"),
           str(labctl.REPO / "playbooks" / name), *args]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    started = time.time()
    result = subprocess.run(cmd, cwd=labctl.REPO, env={**os.environ, "ANSIBLE_CONFIG": str(labctl.REPO / "ansible.cfg")},
                            capture_output=True, text=True)
    seconds = time.time() - started
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    changed = int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", result.stdout).group(1))
    return seconds, changed


def kube_json(*args):
    return json.loads(labctl.kubectl("get", *args, "-o", "json").stdout)


def running(namespace):
    pods = kube_json("pods", "-n", namespace)["items"]
    return len([p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")])


def seconds_until(predicate, timeout, started):
    while time.time() - started < timeout:
        if predicate():
            return time.time() - started
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout}s")


def one_run():
    labctl_run("down")
    labctl_run("up")
    cold, _ = playbook("site.yml")
    rerun, rerun_changed = playbook("site.yml")

    playbook("autoscaling.yml", "--tags", "hpa", extra={"hpa_state": "absent"})
    labctl.kubectl("scale", "deployment", "nginx-deployment", "-n", APP_NS, "--replicas=1")
    seconds_until(lambda: running(APP_NS) == 1, 120, time.time())
    started = time.time()
    labctl.kubectl("scale", "deployment", "nginx-deployment", "-n", APP_NS, "--replicas=6")
    scale_to_6 = seconds_until(lambda: running(APP_NS) == 6, 300, started)

    # Back to 1 as the tutorial does, so the HPA scales up to its minimum (scale-down would wait out
    # Kubernetes' 5-minute stabilization window).
    labctl.kubectl("scale", "deployment", "nginx-deployment", "-n", APP_NS, "--replicas=1")
    playbook("autoscaling.yml", "--tags", "hpa")
    seconds_until(lambda: kube_json("deployment", "nginx-deployment", "-n", APP_NS)["spec"]["replicas"] == 3, 300, time.time())
    started = time.time()
    playbook("load.yml", extra={"load_generator_wait": False})
    load_to_12 = seconds_until(lambda: kube_json("deployment", "nginx-deployment", "-n", APP_NS)["spec"]["replicas"] == 12, 300, started)
    load_to_12_running = seconds_until(lambda: running(APP_NS) >= 12, 300, started)
    playbook("load.yml", extra={"load_generator_state": "stopped"})
    return {"cold": cold, "rerun": rerun, "rerun_changed": rerun_changed, "scale_to_6_running": scale_to_6,
            "load_to_12_replicas": load_to_12, "load_to_12_running": load_to_12_running}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    labctl.bin_dir(build=True)
    runs = []
    try:
        for _ in range(args.runs):
            runs.append(one_run())
            print(json.dumps(runs[-1]), flush=True)
    finally:
        labctl_run("down")

    def summary(key, goal=None):
        values = [r[key] for r in runs]
        entry = {"median_seconds": round(statistics.median(values), 1), "runs_seconds": [round(v, 1) for v in values]}
        if goal:
            entry["goal_seconds"] = goal
        return entry

    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": f"python -m bench.site_bench --runs {args.runs}",
        "site_cold_converge": summary("cold", 90),
        "site_idempotent_rerun": {**summary("rerun", 25), "changed": [r["rerun_changed"] for r in runs]},
        "scale_to_6_until_all_running": summary("scale_to_6_running"),
        "load_start_until_12_replicas": summary("load_to_12_replicas"),
        "load_start_until_12_running": summary("load_to_12_running"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
