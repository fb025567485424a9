"""A fleet from one inventory: each cluster is a host, and a run for one cluster never touches another's.

The fleet is the lab's cluster (eksworkshop, ap-southeast-1) and a second cluster in another region of the
same AWS server (eksworkshop-b, eu-central-1), plus a host whose inventory names an account its credentials
do not reach. The event bus is the stage played on it: it is AWS only (queues, rules, topic, alarm, budget),
so the second cluster needs no Kubernetes of its own, and each cluster's resources live in its own region
under its own names.
"""
import shutil

import pytest
import yaml

from tests.functional.conftest import REPO, changed, run_playbook

SECOND = "eksworkshop-b"
WRONG_ACCOUNT = "eksworkshop-wrong-account"


@pytest.fixture
def fleet(lab, tmp_path):
    """The lab inventory (its group_vars and the lab cluster's host_vars) with two more cluster hosts."""
    inventory = tmp_path / "fleet"
    shutil.copytree(REPO / "inventories" / "lab", inventory)
    lab_host = yaml.safe_load((inventory / "host_vars" / "eksworkshop" / "lab.yml").read_text())
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    local = hosts["eks_clusters"]["hosts"]["eksworkshop"]
    hosts["eks_clusters"]["hosts"][SECOND] = {**local, **lab_host, "eks_cluster_name": SECOND, "eks_cluster_region": "eu-central-1"}
    hosts["eks_clusters"]["hosts"][WRONG_ACCOUNT] = {**local, **lab_host, "eks_cluster_name": "eksworkshop-c",
                                                      "eks_cluster_account_id": "210987654321"}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return inventory


@pytest.fixture
def queues(aws):
    def by_region():
        return {region: sorted(aws("sqs", region).list_queues().get("QueueUrls", [])) for region in ("ap-southeast-1", "eu-central-1")}
    return by_region


def recap_hosts(result):
    return sorted(line.split()[0] for line in result.stdout.splitlines() if " : ok=" in line)


def test_limit_runs_one_cluster_and_its_removal_leaves_the_others_as_they_were(fleet, queues, aws):
    before = queues()
    try:
        created = run_playbook("event_bus.yml", "--limit", SECOND, inventory=fleet)
        assert recap_hosts(created) == [SECOND]
        after = queues()
        # The second cluster's queues, in its own region only; the lab cluster's region exactly as before.
        assert after["ap-southeast-1"] == before["ap-southeast-1"]
        new = sorted(set(after["eu-central-1"]) - set(before["eu-central-1"]))
        assert [url.rsplit("/", 1)[1] for url in new] == [f"{SECOND}-cluster-events", f"{SECOND}-cluster-events-dlq", f"{SECOND}-cost-events"]
        rules = [rule["Name"] for rule in aws("events", "eu-central-1").list_rules(NamePrefix=f"EDA-{SECOND}-")["Rules"]]
        assert rules, "the second cluster's EventBridge rules are in its region"
        assert changed(run_playbook("event_bus.yml", "--limit", SECOND, inventory=fleet)) == 0
    finally:
        removed = run_playbook("event_bus.yml", "--limit", SECOND, extra={"event_bus_state": "absent"}, inventory=fleet)
    assert recap_hosts(removed) == [SECOND]
    assert queues() == before
    assert aws("events", "eu-central-1").list_rules(NamePrefix=f"EDA-{SECOND}-")["Rules"] == []


def test_a_host_whose_credentials_reach_another_account_changes_nothing_while_the_fleet_runs(fleet, queues):
    before = queues()
    result = run_playbook("event_bus.yml", "--check", inventory=fleet, check=False)
    assert recap_hosts(result) == sorted(["eksworkshop", SECOND, WRONG_ACCOUNT])
    recap = {line.split()[0]: line for line in result.stdout.splitlines() if " : ok=" in line}
    assert "failed=1" in recap[WRONG_ACCOUNT], result.stdout[-3000:]
    assert "failed=0" in recap["eksworkshop"] and "failed=0" in recap[SECOND], result.stdout[-3000:]
    failure = result.stdout[result.stdout.find(f"fatal: [{WRONG_ACCOUNT}]"):]
    assert "eks_cluster_account_id is 210987654321" in failure and "123456789012" in failure and "nothing was changed" in failure
    # Not in check mode either: the wrong-account host stops before its first change, the others go on.
    result = run_playbook("event_bus.yml", "--limit", WRONG_ACCOUNT, inventory=fleet, check=False)
    assert result.returncode != 0 and "eks_cluster_account_id is 210987654321" in result.stdout
    assert queues() == before
