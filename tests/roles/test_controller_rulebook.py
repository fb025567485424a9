"""rulebooks/cluster_events_controller.yml is rulebooks/cluster_events.yml for EDA controller: generated, never edited,
the same rules, conditions and throttles, differing only in the action (run_job_template for run_playbook)."""
import importlib.util

import pytest
import yaml
from ansible_rulebook.validators import Validate

from tests.paths import REPO
CLI = yaml.safe_load((REPO / "rulebooks" / "cluster_events.yml").read_text())
CONTROLLER = yaml.safe_load((REPO / "rulebooks" / "cluster_events_controller.yml").read_text())
JOB_TEMPLATE_PLAYBOOKS = yaml.safe_load((REPO / "roles" / "controller" / "defaults" / "main.yml").read_text())["controller_job_templates"]


def _load_generator():
    spec = importlib.util.spec_from_file_location("controller_rulebook", REPO / "rulebooks" / "controller_rulebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()
PAIRS = [(cli_rule, controller_rule) for cli_set, controller_set in zip(CLI, CONTROLLER)
         for cli_rule, controller_rule in zip(cli_set["rules"], controller_set["rules"])]


def test_the_committed_controller_rulebook_is_what_the_generator_writes(capsys):
    assert generator.main(["--check"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("rulebook", [CLI, CONTROLLER], ids=["cli", "controller"])
def test_both_rulebooks_pass_ansible_rulebooks_own_schema(rulebook):
    Validate.rulebook(rulebook)


def test_same_rulesets_hosts_and_sources():
    assert [(s["name"], s["hosts"], s["sources"]) for s in CONTROLLER] == [(s["name"], s["hosts"], s["sources"]) for s in CLI]
    assert [len(s["rules"]) for s in CONTROLLER] == [len(s["rules"]) for s in CLI]


@pytest.mark.parametrize(("cli_rule", "controller_rule"), PAIRS, ids=[cli["name"] for cli, _ in PAIRS])
def test_same_rule_condition_and_throttle_only_the_action_differs(cli_rule, controller_rule):
    assert {k: v for k, v in controller_rule.items() if k != "action"} == {k: v for k, v in cli_rule.items() if k != "action"}
    if "run_playbook" not in cli_rule["action"]:
        assert controller_rule["action"] == cli_rule["action"]
        return
    playbook = cli_rule["action"]["run_playbook"]["name"]
    # No limit: ansible-rulebook limits the job to the ruleset's hosts, as it does run_playbook's run.
    assert controller_rule["action"] == {
        "run_job_template": {
            "name": "{{ controller_name_prefix }} " + playbook.removeprefix("playbooks/").removesuffix(".yml"),
            "organization": "{{ controller_organization }}",
            "job_args": {"extra_vars": cli_rule["action"]["run_playbook"]["extra_vars"]},
        }
    }
    # The job template it launches is one the controller role makes.
    assert playbook in JOB_TEMPLATE_PLAYBOOKS


def test_no_run_playbook_is_left_for_eda_controller():
    assert "run_playbook" not in (REPO / "rulebooks" / "cluster_events_controller.yml").read_text()


def test_a_run_playbook_option_without_a_controller_mapping_is_refused():
    with pytest.raises(ValueError, match="post_events"):
        generator.controller_action({"run_playbook": {"name": "playbooks/remediation/remediate.yml", "post_events": True}})


@pytest.mark.parametrize("playbook", ["site.yml", "playbooks/site.yaml", "playbooks/.yml", "../playbooks/site.yml"])
def test_job_template_name_refuses_what_is_not_a_playbook_of_the_project(playbook):
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError):
        generator.job_template_name(playbook, "p")


def test_ansible_rulebook_parses_the_controller_rulebook_into_run_job_template_actions(monkeypatch):
    """ansible-rulebook's own parser, which resolves the event source in our collection as EDA controller's DE does."""
    from ansible_rulebook import collection
    from ansible_rulebook.conf import settings
    from ansible_rulebook.rules_parser import parse_rule_sets

    monkeypatch.setattr(settings, "ansible_galaxy_path", str(REPO / ".venv" / "bin" / "ansible-galaxy"))
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(REPO / "collections"))
    variables = {**yaml.safe_load((REPO / "rulebooks" / "vars" / "eks.example.yml").read_text()),
                 "controller_name_prefix": "eks-autoscaling", "controller_organization": "Default"}
    collection.find_collection.cache_clear()
    try:
        actions = {action.action for ruleset in parse_rule_sets(CONTROLLER, variables) for rule in ruleset.rules for action in rule.actions}
    finally:
        # Found under this test's settings: not a result for other tests.
        collection.find_collection.cache_clear()
    assert actions == {"run_job_template", "debug"}
