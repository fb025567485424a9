"""`lab down`: stop every lab process and free every lab port, keeping the logs."""
import os
import shutil
import signal
import time

from lab.ctl.cluster import kwok_cluster_dir, kwokctl
from lab.ctl.config import KUBECONFIG, KWOK_WORKDIR, LOGS, PORTS, LabError, log
from lab.ctl.processes import lab_processes, port_open, stop_process
from lab.ctl.services import forget_aws_state
from lab.ctl.tools import bin_dir


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
    # The account goes with the lab (its SIGTERM has just saved it): the next lab-up starts a new one.
    forget_aws_state()
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
