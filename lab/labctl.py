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
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("LAB_STATE_DIR", REPO / ".lab"))
KWOK_WORKDIR = STATE / "kwok"
KWOK_CLUSTER = "lab"
KUBECONFIG = STATE / "kubeconfig"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
AWS_FACTS = STATE / "aws.json"
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


# -- binaries ------------------------------------------------------------------------------------
def bin_dir(build=True):
    script = REPO / "lab" / "build.sh"
    if not build:
        result = subprocess.run([str(script), "--print"], capture_output=True, text=True)
        return Path(result.stdout.strip()) if result.returncode == 0 else None
    result = subprocess.run([str(script)], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise LabError("building the lab binaries failed (the line above says why)")
    return Path(result.stdout.strip().splitlines()[-1])


def tool(name, bins=None):
    bins = bins or bin_dir(build=False)
    if bins is None:
        raise LabError("the lab binaries are not built: run `make lab-build`")
    return str(bins / name)


def kubectl(*args, check=True, capture=True, timeout=60, stdin=None):
    cmd = [tool("kubectl"), "--kubeconfig", str(KUBECONFIG), *args]
    result = subprocess.run(cmd, input=stdin, capture_output=capture, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise LabError(f"kubectl {' '.join(args[:3])} failed: {(result.stderr or '').strip()}")
    return result


# -- processes and ports --------------------------------------------------------------------------
def port_open(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def read_pid(path):
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def start_process(name, argv, env=None):
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    logfile = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=str(STATE),
        start_new_session=True,  # its own process group: lab-down can stop it and its children
    )
    (PIDS / f"{name}.pid").write_text(str(proc.pid))
    return proc


def stop_process(name, timeout=10):
    pid = read_pid(PIDS / f"{name}.pid")
    if pid is None:
        return
    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + timeout
        while pid_alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    (PIDS / f"{name}.pid").unlink(missing_ok=True)


def lab_processes():
    """PIDs of every process whose command line points into the lab's state or binaries."""
    # Only the state dir marks a process as ours: the binaries are shared by every lab on the machine.
    markers = [str(STATE)]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(marker in cmdline for marker in markers) and pid_alive(int(entry.name)):
            found.append((int(entry.name), cmdline.strip()[:160]))
    return found


def wait_for(description, predicate, timeout, interval=0.25):
    deadline = time.time() + timeout
    last_error = None
    while time.time() < deadline:
        try:
            if predicate():
                return
        except Exception as error:  # noqa: BLE001 - keep polling, report the last one
            last_error = error
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise LabError(f"timed out after {timeout}s waiting for {description}{detail}")


def http_ok(url, insecure_tls=False):
    context = ssl._create_unverified_context() if insecure_tls else None  # noqa: S323 - loopback self-signed
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310 - fixed loopback URLs
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


# -- components -----------------------------------------------------------------------------------
def kwokctl(*args, timeout=180, check=True):
    # kwokctl would download a kubectl of its own for some steps; point it at ours.
    env = {**os.environ, "KWOK_WORKDIR": str(KWOK_WORKDIR), "KWOK_KUBECTL_BINARY": tool("kubectl")}
    result = subprocess.run(
        [tool("kwokctl"), "--name", KWOK_CLUSTER, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / "kwokctl.log").write_text(result.stdout + result.stderr)
        raise LabError(f"kwokctl {' '.join(args[:2])} failed: see {LOGS / 'kwokctl.log'}")
    return result


def kwok_cluster_dir():
    return KWOK_WORKDIR / "clusters" / KWOK_CLUSTER


# kwok's own default Stages, as kwokctl would load them; giving kwokctl any Stage replaces them all.
KWOK_DEFAULT_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


def kwokctl_config(bins, issuer):
    """kwokctl's config: local metrics-server manifests, and kwok's Stages plus the lab's own.

    The apiserver signs service account tokens as the EKS cluster's OIDC issuer, as EKS's does: IRSA
    tokens then carry the `iss` that the IAM OIDC provider names."""
    import yaml

    options = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        # kwokctl would fetch metrics-server's release manifests from GitHub; the module ships the
        # same kustomize sources, which build.sh keeps next to the binaries.
        "options": {"metricsServerManifests": [str(bins / "metrics-server-manifests" / "overlays" / "release")]},
    }
    options["componentsPatches"] = [{"name": "kube-apiserver", "extraArgs": [
        {"key": "service-account-issuer", "value": issuer, "override": True},
        # Tokens of the default audience stay valid for the apiserver itself.
        {"key": "api-audiences", "value": f"{issuer},https://kubernetes.default.svc.cluster.local"},
    ]}]
    kustomize = bins / "kwok-kustomize"
    documents = [yaml.safe_dump(options)]
    for stage in KWOK_DEFAULT_STAGES:
        documents.append((kustomize / "stage" / stage).read_text())
    documents.append((REPO / "lab" / "kwok" / "node-resource-metrics-path.yaml").read_text())
    documents.append(yaml.safe_dump(node_metrics_with_system_overhead(kustomize)))
    return "\n---\n".join(documents)


# What a real EKS node uses outside pods (kubelet, containerd, the OS): kwok counts pods only.
NODE_SYSTEM_CPU_CORES = 0.03
NODE_SYSTEM_MEMORY_BYTES = 400 * 1024 * 1024


def node_metrics_with_system_overhead(kustomize):
    """kwok's kubelet /metrics/resource simulation, with node usage that includes system overhead.

    metrics-server drops a node whose CPU counter or memory is zero and needs two samples for a
    rate, so without this a node shows up only two scrapes after its first pod runs."""
    import yaml

    metric = yaml.safe_load((kustomize / "metrics" / "resource" / "metrics-resource.yaml").read_text())
    expressions = {
        "node_cpu_usage_seconds_total": f'node.CumulativeUsage("cpu") + node.SinceSecond() * {NODE_SYSTEM_CPU_CORES}',
        "node_memory_working_set_bytes": f'node.Usage("memory") + {float(NODE_SYSTEM_MEMORY_BYTES)}',
    }
    for entry in metric["spec"]["metrics"]:
        if entry["name"] in expressions:
            entry["value"] = expressions.pop(entry["name"])
    if expressions:
        raise LabError(f"kwok's metrics-resource.yaml has no {', '.join(expressions)}: check KWOK_VERSION")
    return metric


def create_cluster(bins, issuer):
    config = STATE / "kwokctl.yaml"
    config.write_text(kwokctl_config(bins, issuer))
    args = [
        "create", "cluster",
        "--config", str(config),
        "--runtime", "binary",
        "--kube-apiserver-binary", str(bins / "kube-apiserver"),
        "--kube-controller-manager-binary", str(bins / "kube-controller-manager"),
        "--kube-scheduler-binary", str(bins / "kube-scheduler"),
        "--kwok-controller-binary", str(bins / "kwok"),
        "--etcd-binary", str(bins / "etcd"),
        "--metrics-server-binary", str(bins / "metrics-server"),
        "--enable", "metrics-server",
        "--kube-apiserver-port", str(PORTS["apiserver"]),
        "--etcd-port", str(PORTS["etcd"]),
        "--kube-controller-manager-port", str(PORTS["controller_manager"]),
        "--kube-scheduler-port", str(PORTS["scheduler"]),
        "--controller-port", str(PORTS["kwok"]),
        "--kubeconfig", str(KUBECONFIG),
        # Faster than the defaults so that HPA and metrics tests do not wait a minute per step.
        # metrics-server's floor is 10s, and its kubelet timeout must stay below the resolution.
        "--extra-args", "metrics-server=metric-resolution=10s",
        "--extra-args", "metrics-server=kubelet-request-timeout=5s",
        # kwok gives simulated nodes this address, which metrics-server scrapes: keep it on loopback.
        "--extra-args", "kwok-controller=node-ip=127.0.0.1",
        "--extra-args", "kube-controller-manager=horizontal-pod-autoscaler-sync-period=5s",
        "--wait", "60s",
    ]
    kwokctl(*args)


KWOK_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller", "metrics-server")


def restart_dead_components():
    """kwokctl starts its components together, and one that finds the apiserver not yet up exits
    (metrics-server does: "unable to load configmap based request-header-client-ca-file").
    `kwokctl start cluster` starts exactly the ones that are not running."""
    pids = kwok_cluster_dir() / "pids"
    dead = [c for c in KWOK_COMPONENTS if not (lambda pid: pid is not None and pid_alive(pid))(read_pid(pids / f"{c}.pid"))]
    if dead:
        log(f"restarting {', '.join(dead)} (exited while the apiserver was starting)")
        kwokctl("start", "cluster", timeout=60)
    return not dead


def node_manifests(facts):
    """The 3 nodes of the managed nodegroup ng-ondemand, as EKS registers them."""
    nodes = []
    for index, instance in enumerate(facts["instances"]):
        name = instance["private_dns"]
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    # kwok simulates (heartbeats, pod status, metrics) only nodes with this annotation.
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "kubernetes.io/arch": "arm64",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/hostname": name,
                        "node.kubernetes.io/instance-type": "t4g.xlarge",
                        "topology.kubernetes.io/region": facts["region"],
                        "topology.kubernetes.io/zone": instance["zone"],
                        "eks.amazonaws.com/capacityType": "ON_DEMAND",
                        NODEGROUP_LABEL: facts["nodegroup"],
                        "eks.amazonaws.com/nodegroup-image": "ami-0lab0000000000000",
                        "alpha.eksctl.io/cluster-name": facts["cluster_name"],
                        "alpha.eksctl.io/nodegroup-name": facts["nodegroup"],
                        "type": "kwok",
                        "lab.karpenter-hpa/node-index": str(index),
                    },
                },
                "spec": {"providerID": f"aws:///{instance['zone']}/{instance['instance_id']}"},
                "status": {
                    # EKS reserves CPU and memory for the kubelet and system on a t4g.xlarge.
                    "capacity": {"cpu": "4", "memory": "16Gi", "pods": "58", "ephemeral-storage": "20Gi"},
                    "allocatable": {"cpu": "3920m", "memory": "15136Mi", "pods": "58", "ephemeral-storage": "18Gi"},
                },
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": nodes}


def start_aws_server():
    # AWS managed policies (AmazonEKSWorkerNodePolicy, ...) exist in every real account; moto loads them on request.
    env = {"PYTHONPATH": str(REPO), "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
           # STS verifies web identity tokens with the cluster issuer's keys, which lab-up writes here.
           "LAB_OIDC_JWKS_FILE": str(OIDC_JWKS)}
    # Every call of an assumed role (the controller's) is authorized against the role's policies.
    return start_process("aws", [sys.executable, "-m", "lab.aws_server", "--port", str(PORTS["aws"]), "--authorize"], env=env)


def seed_aws():
    from lab import seed

    facts = seed.seed(AWS_ENDPOINT)
    AWS_FACTS.write_text(json.dumps(facts, indent=1))
    return facts


def karpenter_crd_chart():
    """charts/karpenter-crd of the Karpenter AWS provider at the lab's Karpenter version, from the Go module cache.

    The nodepools role validates NodePools and EC2NodeClasses against the CRDs of this chart, as it does on EKS
    with the published OCI chart of the same version.
    """
    from lab import chart_repo

    version = chart_repo.read_versions(chart_repo.versions_file())["KARPENTER_AWS_VERSION"]
    return chart_repo.module_dir("github.com/aws/karpenter-provider-aws", version) / "charts" / "karpenter-crd"


def register_oidc_keys():
    """Give the AWS server's STS the cluster issuer's signing keys, as STS fetches them from the issuer's
    discovery document (/.well-known/openid-configuration -> jwks_uri) on EKS."""
    jwks = json.loads(kubectl("get", "--raw", "/openid/v1/jwks").stdout)
    config = json.loads(kubectl("get", "--raw", "/.well-known/openid-configuration").stdout)
    OIDC_JWKS.write_text(json.dumps({config["issuer"]: jwks}))


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


def nodes_ready():
    out = kubectl("get", "nodes", "-l", NODEGROUP_LABEL, "-o", "json").stdout
    items = json.loads(out)["items"]
    ready = [
        n for n in items if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
    ]
    return len(ready) >= 3


def node_metrics_served():
    result = kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes", check=False)
    if result.returncode != 0:
        return False
    names = {item["metadata"]["name"] for item in json.loads(result.stdout)["items"]}
    return len(names) >= 3


# -- inventory and environment --------------------------------------------------------------------
def karpenter_inventory(bins):
    """Role overrides for the lab's Karpenter: the AWS provider's own charts, from the Go module its controller
    was built from, packaged with that version. Only their location differs from EKS's OCI charts."""
    from lab import chart_repo

    charts = chart_repo.lab_charts(bins)
    return {
        "karpenter_chart_ref": str(charts[chart_repo.CHART_NAME]),
        "karpenter_crd_chart_ref": str(charts[chart_repo.CRD_CHART_NAME]),
        # The nodepools role validates against the CRDs of the chart the karpenter role installs.
        "nodepools_crd_chart_ref": str(charts[chart_repo.CRD_CHART_NAME]),
    }


def write_inventory(facts, bins):
    (INVENTORY / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (INVENTORY / "hosts.yml").write_text(
        "# Generated by `make lab-up`: the lab as an inventory. Do not edit; it is rewritten.\n"
        "all:\n"
        "  hosts:\n"
        "    localhost:\n"
        "      ansible_connection: local\n"
        "      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n"
    )
    lab_vars = {
        "lab_enabled": True,
        "lab_state_dir": str(STATE),
        "lab_bin_dir": str(bins),
        "lab_facts": facts,
        # Connection settings the playbooks pass to amazon.aws and kubernetes.core modules.
        "aws_endpoint_url": AWS_ENDPOINT,
        "aws_region": facts["region"],
        "aws_access_key": "testing",
        "aws_secret_key": "testing",
        "k8s_kubeconfig": str(KUBECONFIG),
        "eks_cluster_name": facts["cluster_name"],
        "karpenter_version": "",
        "karpenter_helm_binary": str(bins / "helm"),
        **karpenter_inventory(bins),
        "nodepools_crd_chart_version": "",
        "nodepools_helm_binary": str(bins / "helm"),
        # metrics-server's own chart from its Go module. kwokctl already runs the real metrics-server
        # and registers the metrics APIService for it; the chart's APIService would point at pods
        # kwok only simulates, so the lab installs the chart without one and under another name.
        "metrics_server_chart_repo_url": "",
        "metrics_server_chart_ref": str(bins / "metrics-server-chart"),
        "metrics_server_chart_version": "",
        "metrics_server_helm_binary": str(bins / "helm"),
        "metrics_server_extra_values": {"fullnameOverride": "metrics-server-chart", "apiService": {"create": False}},
        # No real pods to send requests to: kwok reports the app's CPU use from an annotation.
        "load_generator_mode": "simulated",
    }
    (INVENTORY / "group_vars" / "all" / "lab.yml").write_text(
        "# Generated by `make lab-up` from the running lab. Do not edit; it is rewritten.\n" + json.dumps(lab_vars, indent=2) + "\n"
    )


def env_exports(bins):
    exports = {"KUBECONFIG": str(KUBECONFIG), **AWS_ENV, "PATH": f"{bins}:{os.environ.get('PATH', '')}"}
    return "\n".join(f"export {key}='{value}'" for key, value in exports.items())


# -- commands -------------------------------------------------------------------------------------
def component_table():
    """(name, pid, port, healthy) for every lab component."""
    bins = bin_dir(build=False)
    kwok_pids = kwok_cluster_dir() / "pids"
    rows = []

    def kwok_row(name, component, port, check):
        pid = read_pid(kwok_pids / f"{component}.pid")
        alive = pid is not None and pid_alive(pid)
        rows.append((name, pid if alive else None, port, alive and check()))

    kwok_row("etcd", "etcd", PORTS["etcd"], lambda: port_open(PORTS["etcd"]))
    kwok_row("kube-apiserver", "kube-apiserver", PORTS["apiserver"], lambda: http_ok(f"https://127.0.0.1:{PORTS['apiserver']}/readyz", True) or port_open(PORTS["apiserver"]))
    kwok_row("kube-controller-manager", "kube-controller-manager", PORTS["controller_manager"], lambda: http_ok(f"https://127.0.0.1:{PORTS['controller_manager']}/healthz", True))
    kwok_row("kube-scheduler", "kube-scheduler", PORTS["scheduler"], lambda: http_ok(f"https://127.0.0.1:{PORTS['scheduler']}/healthz", True))
    kwok_row("kwok-controller", "kwok-controller", PORTS["kwok"], lambda: http_ok(f"http://127.0.0.1:{PORTS['kwok']}/healthz"))
    kwok_row("metrics-server", "metrics-server", None, lambda: bins is not None and KUBECONFIG.exists() and node_metrics_served())
    karpenter_url = f"http://127.0.0.1:{PORTS['karpenter_health']}/readyz"
    checks = [
        # Healthy while it waits for the karpenter role's release; once that exists, when the controller is ready.
        ("karpenter", PORTS["karpenter_health"], lambda: karpenter_pod_state().get("state") == "waiting" or http_ok(karpenter_url)),
        ("aws", PORTS["aws"], lambda: http_ok(f"{AWS_ENDPOINT}/moto-api/")),
        ("ec2-kubelet", None, lambda: True),
    ]
    for name, port, check in checks:
        pid = read_pid(PIDS / f"{name}.pid")
        alive = pid is not None and pid_alive(pid)
        rows.append((name, pid if alive else None, port, alive and check()))
    return rows


def lab_healthy():
    return all(healthy for _, _, _, healthy in component_table())


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


def cmd_down(_args):
    stop_process("karpenter")
    stop_process("ec2-kubelet")
    # Keep the components' logs: a failed lab-up is diagnosed from them after the cleanup.
    kwok_logs = kwok_cluster_dir() / "logs"
    if kwok_logs.is_dir():
        LOGS.mkdir(parents=True, exist_ok=True)
        for component_log in kwok_logs.glob("*.log"):
            shutil.copyfile(component_log, LOGS / f"kwok-{component_log.name}")
    if kwok_cluster_dir().exists() and bin_dir(build=False):
        kwokctl("delete", "cluster", timeout=120, check=False)
    stop_process("aws")
    leftovers = lab_processes()
    for pid, _ in leftovers:  # anything kwokctl did not reap (it should have)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(KWOK_WORKDIR, ignore_errors=True)
    KUBECONFIG.unlink(missing_ok=True)
    deadline = time.time() + 10
    while time.time() < deadline and [p for p in PORTS.values() if port_open(p)]:
        time.sleep(0.2)
    still = [f"{name}:{port}" for name, port in PORTS.items() if port_open(port)]
    if still or lab_processes():
        raise LabError(f"lab-down left ports {still} and processes {lab_processes()}")
    log("down: no lab process left, no lab port listening")


def print_status():
    rows = component_table()
    print(f"{'COMPONENT':<25}{'PID':>8}  {'PORT':>6}  HEALTH")
    for name, pid, port, healthy in rows:
        print(f"{name:<25}{pid or '-':>8}  {port or '-':>6}  {'ok' if healthy else 'DOWN'}")
    if KUBECONFIG.exists() and all(r[3] for r in rows):
        nodes = kubectl("get", "nodes", "-o", "custom-columns=NAME:.metadata.name,CAPACITY:.metadata.labels.eks\\.amazonaws\\.com/capacityType,NODEPOOL:.metadata.labels.karpenter\\.sh/nodepool,TYPE:.metadata.labels.node\\.kubernetes\\.io/instance-type", check=False).stdout
        print("\n" + nodes.rstrip())
        print(f"\nKUBECONFIG={KUBECONFIG}  AWS endpoint={AWS_ENDPOINT}  (eval \"$(make -s lab-env)\")")
    return rows


def cmd_status(_args):
    rows = print_status()
    return 0 if all(r[3] for r in rows) else 1


def cmd_env(_args):
    bins = bin_dir(build=False)
    if bins is None:
        raise LabError("the lab binaries are not built: run `make lab-up`")
    print(env_exports(bins))


def cmd_inject(args):
    from lab import events

    result = events.inject(AWS_ENDPOINT, args.event, instance_id=args.instance_id, node=args.node, **events.extra_args(args))
    print(json.dumps(result, indent=1, default=str))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up").set_defaults(func=cmd_up)
    sub.add_parser("down").set_defaults(func=cmd_down)
    sub.add_parser("status").set_defaults(func=cmd_status)
    sub.add_parser("env").set_defaults(func=cmd_env)
    inject = sub.add_parser("inject", help="deliver an AWS event through the lab's AWS server")
    from lab import events

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
