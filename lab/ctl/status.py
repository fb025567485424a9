"""`lab status`: every component's pid, port and health."""
from lab.ctl.cluster import kwok_cluster_dir, node_metrics_served
from lab.ctl.config import AWS_ENDPOINT, KUBECONFIG, PIDS, PORTS
from lab.ctl.processes import http_ok, pid_alive, port_open, read_pid
from lab.ctl.services import karpenter_pod_state
from lab.ctl.tools import bin_dir, kubectl


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
