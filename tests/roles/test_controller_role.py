"""roles/controller without a controller: its checks refuse bad settings before any API call, and the objects it
derives (job template names, workflow nodes, credentials, activation variables) are what the rulebook expects."""
import json
import os
import subprocess

import pytest
import yaml

from tests.paths import REPO
CONTROLLER_RULEBOOK = yaml.safe_load((REPO / "rulebooks" / "cluster_events_controller.yml").read_text())
SETTINGS = {
    "controller_host": "https://controller.example.com", "controller_oauthtoken": "token",
    "controller_project_scm_url": "https://git.example.com/eks-autoscaling.git",
    "controller_ee_image": "registry.example.com/ee:1", "controller_de_image": "registry.example.com/de:1",
    "controller_eda_host": "https://eda.example.com/", "controller_eda_token": "token",
}
PLAY = [{
    "name": "Derive the controller objects", "hosts": "localhost", "gather_facts": False,
    "tasks": [
        {"name": "Check the settings", "ansible.builtin.include_role": {"name": "controller", "tasks_from": "validate.yml", "public": True}},
        {"name": "Show what the role derives", "ansible.builtin.debug": {"msg": {
            "job_templates": "{{ controller_job_templates | map('eks_autoscaling.core.job_template_name', controller_name_prefix) | list }}",
            "workflow_nodes": "{{ controller_workflow_nodes }}",
            "credentials": "{{ controller_job_credentials }}",
            "activation_vars": "{{ controller_eda_activation_vars }}",
            "eda_url": "{{ controller_eda_url }}",
        }}, "vars": {"role_path": str(REPO / "roles" / "controller")}},  # as the role's own tasks see it
    ],
}]


def run(tmp_path, settings):
    playbook = tmp_path / "derive.yml"
    playbook.write_text(yaml.safe_dump(PLAY))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
           "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
           "CONTROLLER_HOST": "", "CONTROLLER_OAUTH_TOKEN": "", "EDA_HOST": "", "EDA_TOKEN": "",
           "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    result = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
                             "-e", json.dumps(settings)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    return result.returncode, {t["task"]["name"]: t["hosts"]["localhost"] for t in tasks}


def test_the_derived_objects_match_the_controller_rulebook_and_the_tutorial(tmp_path):
    rc, tasks = run(tmp_path, {**SETTINGS, "controller_aws_access_key": "AKIA", "controller_aws_secret_key": "secret"})
    assert rc == 0, tasks
    derived = tasks["Show what the role derives"]["msg"]
    launched = {rule["action"]["run_job_template"]["name"].replace("{{ controller_name_prefix }}", "eks-autoscaling")
                for ruleset in CONTROLLER_RULEBOOK for rule in ruleset["rules"] if "run_job_template" in rule["action"]}
    # One remediation job template for every rule: the rule's remediation_action picks the remediation.
    assert launched == {"eks-autoscaling remediation/remediate"} and launched <= set(derived["job_templates"])
    assert {"eks-autoscaling site", "eks-autoscaling teardown", "eks-autoscaling karpenter", "eks-autoscaling autoscaling"} <= set(derived["job_templates"])
    nodes = derived["workflow_nodes"]
    assert [n["unified_job_template"]["name"] for n in nodes] == [
        "eks-autoscaling karpenter", "eks-autoscaling autoscaling", "eks-autoscaling event_bus", "eks-autoscaling load"]
    assert [[s["identifier"] for s in n["related"]["success_nodes"]] for n in nodes] == [
        [nodes[1]["identifier"]], [nodes[2]["identifier"]], [nodes[3]["identifier"]], []]
    assert derived["credentials"] == ["eks-autoscaling AWS"]
    rulebook_vars = yaml.safe_load((REPO / "rulebooks" / "vars" / "eks.example.yml").read_text())
    assert derived["activation_vars"] == {**rulebook_vars, "controller_name_prefix": "eks-autoscaling",
                                          "controller_organization": "Default"}
    assert derived["eda_url"] == "https://eda.example.com/api/eda/v1"


@pytest.mark.parametrize("missing", ["controller_host", "controller_ee_image", "controller_de_image"])
def test_a_missing_setting_is_refused_before_any_api_call(tmp_path, missing):
    rc, tasks = run(tmp_path, {**SETTINGS, missing: ""})
    assert rc != 0
    result = tasks["controller : Refuse missing or malformed settings, before any change"]
    assert result["failed"] and "controller:" in result["msg"]


def test_eda_settings_are_not_needed_without_eda(tmp_path):
    rc, tasks = run(tmp_path, {**SETTINGS, "controller_eda_enabled": False, "controller_eda_host": "", "controller_de_image": ""})
    assert rc == 0, tasks
    assert tasks["Show what the role derives"]["msg"]["credentials"] == []
