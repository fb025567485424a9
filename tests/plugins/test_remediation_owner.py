"""Which cluster of a fleet owns an event: only that host's remediation acts."""
import pytest

from ansible_collections.eks_autoscaling.core.plugins.filter.remediation_owner import remediation_owner

A = {"name": "eksworkshop", "region": "ap-southeast-1", "account_id": "123456789012",
     "budget_name": "eksworkshop-monthly", "billing_alarm_name": "eksworkshop-estimated-charges"}
# Same account and region as A: only Nodes and tags tell them apart.
B = {**A, "name": "payments", "budget_name": "payments-monthly", "billing_alarm_name": "payments-estimated-charges"}
FRANKFURT = {**A, "name": "eksworkshop-frankfurt", "region": "eu-central-1", "account_id": "210987654321"}
NO_ACCOUNT = {**A, "account_id": ""}

SPOT = {"kind": "spot_interruption", "account": "123456789012", "region": "ap-southeast-1",
        "instance_id": "i-0123456789abcdef0", "instance_ids": ["i-0123456789abcdef0"]}


def node(name, instance_id):
    return {"metadata": {"name": name}, "spec": {"providerID": f"aws:///ap-southeast-1a/{instance_id}"}}


def instance(instance_id, **tags):
    return {"instance_id": instance_id, "tags": tags}


def test_an_event_of_another_account_or_region_is_ruled_out_before_any_read():
    for cluster in (FRANKFURT, {**A, "region": "eu-central-1"}):
        decision = remediation_owner(SPOT, "drain_node", cluster)
        assert decision["candidate"] is False and decision["owns"] is False
    assert "account 123456789012" in remediation_owner(SPOT, "drain_node", FRANKFURT)["why"]


def test_a_cluster_without_an_account_in_the_inventory_is_not_ruled_out_by_account():
    assert remediation_owner({**SPOT, "account": "999999999999"}, "drain_node", NO_ACCOUNT)["candidate"] is True


def test_a_node_event_is_worth_reading_nodes_for_but_not_owned_before():
    assert remediation_owner(SPOT, "drain_node", A) == {
        "candidate": True, "owns": False, "why": "no node of eksworkshop runs i-0123456789abcdef0"}


def test_the_cluster_whose_node_runs_the_instance_owns_it_and_its_neighbour_does_not():
    nodes = [node("ip-10-0-0-1.ec2.internal", "i-0123456789abcdef0")]
    owner = remediation_owner(SPOT, "drain_node", A, nodes, [])
    assert owner["owns"] is True and "ip-10-0-0-1.ec2.internal" in owner["why"]
    # The neighbour in the same account and region has no such node, and EC2 says the instance is A's.
    neighbour = remediation_owner(SPOT, "drain_node", B, [], [instance("i-0123456789abcdef0", **{"kubernetes.io/cluster/eksworkshop": "owned"})])
    assert neighbour == {"candidate": True, "owns": False,
                         "why": "no node of payments runs i-0123456789abcdef0 and no instance is tagged for it"}


@pytest.mark.parametrize("tags", [
    {"kubernetes.io/cluster/payments": "owned"},
    {"eks:eks-cluster-name": "payments"},  # Karpenter's instances
    {"eks:cluster-name": "payments"},  # managed node groups'
])
def test_an_instance_whose_node_is_gone_belongs_to_the_cluster_its_tag_names(tags):
    decision = remediation_owner(SPOT, "record_interruption", B, [], [instance("i-0123456789abcdef0", **tags)])
    assert decision["owns"] is True and "tagged for payments" in decision["why"]
    assert remediation_owner(SPOT, "record_interruption", A, [], [instance("i-0123456789abcdef0", **tags)])["owns"] is False


def test_a_cluster_tag_of_another_value_is_not_ownership():
    assert remediation_owner(SPOT, "drain_node", B, [], [instance("i-0123456789abcdef0", **{"kubernetes.io/cluster/payments": "nope"})])["owns"] is False


def test_a_batch_is_owned_by_each_cluster_that_runs_one_of_its_instances():
    batch = {**SPOT, "instance_id": None, "instance_ids": ["i-0123456789abcdef0", "i-0fedcba9876543210"]}
    assert remediation_owner(batch, "drain_node", A, [node("a", "i-0123456789abcdef0")], [])["owns"] is True
    assert remediation_owner(batch, "drain_node", B, [node("b", "i-0fedcba9876543210")], [])["owns"] is True


@pytest.mark.parametrize(("event", "owner"), [
    ({"kind": "budget", "account": "123456789012", "budget_name": "payments-monthly"}, "payments"),
    ({"kind": "alarm", "account": "123456789012", "region": "us-east-1", "alarm_name": "eksworkshop-estimated-charges",
      "new_state": "ALARM"}, "eksworkshop"),
])
def test_a_cost_event_belongs_to_the_cluster_whose_budget_or_alarm_it_names_whatever_its_region(event, owner):
    decisions = {cluster["name"]: remediation_owner(event, "cap_costs", cluster) for cluster in (A, B)}
    assert [name for name, decision in decisions.items() if decision["owns"]] == [owner]
    # An alarm's INSUFFICIENT_DATA is acknowledged by its own cluster too.
    assert remediation_owner(event, "acknowledge", A if owner == "eksworkshop" else B)["owns"] is True


def test_a_budget_of_no_cluster_is_no_ones():
    event = {"kind": "budget", "account": "123456789012", "budget_name": "marketing-monthly"}
    decision = remediation_owner(event, "cap_costs", A)
    assert decision["owns"] is False and "marketing-monthly" in decision["why"] and "eksworkshop-monthly" in decision["why"]


def test_an_instance_starting_is_acknowledged_without_a_read_by_a_cluster_of_its_region():
    event = {**SPOT, "kind": "instance_state_change", "state": "running"}
    assert remediation_owner(event, "acknowledge", A)["owns"] is True
    assert remediation_owner(event, "acknowledge", {**A, "region": "eu-central-1"})["owns"] is False


def test_the_spot_review_is_every_clusters_own():
    assert all(remediation_owner({"review": "spot_capacity"}, "review_spot_capacity", c)["owns"] for c in (A, B, FRANKFURT))


def test_an_event_that_names_nothing_is_no_ones():
    decision = remediation_owner({"kind": "rebalance_recommendation"}, "cordon_node", A)
    assert decision == {"candidate": False, "owns": False, "why": "a rebalance_recommendation event names no instance, budget or alarm"}
