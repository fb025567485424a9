"""Event-driven remediation benchmarks on the lab (rulebooks/cluster_events.yml, drain_owner: rulebook):

    python -m bench.events_bench [--latency-samples 20] [--burst-nodes 50] [--copies 10] [--runs 3]

- latency: time from the spot warning's PutEvents (EventBridge delivers it to the queue) to the node
  cordoned, one warning at a time for fresh nodes; p50 and p95 over the samples (targets 3 s / 6 s);
- burst: `copies` duplicate warnings for each of `burst-nodes` nodes, interleaved; time until every node
  is cordoned and no message is left (target 60 s for 500 events), median of `runs`;
- memory: RSS of ansible-rulebook and what it runs, sampled during the burst (peak) and idle.

Results go to bench/results/events.json with the command that produced them.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from lab import events as lab_events
from lab import labctl
from lab.rulebook import Rulebook

RESULTS = Path(__file__).resolve().parent / "results" / "events.json"
QUEUE = "eksworkshop-cluster-events"


def playbook(name, *args):
    subprocess.run([str(labctl.REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(labctl.REPO / "inventories" / "lab"),
                    str(labctl.REPO / "playbooks" / name), *args], cwd=labctl.REPO, check=True, capture_output=True,
                   env={**os.environ, "ANSIBLE_CONFIG": str(labctl.REPO / "ansible.cfg")})


def converged_lab():
    """A fresh lab with site.yml and event_bus.yml converged, as `make demo` leaves it."""
    labctl.bin_dir(build=True)
    for command in ("down", "up"):
        subprocess.run([sys.executable, "-m", "lab.labctl", command], cwd=labctl.REPO, check=True, capture_output=True)
    playbook("site.yml")
    playbook("event_bus.yml")


def client(service):
    return boto3.client(service, endpoint_url=labctl.AWS_ENDPOINT, region_name="ap-southeast-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def make_nodes(prefix, count):
    items = []
    for index in range(count):
        name = f"ip-10-99-{prefix}-{index}.ap-southeast-1.compute.internal"
        items.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": name, "type": "kwok", "bench": prefix}},
            # EC2 instance ids are i- and 17 hex characters (the event source drops any other): the prefix
            # goes in as the hex of its characters, the index fills the rest.
            "spec": {"providerID": f"aws:///ap-southeast-1a/i-0{prefix.encode().hex()}{index:0{16 - 2 * len(prefix)}x}",
                     "taints": [{"key": "bench", "value": "true", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}, "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}},
        })
    labctl.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}), timeout=120)
    return {n["metadata"]["name"]: n["spec"]["providerID"].rsplit("/", 1)[-1] for n in items}


def cordoned(prefix):
    nodes = json.loads(labctl.kubectl("get", "nodes", "-l", f"bench={prefix}", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"] for n in nodes if n["spec"].get("unschedulable")}


def queue_empty(sqs, url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--burst-nodes", type=int, default=50)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    converged_lab()
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    rulebook = Rulebook(Path(tempfile.mkdtemp()) / "rulebook.log")
    rulebook.start()
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "command": f"python -m bench.events_bench --latency-samples {args.latency_samples} --burst-nodes {args.burst_nodes} "
                          f"--copies {args.copies} --runs {args.runs}"}
    try:
        # Warm-up: the first remediation also pays for the rulebook's start.
        warm = make_nodes("w", 1)
        lab_events.inject(labctl.AWS_ENDPOINT, "spot-interruption", instance_id=next(iter(warm.values())))
        deadline = time.time() + 180
        while not cordoned("w") and time.time() < deadline:
            time.sleep(0.5)
        time.sleep(10)
        results["rulebook_idle_rss_mib"] = round(rulebook.rss_mib())

        latencies = []
        nodes = make_nodes("l", args.latency_samples)
        bus = client("events")
        for name, instance_id in nodes.items():
            entry = {**lab_events.ec2_event("spot-interruption", instance_id, "123456789012", "ap-southeast-1a"), "EventBusName": "default"}
            # The clock starts at the send: EventBridge delivers to the queue within the PutEvents call.
            started = time.time()
            bus.put_events(Entries=[entry])
            while name not in cordoned("l"):
                if time.time() - started > 120:
                    raise SystemExit(f"{name} not cordoned within 120 s")
                time.sleep(0.1)
            latencies.append(time.time() - started)
            # Let the drain and the acknowledgement finish before the next sample.
            while not queue_empty(sqs, url):
                time.sleep(0.2)
        results["send_to_cordoned"] = {
            "p50_seconds": round(percentile(latencies, 0.5), 2), "p95_seconds": round(percentile(latencies, 0.95), 2),
            "samples_seconds": [round(v, 2) for v in latencies], "goal_p50_seconds": 3, "goal_p95_seconds": 6,
        }

        bursts, peak = [], 0.0
        for run in range(args.runs):
            prefix = f"b{run}"
            nodes = make_nodes(prefix, args.burst_nodes)
            started = time.time()
            lab_events.inject_burst(labctl.AWS_ENDPOINT, "spot-interruption", list(nodes.values()), copies=args.copies)
            while len(cordoned(prefix)) < len(nodes) or not queue_empty(sqs, url):
                peak = max(peak, rulebook.rss_mib())
                if time.time() - started > 1800:
                    raise SystemExit("burst not handled within 30 minutes")
                time.sleep(1)
            bursts.append(time.time() - started)
        results["burst"] = {
            "events": args.burst_nodes * args.copies, "nodes": args.burst_nodes,
            "median_seconds": round(statistics.median(bursts), 1), "runs_seconds": [round(v, 1) for v in bursts], "goal_seconds": 60,
        }
        results["rulebook_peak_rss_mib"] = round(peak)
    finally:
        rulebook.stop()
        subprocess.run([sys.executable, "-m", "lab.labctl", "down"], cwd=labctl.REPO, capture_output=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
