"""The Kubernetes side: kwokctl's cluster of real control-plane binaries, kwok's simulated nodes, metrics-server."""
import json
import os
import subprocess

from lab.ctl.config import KUBECONFIG, KWOK_CLUSTER, KWOK_WORKDIR, LOGS, NODEGROUP_LABEL, OIDC_JWKS, PORTS, REPO, STATE, LabError, log
from lab.ctl.processes import pid_alive, read_pid
from lab.ctl.tools import kubectl, tool


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


def register_oidc_keys():
    """Give the AWS server's STS the cluster issuer's signing keys, as STS fetches them from the issuer's
    discovery document (/.well-known/openid-configuration -> jwks_uri) on EKS."""
    jwks = json.loads(kubectl("get", "--raw", "/openid/v1/jwks").stdout)
    config = json.loads(kubectl("get", "--raw", "/.well-known/openid-configuration").stdout)
    OIDC_JWKS.write_text(json.dumps({config["issuer"]: jwks}))


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
