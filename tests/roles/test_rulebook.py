"""rulebooks/cluster_events.yml: house rules a reviewer would otherwise check by eye, and its playbooks exist."""
import pytest
import yaml

from tests.paths import REPO

RULEBOOK = yaml.safe_load((REPO / "rulebooks" / "cluster_events.yml").read_text())
RULES = [(ruleset["name"], rule) for ruleset in RULEBOOK for rule in ruleset["rules"]]


def test_one_ruleset_per_concern_and_unique_rule_names():
    assert [ruleset["name"] for ruleset in RULEBOOK] == ["Node lifecycle", "Cost guardrails", "Spot capacity review"]
    names = [rule["name"] for _, rule in RULES]
    assert len(names) == len(set(names)), names


@pytest.mark.parametrize("ruleset, rule", [r for r in RULES if "run_playbook" in r[1]["action"]], ids=lambda r: r if isinstance(r, str) else r["name"])
def test_every_remediation_is_throttled_by_attribute_and_its_playbook_exists(ruleset, rule):
    throttle = rule.get("throttle") or {}
    assert throttle.get("group_by_attributes"), f"{ruleset}/{rule['name']} has no throttle group_by_attributes"
    assert "once_within" in throttle or "once_after" in throttle
    assert (REPO / rule["action"]["run_playbook"]["name"]).is_file()


def test_the_sqs_sources_read_the_event_bus_queues_never_karpenters():
    sources = [s for ruleset in RULEBOOK for s in ruleset["sources"] if "eks_autoscaling.core.sqs_events" in s]
    assert [s["eks_autoscaling.core.sqs_events"]["queue_name"] for s in sources] == ["{{ events_queue_name }}", "{{ cost_queue_name }}"]
    for name in ("lab.yml", "eks.example.yml"):
        rulebook_vars = yaml.safe_load((REPO / "rulebooks" / "vars" / name).read_text())
        assert rulebook_vars["events_queue_name"] != "eksworkshop"  # Karpenter's interruption queue
        assert rulebook_vars["drain_owner"] in ("karpenter", "rulebook")


def test_every_event_kind_of_the_source_has_a_rule():
    conditions = " ".join(rule["condition"] for _, rule in RULES)
    for kind in ("spot_interruption", "capacity_reservation_interruption", "rebalance_recommendation", "scheduled_change", "instance_state_change", "alarm", "budget", "unknown"):
        assert f'"{kind}"' in conditions, kind


@pytest.mark.parametrize(("owner", "remediation"), [("rulebook", "drain_node"), ("karpenter", "record_interruption")])
def test_a_capacity_reservation_warning_is_handled_as_a_spot_warning_for_each_drain_owner(owner, remediation):
    """The same rule, so the same playbook and throttle, for both warnings: drained by the rulebook, or
    only recorded, counted and notified when Karpenter drains."""
    for kind in ("spot_interruption", "capacity_reservation_interruption"):
        (rule,) = [rule for _, rule in RULES if f'"{kind}"' in rule["condition"] and f'vars.drain_owner == "{owner}"' in rule["condition"]]
        assert rule["action"]["run_playbook"] == {"name": "playbooks/remediation/remediate.yml",
                                                  "extra_vars": {"remediation_action": remediation}}
        assert '"spot_interruption"' in rule["condition"] and '"capacity_reservation_interruption"' in rule["condition"]
