"""Job templates run as automation controller runs them: through ansible-runner (the library AWX and EDA controller
run jobs with), with the project as the working directory, the job template's playbook, the extra vars and the limit
the controller rulebook launches it with, on the lab's inventory (what the fleet inventory holds for one cluster).

The job template comes from roles/controller's list and naming rule, the launch from the controller rulebook's rule,
rendered by ansible-rulebook's own code for run_job_template (variable substitution, limit, ansible_eda extra var).
No automation controller runs here: what it adds around ansible-runner (credentials' environment, project sync) is not
tested."""
import asyncio
import json
import os
import random
import sys
import uuid
from pathlib import Path

import ansible_runner
import pytest
import yaml
from ansible_rulebook.action.control import Control
from ansible_rulebook.action.helper import Helper
from ansible_rulebook.action.metadata import Metadata
from ansible_rulebook.util import process_controller_host_limit, substitute_variables

from .conftest import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.eks_autoscaling.core.plugins.filter.job_template_name import job_template_name  # noqa: E402

ROLE_DEFAULTS = yaml.safe_load((REPO / "roles" / "controller" / "defaults" / "main.yml").read_text())
PREFIX = ROLE_DEFAULTS["controller_name_prefix"]
JOB_TEMPLATES = {job_template_name(playbook, PREFIX): playbook for playbook in ROLE_DEFAULTS["controller_job_templates"]}
CONTROLLER_RULEBOOK = yaml.safe_load((REPO / "rulebooks" / "cluster_events_controller.yml").read_text())
# The activation's variables as roles/controller sets them, with the lab's drain owner (rulebooks/vars/lab.yml).
ACTIVATION_VARS = {**yaml.safe_load((REPO / "rulebooks" / "vars" / "lab.yml").read_text()),
                   "controller_name_prefix": PREFIX, "controller_organization": ROLE_DEFAULTS["controller_organization"]}


def launch_from_rule(rule_name, event):
    """What the controller rulebook's rule sends automation controller for this event: job template, limit, extra vars."""
    ((ruleset, rule),) = [(s, r) for s in CONTROLLER_RULEBOOK for r in s["rules"] if r["name"] == rule_name]
    action = substitute_variables(rule["action"]["run_job_template"], {**ACTIVATION_VARS, "event": event})
    metadata = Metadata(rule=rule_name, rule_uuid=str(uuid.uuid4()), rule_set=ruleset["name"],
                        rule_set_uuid=str(uuid.uuid4()), rule_run_at="")
    control = Control(queue=asyncio.Queue(), inventory="", hosts=[ruleset["hosts"]],
                      variables={**ACTIVATION_VARS, "event": event}, project_data_file="")
    helper = Helper(metadata, control, "run_job_template")
    job_args = action.get("job_args", {})
    return action["name"], process_controller_host_limit(job_args, control.hosts), helper.collect_extra_vars(job_args.get("extra_vars", {}))


def run_job(tmp_path, job_template, limit, extra_vars=None, job_type="run"):
    """One job of the job template, as automation controller hands it to ansible-runner (job_type check adds --check)."""
    playbook = JOB_TEMPLATES[job_template]
    private_data_dir = tmp_path / f"job-{len(list(tmp_path.iterdir()))}"
    private_data_dir.mkdir()
    result = ansible_runner.run(
        private_data_dir=str(private_data_dir), project_dir=str(REPO), playbook=playbook,
        inventory=str(REPO / "inventories" / "lab"), limit=limit, extravars=extra_vars or {},
        cmdline="--check" if job_type == "check" else None, quiet=True,
        envvars={"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    stdout = result.stdout.read()
    assert result.status == "successful", f"{job_template} ({playbook}) {job_type}: {result.status}\n{stdout[-6000:]}"
    return [event["event_data"]["task"] for event in result.events
            if event.get("event") == "runner_on_ok" and event["event_data"].get("res", {}).get("changed")]


def test_a_stage_job_template_runs_in_check_mode(lab, tmp_path):
    run_job(tmp_path, f"{PREFIX} autoscaling", ROLE_DEFAULTS["controller_job_limit"], job_type="check")


@pytest.fixture
def queue(aws):
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName=f"controller-jobs-{random.randrange(16 ** 6):06x}")["QueueUrl"]
    yield sqs, url
    sqs.delete_queue(QueueUrl=url)


def test_a_remediation_job_template_launched_by_the_controller_rulebook_cordons_and_acknowledges_last(
        lab, tmp_path, queue, tainted_node, kube_json):
    sqs, url = queue
    name, instance_id = tainted_node
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"detail-type": "EC2 Instance Rebalance Recommendation"}))
    message = sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"][0]
    # The event as eks_autoscaling.core.sqs_events emits it for a rebalance recommendation (the fields the playbook reads).
    event = {"kind": "rebalance_recommendation", "instance_id": instance_id, "instance_ids": [instance_id],
             "dedup_key": f"rebalance_recommendation:{instance_id}", "time": "2026-11-27T12:00:00Z",
             "sqs": {"queue_url": url, "receipt_handle": message["ReceiptHandle"], "message_id": message["MessageId"]}}
    job_template, limit, extra_vars = launch_from_rule("Act on a rebalance recommendation", event)
    # The one remediation job template, on the ruleset's hosts (the fleet), with the rule's remediation.
    assert (job_template, limit) == (f"{PREFIX} remediation/remediate", "all")
    assert extra_vars["remediation_action"] == "cordon_node" and extra_vars["ansible_eda"]["event"] == event

    def in_flight():
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesNotVisible"])

    run_job(tmp_path, job_template, limit, extra_vars, job_type="check")
    assert not kube_json("node", name)["spec"].get("unschedulable") and in_flight() == 1

    assert run_job(tmp_path, job_template, limit, extra_vars)
    assert kube_json("node", name)["spec"].get("unschedulable") is True
    assert in_flight() == 0  # the message was acknowledged (deleted)

    # Launched again with the same event (a redelivery): nothing to do, and a stale receipt handle is no error.
    run_job(tmp_path, job_template, limit, extra_vars, job_type="check")
    assert run_job(tmp_path, job_template, limit, extra_vars) == []
    assert kube_json("node", name)["spec"].get("unschedulable") is True
