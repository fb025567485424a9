"""Faults on the lab (`make chaos`; too slow for `make test`, README says how long): check mode on a fresh lab
changes nothing in AWS or the cluster, compared over their whole state; the AWS server, then the apiserver,
killed in the middle of site.yml fail the run with a message that says what happened, and a rerun converges.
The rulebook's fault is in test_rulebook_faults.py.

Order matters: the first test needs the fresh lab the session starts, and the AWS server's fault comes next so
that the AWS stages before the one it interrupts have made their changes for real (which the restarted server
must still have)."""
import json
import os
import subprocess
import time
import urllib.request

import pytest

from lab import faults, labctl
from tests.functional.conftest import REPO, changed, karpenter_counter, lab_log_lines, run_playbook, wait_until

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
                            env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}), log


def wait_for_line(log_path, text, process, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in log_path.read_text(errors="replace"):
            return
        assert process.poll() is None, f"the run ended before {text!r}:\n{log_path.read_text()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} within {timeout}s")


def controller_sessions():
    """Access keys of the STS sessions of Karpenter's controller role the AWS server knows (moto's dump)."""
    with urllib.request.urlopen(f"{labctl.AWS_ENDPOINT}/moto-api/data.json", timeout=60) as response:  # noqa: S310 - loopback
        assumed = json.loads(response.read()).get("sts", {}).get("AssumedRole", [])
    return {role["access_key_id"] for role in assumed if role["role_arn"].endswith(f"/{CONTROLLER_ROLE}")}


CONTROLLER_ROLE = "KarpenterControllerRole-eksworkshop"
NODE_ROLE = "KarpenterNodeRole-eksworkshop"
# The first AWS stage after iam, tagging and aws_auth have made their changes; creating the queue is a change.
def site_killed_at(task_line, component, tmp_path):
    """site.yml with `component` killed once the run reaches task_line, and restarted whatever happened after.
    The run must end by itself, not hang on the dead endpoint. Returns its return code and output."""
    log_path = tmp_path / "site.log"
    process, log = start_playbook("site.yml", log_path)
    try:
        wait_for_line(log_path, task_line, process, 600)
        faults.kill_component(component)
        process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
        faults.restart_component(component)
    return process.returncode, log_path.read_text(errors="replace")


AWS_STAGE_TASK = "TASK [interruption_queue : Create the interruption queue, writable only by EventBridge and SQS, TLS only]"


def test_aws_server_killed_in_the_middle_of_site_fails_the_run_clearly_and_a_rerun_converges(lab, aws, kube_json, tmp_path):
    aws_log_start = len(lab_log_lines("aws"))
    returncode, output = site_killed_at(AWS_STAGE_TASK, "aws", tmp_path)
    assert returncode != 0, output[-3000:]
    failed_task = output[output.rfind("TASK [", 0, output.find("fatal:")):]
    # The failure says which stage and task, and which endpoint: the AWS server's address, unreachable.
    assert failed_task.startswith(AWS_STAGE_TASK), failed_task[-3000:]
    assert f"127.0.0.1:{labctl.PORTS['aws']}" in failed_task and "Could not connect to the endpoint URL" in failed_task, failed_task[-3000:]
    # The account came back as it was: the cluster, and the roles and access entry the stages before made.
    from lab.seed import CLUSTER_NAME

    assert aws("eks").describe_cluster(name=CLUSTER_NAME)["cluster"]["status"] == "ACTIVE"
    assert aws("iam").get_role(RoleName=CONTROLLER_ROLE)["Role"]["RoleName"] == CONTROLLER_ROLE
    assert f"arn:aws:iam::{aws('sts').get_caller_identity()['Account']}:role/{NODE_ROLE}" in \
        aws("eks").list_access_entries(clusterName=CLUSTER_NAME)["accessEntries"]
    rerun = run_playbook("site.yml")
    assert "failed=0" in rerun.stdout
    assert changed(run_playbook("site.yml")) == 0, "converged: a further run changes nothing"
    deployment = kube_json("deployment", "-n", "karpenter", "karpenter")
    assert deployment["status"].get("availableReplicas") == deployment["spec"]["replicas"]

    # Now the controller runs, on IRSA credentials this server issued: the server dies and comes back again, and
    # the keys the controller holds are still its role's session, so its calls are still authorized as the role.
    wait_until("the Karpenter controller serving metrics", _metrics_served, 120, interval=1)
    sessions = controller_sessions()
    assert sessions, "the controller has assumed its role"
    faults.kill_component("aws")
    faults.restart_component("aws")
    assert controller_sessions() >= sessions
    # It reads and deletes an interruption warning delivered after the restart, through the rule and queue the
    # first run made: PutEvents -> EventBridge rule -> SQS -> the controller's ReceiveMessage and DeleteMessage.
    received = karpenter_counter("karpenter_interruption_received_messages_total", message_type="spot_interrupted")
    deleted = karpenter_counter("karpenter_interruption_deleted_messages_total")
    node = kube_json("nodes", "-l", "eks.amazonaws.com/nodegroup=ng-ondemand")["items"][0]
    from lab import events

    events.inject(labctl.AWS_ENDPOINT, "spot-interruption", instance_id=node["spec"]["providerID"].rsplit("/", 1)[-1])
    wait_until("Karpenter to receive and delete the warning", lambda: karpenter_counter(
        "karpenter_interruption_received_messages_total", message_type="spot_interrupted") == received + 1
        and karpenter_counter("karpenter_interruption_deleted_messages_total") == deleted + 1, 90, interval=1)
    assert [line for line in lab_log_lines("aws")[aws_log_start:] if "DENIED" in line and CONTROLLER_ROLE in line] == []
    assert kube_json("deployment", "-n", "karpenter", "karpenter")["status"].get("availableReplicas") == deployment["spec"]["replicas"]


def _metrics_served():
    try:
        return karpenter_counter("karpenter_interruption_deleted_messages_total") >= 0
    except OSError:
        return False


def test_apiserver_killed_in_the_middle_of_site_fails_the_run_clearly_and_a_rerun_converges(lab, kube_json, tmp_path):
    # The AWS stages are done and Helm is installing Karpenter's CRDs when the apiserver dies.
    returncode, output = site_killed_at("TASK [karpenter : Install or upgrade the Karpenter CRD release]", "kube-apiserver", tmp_path)
    assert returncode != 0, output[-3000:]
    failure = output[output.find("fatal:"):]
    # The failure says which stage and which endpoint: the apiserver's address, refused.
    assert "karpenter" in failure and f"127.0.0.1:{labctl.PORTS['apiserver']}" in failure and "refused" in failure, failure[-3000:]
    rerun = run_playbook("site.yml")
    assert "failed=0" in rerun.stdout
    assert changed(run_playbook("site.yml")) == 0, "converged: a further run changes nothing"
    deployment = kube_json("deployment", "-n", "karpenter", "karpenter")
    assert deployment["status"].get("availableReplicas") == deployment["spec"]["replicas"]
