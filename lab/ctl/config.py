"""Where the lab lives and what it listens on: state paths, ports, the AWS endpoint; its error and its log line.

Read once, from the environment: every port can be moved with LAB_<NAME>_PORT, the state with LAB_STATE_DIR.
Every other module of lab.ctl builds on this one, and this one on none of them.
"""
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("LAB_STATE_DIR", REPO / ".lab"))
KWOK_WORKDIR = STATE / "kwok"
KWOK_CLUSTER = "lab"
KUBECONFIG = STATE / "kubeconfig"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
AWS_FACTS = STATE / "aws.json"
# The AWS server's account, kept across a restart of the server (lab/aws_persistence.py); a lab's own, not the next one's.
AWS_STATE_FILE = STATE / "aws-state.pickle"
INVENTORY = REPO / "inventories" / "lab"

PORT_DEFAULTS = {
    "apiserver": 36443,
    "etcd": 36379,
    "controller_manager": 36257,
    "scheduler": 36259,
    "kwok": 36247,
    "aws": 36500,
    "karpenter_metrics": 36800,
    "karpenter_health": 36801,
    # The EKS Pod Identity Agent's credentials endpoint (lab/pod_identity_agent.py), in the karpenter process.
    "pod_identity_agent": 36802,
}
PORTS = {name: int(os.environ.get(f"LAB_{name.upper()}_PORT", default)) for name, default in PORT_DEFAULTS.items()}
AWS_ENDPOINT = f"http://127.0.0.1:{PORTS['aws']}"
AWS_ENV = {
    "AWS_ENDPOINT_URL": AWS_ENDPOINT,
    "AWS_REGION": "ap-southeast-1",
    "AWS_DEFAULT_REGION": "ap-southeast-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
OIDC_JWKS = STATE / "oidc-jwks.json"


class LabError(Exception):
    """A failure the user can act on; printed as one line."""


def log(message):
    print(f"lab: {message}", file=sys.stderr, flush=True)
