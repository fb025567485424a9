"""Faults and whole-state snapshots for the lab's chaos tests (tests/chaos, `make chaos`).

Components are killed and restarted with the lab's own process control: kwokctl's pid files and
component specs (kwok.yaml) for the cluster's components, the lab's pid files and lab/ctl/services.py for the
AWS server (which comes back with its account: lab/aws_persistence.py). Snapshots are the AWS server's whole state (moto's
/moto-api/data.json, plus EKS, which moto leaves out of it) and every object of every listable kind.
"""
import json
import os
import signal
import time
import urllib.request

from lab.ctl import config, processes, services, tools
from lab.ctl.cluster import kwok_cluster_dir

# Kinds the lab's own controllers write on their own (heartbeats, leader election, status, events):
# compared by which objects exist, not by their resourceVersion.
CHURNING = {"events", "events.events.k8s.io", "leases.coordination.k8s.io", "nodes", "pods", "endpoints",
            "endpointslices.discovery.k8s.io", "nodeclaims.karpenter.sh", "nodepools.karpenter.sh",
            "ec2nodeclasses.karpenter.k8s.aws", "apiservices.apiregistration.k8s.io"}
# Live readings metrics-server serves, not stored objects: a pod's appear after its second scrape.
READINGS = {"nodes.metrics.k8s.io", "pods.metrics.k8s.io"}


# The lab's own processes beside the cluster's components (lab/ctl/services.py starts them).
LAB_PROCESSES = ("aws",)


def kwok_pid(component):
    if component in LAB_PROCESSES:
        return processes.read_pid(config.PIDS / f"{component}.pid")
    return processes.read_pid(kwok_cluster_dir() / "pids" / f"{component}.pid")


def kill_component(component):
    """SIGKILL one of the cluster's components (kube-apiserver, etcd, ...) or the AWS server ("aws"), as a crash would."""
    pid = kwok_pid(component)
    if pid is None or not processes.pid_alive(pid):
        raise config.LabError(f"{component} is not running")
    os.kill(pid, signal.SIGKILL)
    processes.wait_for(f"{component} gone", lambda: not processes.pid_alive(pid), 10)


def apiserver_ready():
    result = tools.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
    return result.returncode == 0 and result.stdout.strip() == "ok"


def restart_component(component, timeout=120):
    """Start a killed component again exactly as kwokctl started it (binary, args and work dir from the
    cluster's kwok.yaml), its log appended where kwokctl keeps it and its pid where kwokctl (and so
    lab-down) looks. Not `kwokctl start cluster`: in the middle of the tests it twice left the apiserver
    down (once hanging over 60 s, once returning without starting it). The AWS server ("aws") is started as
    lab-up starts it, but on the account it had (restart_aws_server)."""
    if component == "aws":
        return restart_aws_server(timeout)
    import subprocess

    import yaml

    cluster = kwok_cluster_dir()
    config = next(doc for doc in yaml.safe_load_all((cluster / "kwok.yaml").read_text())
                  if doc and doc.get("kind") == "KwokctlConfiguration")
    spec = next(c for c in config["components"] if c["name"] == component)
    with open(cluster / "logs" / f"{component}.log", "ab") as log:
        process = subprocess.Popen([spec["binary"], *spec.get("args", [])], cwd=spec.get("workDir") or str(cluster),
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (cluster / "pids" / f"{component}.pid").write_text(str(process.pid))
    if component == "kube-apiserver":
        processes.wait_for("the apiserver ready", apiserver_ready, timeout, interval=1)
    return process.pid


def restart_aws_server(timeout=60):
    """The AWS server started again, as lab-up starts it, on the account it had (its state file), its pid where
    lab-down looks; returns once it answers."""
    process = services.start_aws_server(keep_state=True)
    processes.wait_for("the AWS server", lambda: processes.http_ok(f"{config.AWS_ENDPOINT}/moto-api/"), timeout)
    return process.pid


def aws_state():
    """The AWS server's whole state: moto's dump of every backend, and EKS's clusters with their access
    entries and pod identity associations. Backends moto creates empty on a first read are left out."""
    with urllib.request.urlopen(f"{config.AWS_ENDPOINT}/moto-api/data.json", timeout=60) as response:  # noqa: S310 - loopback
        dump = json.loads(response.read())
    state = {name: backend for name, backend in dump.items() if _has_content(backend)}
    import boto3

    eks = boto3.client("eks", endpoint_url=config.AWS_ENDPOINT, region_name=config.AWS_ENV["AWS_REGION"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    clusters = {}
    for name in eks.list_clusters()["clusters"]:
        cluster = eks.describe_cluster(name=name)["cluster"]
        clusters[name] = {
            "cluster": json.loads(json.dumps(cluster, default=str)),
            "access_entries": {arn: json.loads(json.dumps(eks.describe_access_entry(clusterName=name, principalArn=arn)["accessEntry"], default=str))
                               for arn in eks.list_access_entries(clusterName=name)["accessEntries"]},
            "pod_identity": eks.list_pod_identity_associations(clusterName=name)["associations"],
        }
    state["eks"] = clusters
    return state


def _has_content(value):
    if isinstance(value, dict):
        return any(_has_content(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_content(v) for v in value)
    return value not in (None, "", 0, False)


def cluster_state():
    """{kind: {namespace/name: resourceVersion}} of every object of every listable kind but READINGS; for
    CHURNING kinds the value is None (only which objects exist is compared)."""
    kinds = [kind for kind in tools.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split() if kind not in READINGS]
    state = {}
    for kind in kinds:
        result = tools.kubectl("get", kind, "-A", "-o", "json", check=False, timeout=60)
        if result.returncode != 0:  # an aggregated API that is not serving: say so in the state
            state[kind] = "unavailable"
            continue
        items = json.loads(result.stdout)["items"]
        state[kind] = {f"{i['metadata'].get('namespace', '')}/{i['metadata']['name']}":
                       None if kind in CHURNING else i["metadata"].get("resourceVersion") for i in items}
    return state


def differences(before, after, path=""):
    """Readable differences between two snapshots (empty when equal)."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            if key not in before:
                found.append(f"{path}/{key}: added")
            elif key not in after:
                found.append(f"{path}/{key}: removed")
            else:
                found += differences(before[key], after[key], f"{path}/{key}")
        return found
    return [] if before == after else [f"{path}: {str(before)[:200]} -> {str(after)[:200]}"]
