"""Runs last (file order): refusal on busy ports while the lab is up, then lab-down leaves nothing."""
import os
import socket
import tempfile

from lab import labctl

from .conftest import run_labctl


def test_up_refuses_busy_ports_with_one_clear_line(lab):
    # A second lab in another state dir collides with the running one on every port.
    with tempfile.TemporaryDirectory() as other_state:
        result = run_labctl("up", env={"LAB_STATE_DIR": other_state}, check=False)
    assert result.returncode == 1
    (line,) = [l for l in result.stderr.splitlines() if "busy" in l]
    assert f"apiserver port {labctl.PORTS['apiserver']}" in line and "LAB_" in line
    # ... and the running lab is untouched.
    assert run_labctl("status", check=False).returncode == 0


def test_status_lists_every_component_healthy(lab):
    out = run_labctl("status").stdout
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller",
                      "metrics-server", "karpenter", "aws", "ec2-kubelet"):
        (row,) = [l for l in out.splitlines() if l.startswith(component + " ")]
        assert row.split()[-1] == "ok", row
        assert row.split()[1].isdigit(), row  # a live PID


def test_env_exports_drive_the_lab(lab):
    exports = run_labctl("env").stdout
    assert f"export KUBECONFIG='{labctl.KUBECONFIG}'" in exports
    assert f"export AWS_ENDPOINT_URL='{labctl.AWS_ENDPOINT}'" in exports


def test_lab_down_leaves_no_process_and_no_port(lab):
    run_labctl("down")
    assert labctl.lab_processes() == []
    for name, port in labctl.PORTS.items():
        with socket.socket() as sock:
            sock.settimeout(0.3)
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"{name} port {port} still listening"
    assert run_labctl("status", check=False).returncode == 1
    assert not os.path.exists(labctl.KUBECONFIG)
