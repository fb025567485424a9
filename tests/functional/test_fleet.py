"""A fleet from one inventory: each cluster is a host, and a run for one cluster never touches another's.

The fleet is the lab's cluster (eksworkshop, ap-southeast-1) and a second cluster in another region of the
same AWS server (eksworkshop-b, eu-central-1), plus a host whose inventory names an account its credentials
do not reach. The event bus is the stage played on it: it is AWS only (queues, rules, topic, alarm, budget),
so the second cluster needs no Kubernetes of its own, and each cluster's resources live in its own region
under its own names.
"""
import json
import random
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


# -- one remediation entry point for the fleet ---------------------------------------------------------------------


@pytest.fixture
def queue(aws):
    """A queue of the lab cluster's region holding one received message: the event's, as the source holds it."""
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName=f"fleet-events-{random.randrange(16 ** 6):06x}")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    message = sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"][0]

    def left():
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(value) for value in attributes.values())

    yield {"queue_url": url, "region": "ap-southeast-1", "receipt_handle": message["ReceiptHandle"],
           "message_id": message["MessageId"]}, left
    sqs.delete_queue(QueueUrl=url)


def said(result):
    """The run's output with YAML's line folding undone (the callback wraps long messages)."""
    return " ".join(result.stdout.split())


def changed_tasks(result):
    """{host: [task names that reported changed on it]} from the run's output."""
    tasks, task = {}, None
    for line in result.stdout.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):line.rfind("]")]
        elif line.startswith("changed: ["):
            tasks.setdefault(line[len("changed: ["):line.index("]")], []).append(task)
    return tasks


def remediate(inventory, tmp_path, action, event):
    event_file = tmp_path / f"event-{random.randrange(16 ** 6):06x}.json"
    event_file.write_text(json.dumps({"remediation_event": event}))
    return run_playbook("remediation/remediate.yml", "-e", f"remediation_action={action}", "-e", f"@{event_file}", inventory=inventory)


def cordoned(kube_json):
    return sorted(node["metadata"]["name"] for node in kube_json("nodes")["items"] if node["spec"].get("unschedulable"))


def rebalance(instance_id, region, sqs):
    return {"kind": "rebalance_recommendation", "account": "123456789012", "region": region, "instance_id": instance_id,
            "instance_ids": [instance_id], "dedup_key": f"rebalance_recommendation:{instance_id}",
            "time": "2026-12-08T01:00:00Z", "sqs": sqs}


def test_one_rulebook_for_the_fleet_acts_on_the_cluster_that_owns_the_instance_only(fleet, queue, tainted_node, kube_json, tmp_path):
    sqs, left = queue
    name, instance_id = tainted_node
    before = cordoned(kube_json)
    result = remediate(fleet, tmp_path, "cordon_node", rebalance(instance_id, "ap-southeast-1", sqs))
    # Placed with no API call on the other two: another region, another account.
    assert f"acting: node(s) {name} of eksworkshop run the instance(s)" in said(result)
    assert "not acting: instance event of ap-southeast-1, eksworkshop-b is in eu-central-1" in said(result)
    assert "not acting: event of account 123456789012, eksworkshop-c is in 210987654321" in said(result)
    assert cordoned(kube_json) == sorted(before + [name])
    assert left() == 0, "acknowledged once the owner succeeded"
    # The owner cordoned; the message was deleted once (run_once, by the first host of the play).
    assert changed_tasks(result) == {"eksworkshop": ["remediation : Cordon the nodes, all in one call, so nothing new lands on them",
                                                     "remediation : Record a Kubernetes Event on each object the remediation touched",
                                                     "remediation : Acknowledge the event's message"]}, result.stdout[-3000:]


def test_an_event_for_the_second_cluster_changes_nothing_on_the_lab_cluster(fleet, queue, aws, kube_json, tmp_path):
    """The second cluster's instance (eu-central-1, Karpenter's tags): the lab cluster is ruled out by region, the
    second cluster owns it by its tag though no node of it runs there, and nothing in the lab cluster changes."""
    sqs, left = queue
    ec2 = aws("ec2", "eu-central-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[{
        "ResourceType": "instance", "Tags": [{"Key": f"kubernetes.io/cluster/{SECOND}", "Value": "owned"},
                                             {"Key": "eks:eks-cluster-name", "Value": SECOND}]}])["Instances"][0]["InstanceId"]
    try:
        before = kube_json("nodes")["items"]
        result = remediate(fleet, tmp_path, "cordon_node", rebalance(instance_id, "eu-central-1", sqs))
        assert f"acting: instance(s) {instance_id} tagged for {SECOND} (no node left)" in said(result)
        assert "not acting: instance event of eu-central-1, eksworkshop is in ap-southeast-1" in said(result)
        # Nothing changed anywhere but the message, deleted once by the first host of the play.
        assert changed_tasks(result) == {"eksworkshop": ["remediation : Acknowledge the event's message"]}, result.stdout[-3000:]
        assert [(n["metadata"]["name"], n["metadata"]["resourceVersion"]) for n in kube_json("nodes")["items"]] == [
            (n["metadata"]["name"], n["metadata"]["resourceVersion"]) for n in before]
        assert left() == 0
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])


def test_an_event_no_cluster_owns_is_recorded_and_acknowledged(fleet, queue, kube_json, tmp_path):
    sqs, left = queue
    stranger = f"i-{random.randrange(16 ** 17):017x}"
    before = kube_json("nodes")["items"]
    result = remediate(fleet, tmp_path, "drain_node", {**rebalance(stranger, "ap-southeast-1", sqs), "kind": "spot_interruption"})
    assert "no cluster of this inventory owns spot_interruption" in said(result)
    assert f"no node of eksworkshop runs {stranger} and no instance is tagged for it" in said(result)
    assert "acknowledged, nothing changed" in said(result)
    assert changed_tasks(result) == {"eksworkshop": ["remediation : Acknowledge the event's message"]}, result.stdout[-3000:]
    assert left() == 0
    assert [n["metadata"]["resourceVersion"] for n in kube_json("nodes")["items"]] == [n["metadata"]["resourceVersion"] for n in before]
