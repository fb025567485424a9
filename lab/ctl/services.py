"""The lab's processes beside the cluster: the AWS server (seeded like the tutorial's account), the Karpenter
controller's pod runner (lab/karpenter_pod.py) and the EC2 kubelet that turns instances into nodes."""
import json
import sys

from lab.ctl.config import AWS_ENDPOINT, AWS_ENV, AWS_FACTS, AWS_STATE_FILE, KUBECONFIG, OIDC_JWKS, PORTS, REPO, STATE
from lab.ctl.processes import start_process
from lab.ctl.tools import tool


def start_aws_server(keep_state=False):
    """The AWS server, its account kept in AWS_STATE_FILE across restarts. A new lab's account starts empty (then
    seeded): a state file an earlier lab left (one stopped without lab-down, or killed) is removed first, since
    that lab's cluster, nodes and credentials are gone with it. keep_state=True restarts a running lab's server
    on the account it had, as lab/faults.py does."""
    if not keep_state:
        forget_aws_state()
    # AWS managed policies (AmazonEKSWorkerNodePolicy, ...) exist in every real account; moto loads them on request.
    env = {"PYTHONPATH": str(REPO), "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
           # STS verifies web identity tokens with the cluster issuer's keys, which lab-up writes here.
           "LAB_OIDC_JWKS_FILE": str(OIDC_JWKS)}
    # Every call of an assumed role (the controller's) is authorized against the role's policies.
    argv = [sys.executable, "-m", "lab.aws_server", "--port", str(PORTS["aws"]), "--authorize", "--state-file", str(AWS_STATE_FILE)]
    return start_process("aws", argv, env=env)


def forget_aws_state():
    AWS_STATE_FILE.unlink(missing_ok=True)


def seed_aws():
    from lab import seed

    facts = seed.seed(AWS_ENDPOINT)
    AWS_FACTS.write_text(json.dumps(facts, indent=1))
    return facts


def start_karpenter_pod(bins, cluster_name):
    """The AWS controller, started when the karpenter role's Deployment exists (lab/karpenter_pod.py)."""
    argv = [sys.executable, "-m", "lab.karpenter_pod", "--kubeconfig", str(KUBECONFIG), "--state-dir", str(STATE),
            "--binary", tool("karpenter-aws", bins), "--aws-endpoint", AWS_ENDPOINT, "--region", AWS_ENV["AWS_REGION"],
            "--metrics-port", str(PORTS["karpenter_metrics"]), "--health-port", str(PORTS["karpenter_health"]),
            "--cluster-name", cluster_name, "--pod-identity-agent-port", str(PORTS["pod_identity_agent"])]
    return start_process("karpenter", argv, env={"PYTHONPATH": str(REPO)})


def start_ec2_kubelet():
    argv = [sys.executable, "-m", "lab.ec2_kubelet", "--kubeconfig", str(KUBECONFIG), "--aws-endpoint", AWS_ENDPOINT,
            "--region", AWS_ENV["AWS_REGION"]]
    return start_process("ec2-kubelet", argv, env={"PYTHONPATH": str(REPO)})


def karpenter_pod_state():
    try:
        return json.loads((STATE / "karpenter-pod.json").read_text())
    except (OSError, ValueError):
        return {}
