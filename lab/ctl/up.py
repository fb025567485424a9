"""`lab up`: the AWS server seeded, the cluster with its nodegroup nodes and metrics, Karpenter's runner, the inventory."""
import json
import os
import time

from lab.ctl.cluster import create_cluster, node_manifests, node_metrics_served, nodes_ready, register_oidc_keys, restart_dead_components
from lab.ctl.config import AWS_ENDPOINT, AWS_FACTS, KUBECONFIG, LOGS, PORTS, REPO, STATE, LabError, log
from lab.ctl.down import cmd_down
from lab.ctl.inventory import write_inventory
from lab.ctl.processes import http_ok, lab_processes, port_open, wait_for
from lab.ctl.services import seed_aws, start_aws_server, start_ec2_kubelet, start_karpenter_pod
from lab.ctl.status import lab_healthy, print_status
from lab.ctl.tools import bin_dir, kubectl


def cmd_up(_args):
    started = time.time()
    bins = bin_dir(build=True)
    STATE.mkdir(parents=True, exist_ok=True)
    if KUBECONFIG.exists() and lab_healthy():
        facts = json.loads(AWS_FACTS.read_text())
        write_inventory(facts, bins)
        log("already up")
        print_status()
        return
    if lab_processes():
        log("a previous lab is partly running: stopping it first")
        cmd_down(None)
    busy = [f"{name} port {port}" for name, port in PORTS.items() if port_open(port)]
    if busy:
        raise LabError(
            f"busy: {', '.join(busy)} - stop what listens there or move the lab with LAB_<NAME>_PORT (e.g. LAB_{busy[0].split(' port ')[0].upper()}_PORT)"
        )
    def step(description, action):
        action()
        log(f"{description} ({time.time() - started:.1f}s)")

    try:
        start_aws_server()
        # The apiserver must sign tokens as the EKS cluster's issuer, which seeding creates: seed first.
        wait_for("the AWS server", lambda: http_ok(f"{AWS_ENDPOINT}/moto-api/"), 30)
        facts = seed_aws()
        step("AWS server seeded like the tutorial's account", lambda: None)
        step("Kubernetes cluster created (kwokctl, binary runtime)", lambda: create_cluster(bins, facts["oidc_issuer"]))
        restart_dead_components()
        register_oidc_keys()
        kubectl("apply", "-f", "-", stdin=json.dumps(node_manifests(facts)))
        kubectl("apply", "-f", str(REPO / "lab" / "manifests" / "eks-node-daemonsets.yaml"))
        # Nothing of Karpenter's yet: the karpenter role installs its CRDs and controller, and the
        # controller runs once its Deployment exists.
        start_karpenter_pod(bins, facts["cluster_name"])
        start_ec2_kubelet()
        step("nodegroup nodes Ready", lambda: wait_for("3 Ready nodegroup nodes", nodes_ready, 60))
        step("node metrics served", lambda: wait_for(
            "node metrics from metrics-server", lambda: restart_dead_components() and node_metrics_served(), 90, interval=1))
        write_inventory(facts, bins)
    except Exception as error:  # noqa: BLE001 - whatever failed, leave no half-started lab behind
        if os.environ.get("LAB_KEEP_ON_FAILURE"):
            log(f"lab-up failed: {error}; logs are in {LOGS} - left running for inspection (LAB_KEEP_ON_FAILURE)")
        else:
            log(f"lab-up failed: {error}; logs are in {LOGS} - stopping what was started")
            cmd_down(None)
        raise LabError(str(error)) from error
    log(f"up in {time.time() - started:.1f}s")
    print_status()
