"""lab: start, stop and inspect the local lab (python -m lab.labctl up|down|status|env|inject).

The lab is made of real programs on 127.0.0.1:
  * a Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)
    and kwok's node/pod simulation, assembled by `kwokctl --runtime binary`;
  * metrics-server, scraping kwok's simulated kubelet resource metrics;
  * moto's AWS server with the EKS, EC2, IAM, STS and Budgets additions of lab/aws_server.py, seeded like
    the tutorial, authorizing every call of an assumed role against its policies (lab/aws_authz.py);
  * the Karpenter AWS provider's controller, run as the karpenter role's Helm release says
    (lab/karpenter_pod.py), whose instances become kwok nodes (lab/ec2_kubelet.py).
All state lives under .lab/ (or $LAB_STATE_DIR). Every port can be moved with LAB_<NAME>_PORT.
"""
import argparse
import sys

from lab import events
from lab.chart_repo import karpenter_crd_chart
from lab.ctl.cluster import node_manifests
from lab.ctl.config import AWS_ENDPOINT, AWS_ENV, AWS_FACTS, KUBECONFIG, LOGS, PIDS, PORTS, REPO, STATE, LabError, log
from lab.ctl.down import cmd_down
from lab.ctl.env import cmd_env
from lab.ctl.inject import cmd_inject
from lab.ctl.processes import lab_processes, read_pid
from lab.ctl.status import cmd_status
from lab.ctl.tools import bin_dir, kubectl, tool
from lab.ctl.up import cmd_up

# The jobs live in lab/ctl/, one module each; what tests, benchmarks and lab modules take from
# `lab.labctl` stays importable from here.
__all__ = [
    "AWS_ENDPOINT", "AWS_ENV", "AWS_FACTS", "KUBECONFIG", "LOGS", "PIDS", "PORTS", "REPO", "STATE", "LabError", "bin_dir",
    "karpenter_crd_chart", "kubectl", "lab_processes", "log", "main", "node_manifests", "read_pid", "tool",
]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up").set_defaults(func=cmd_up)
    sub.add_parser("down").set_defaults(func=cmd_down)
    sub.add_parser("status").set_defaults(func=cmd_status)
    sub.add_parser("env").set_defaults(func=cmd_env)
    inject = sub.add_parser("inject", help="deliver an AWS event through the lab's AWS server")
    events.add_arguments(inject)
    inject.set_defaults(func=cmd_inject)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except LabError as error:
        log(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
