"""Faults on the lab (`make chaos`; too slow for `make test`, README says how long): check mode on a fresh lab
changes nothing in AWS or the cluster, compared over their whole state; the apiserver killed in the middle of
site.yml fails the run with a message that says what happened, and a rerun converges. The rulebook's fault is
in test_rulebook_faults.py.

Order matters: the first test needs the fresh lab the session starts."""
import subprocess
import time

import pytest

from lab import faults, labctl
from tests.integration.conftest import REPO, changed, run_playbook

pytestmark = pytest.mark.timeout(1800)


def test_check_mode_on_a_fresh_lab_changes_nothing_in_aws_or_the_cluster(lab):
    aws_before, cluster_before = faults.aws_state(), faults.cluster_state()
    for playbook in ("site.yml", "event_bus.yml"):
        result = run_playbook(playbook, "--check")
        # It does find work to do: the comparison below is about a run that would change things.
        assert changed(result) > 0, result.stdout[-3000:]
    assert faults.differences(aws_before, faults.aws_state()) == []
    assert faults.differences(cluster_before, faults.cluster_state()) == []


def start_playbook(name, log_path):
    log = open(log_path, "w")  # noqa: SIM115 - closed by the caller through the process
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(REPO / "inventories" / "lab"), str(REPO / "playbooks" / name)]
    return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
                            env={**labctl.os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}), log


def wait_for_line(log_path, text, process, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in log_path.read_text(errors="replace"):
            return
        assert process.poll() is None, f"the run ended before {text!r}:\n{log_path.read_text()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} within {timeout}s")


def test_apiserver_killed_in_the_middle_of_site_fails_the_run_clearly_and_a_rerun_converges(lab, kube_json, tmp_path):
    log_path = tmp_path / "site.log"
    process, log = start_playbook("site.yml", log_path)
    try:
        # The AWS stages are done and Helm is installing Karpenter's CRDs when the apiserver dies.
        wait_for_line(log_path, "TASK [karpenter : Install or upgrade the Karpenter CRD release]", process, 600)
        faults.kill_component("kube-apiserver")
        # Down until the run gives up: it must end by itself, not hang on the dead apiserver.
        process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
        faults.restart_component("kube-apiserver")
    output = log_path.read_text(errors="replace")
    assert process.returncode != 0, output[-3000:]
    failure = output[output.find("fatal:"):]
    # The failure says which stage and which endpoint: the apiserver's address, refused.
    assert "karpenter" in failure and f"127.0.0.1:{labctl.PORTS['apiserver']}" in failure and "refused" in failure, failure[-3000:]
    rerun = run_playbook("site.yml")
    assert "failed=0" in rerun.stdout
    assert changed(run_playbook("site.yml")) == 0, "converged: a further run changes nothing"
    deployment = kube_json("deployment", "-n", "karpenter", "karpenter")
    assert deployment["status"].get("availableReplicas") == deployment["spec"]["replicas"]
