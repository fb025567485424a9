"""Functional tests run on the real lab: the session starts it (or reuses a healthy one)."""
import json
import random
import os
import re
import subprocess
import sys
import time

import pytest

from lab import labctl

REPO = labctl.REPO


def run_labctl(*args, env=None, check=True, timeout=600):
    result = subprocess.run(
        [sys.executable, "-m", "lab.labctl", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def lab():
    # A fresh lab every session: the tests check what a first run changes, so nothing left over from
    # `make demo` or an earlier session may be there.
    run_labctl("down")
    run_labctl("up")
    return labctl


@pytest.fixture
def kubectl(lab):
    def _kubectl(*args, check=True, stdin=None, timeout=60):
        return lab.kubectl(*args, check=check, stdin=stdin, timeout=timeout)

    return _kubectl


@pytest.fixture
def kube_json(kubectl):
    def _get(*args):
        return json.loads(kubectl("get", *args, "-o", "json").stdout)

    return _get


@pytest.fixture
def tainted_node(kubectl):
    """A kwok node of the lab cluster running a made-up instance, tainted so no pod lands on it; deleted after."""
    name = f"tainted-{random.randrange(16 ** 6):06x}"
    instance_id = f"i-{random.randrange(16 ** 17):017x}"
    kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"kubernetes.io/hostname": name, "type": "kwok", "eks-autoscaling-test": "true"}},
        "spec": {"providerID": f"aws:///ap-southeast-1a/{instance_id}",
                 "taints": [{"key": "eks-autoscaling-test", "value": "true", "effect": "NoSchedule"}]},
    }))
    yield name, instance_id
    kubectl("delete", "node", name, "--ignore-not-found")


@pytest.fixture
def lab_env(lab):
    bins = lab.bin_dir(build=False)
    return {
        **os.environ,
        "KUBECONFIG": str(lab.KUBECONFIG),
        **lab.AWS_ENV,
        "PATH": f"{bins}:{os.environ['PATH']}",
    }


@pytest.fixture
def aws(lab):
    import boto3

    def _client(service, region="ap-southeast-1"):
        return boto3.client(
            service,
            endpoint_url=lab.AWS_ENDPOINT,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return _client


def run_playbook(name, *args, extra=None, check=True, timeout=900, inventory=None):
    """ansible-playbook -i inventories/lab (or another inventory) playbooks/<name> [args] [-e extra]."""
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory or REPO / "inventories" / "lab"),
           str(REPO / "playbooks" / name), *args]
    if extra is not None:
        cmd += ["-e", json.dumps(extra)]
    result = subprocess.run(cmd, cwd=REPO, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"ansible-playbook {name} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    return result


def lab_log_lines(name):
    """The lines of .lab/logs/<name>.log (appended to across labs: callers count from a line they noted)."""
    path = labctl.LOGS / f"{name}.log"
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def changed(result):
    """changed=N of the PLAY RECAP, summed over its hosts (the lab inventory has one: its cluster)."""
    counts = re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)", result.stdout, re.MULTILINE)
    assert counts, result.stdout[-3000:]
    return sum(int(count) for count in counts)


def wait_until(description, predicate, timeout, interval=1.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {description} (last: {last!r})")


def karpenter_counter(name, **labels):
    """The sum of a counter of the lab's Karpenter controller over the series matching `labels` (0 if absent).

    The controller serves Prometheus text on the lab's Karpenter metrics port, as the pod would."""
    import urllib.request

    url = f"http://127.0.0.1:{labctl.PORTS['karpenter_metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        series = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(series.get(key) == value for key, value in labels.items()):
            total += float(match.group(3))
    return total


@pytest.fixture
def karpenter_objects(kube_json):
    """Names of the objects of one of Karpenter's kinds (nodepools, nodeclaims, ec2nodeclasses); none while
    its CRD is not installed (a fresh lab: the karpenter role installs the CRDs)."""
    def _names(plural):
        group = "karpenter.k8s.aws" if plural == "ec2nodeclasses" else "karpenter.sh"
        if not kube_json("crd", "--field-selector", f"metadata.name={plural}.{group}")["items"]:
            return []
        return [item["metadata"]["name"] for item in kube_json(plural)["items"]]

    return _names
