"""The lab's AWS side: the seeded tutorial account, the EKS additions, and event injection."""
import json
import subprocess
import sys
import uuid

import pytest

from lab import events

from .conftest import REPO, wait_until


def test_aws_cli_describe_cluster_returns_the_seeded_cluster(lab_env):
    out = subprocess.run(
        [sys.executable, "-m", "awscli", "eks", "describe-cluster", "--name", "eksworkshop", "--output", "json"],
        env=lab_env, capture_output=True, text=True, check=True,
    ).stdout
    cluster = json.loads(out)["cluster"]
    assert cluster["name"] == "eksworkshop"
    assert cluster["identity"]["oidc"]["issuer"].startswith("https://oidc.eks.ap-southeast-1.amazonaws.com/id/")
    assert cluster["resourcesVpcConfig"]["clusterSecurityGroupId"].startswith("sg-")
    assert len(cluster["resourcesVpcConfig"]["subnetIds"]) == 3
    assert cluster["accessConfig"]["authenticationMode"] == "API_AND_CONFIG_MAP"


def test_seeded_account_matches_the_tutorial(aws):
    eks, ec2, iam = aws("eks"), aws("ec2"), aws("iam")
    nodegroup = eks.describe_nodegroup(clusterName="eksworkshop", nodegroupName="ng-ondemand")["nodegroup"]
    assert nodegroup["capacityType"] == "ON_DEMAND"
    subnets = ec2.describe_subnets(SubnetIds=nodegroup["subnets"])["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in subnets) == ["ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"]
    issuer = eks.describe_cluster(name="eksworkshop")["cluster"]["identity"]["oidc"]["issuer"]
    providers = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    assert any(arn.endswith(issuer.removeprefix("https://")) for arn in providers)


def test_node_provider_ids_are_seeded_instances(aws, kube_json):
    instance_ids = {
        i["InstanceId"]
        for r in aws("ec2").describe_instances(Filters=[{"Name": "tag:eks:nodegroup-name", "Values": ["ng-ondemand"]}])["Reservations"]
        for i in r["Instances"]
    }
    nodes = kube_json("nodes", "-l", "eks.amazonaws.com/nodegroup=ng-ondemand")["items"]
    assert {n["spec"]["providerID"].rsplit("/", 1)[-1] for n in nodes} == instance_ids


@pytest.fixture
def scratch_cluster(aws):
    """A second EKS cluster, so the extension tests never touch eksworkshop."""
    eks, ec2, iam = aws("eks"), aws("ec2"), aws("iam")
    name = f"scratch-{uuid.uuid4().hex[:6]}"
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    role = iam.create_role(RoleName=f"{name}-cluster", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    eks.create_cluster(name=name, roleArn=role, resourcesVpcConfig={"subnetIds": [subnet]},
                       accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"})
    yield name, role
    eks.delete_cluster(name=name)
    iam.delete_role(RoleName=f"{name}-cluster")


def test_access_entries_follow_the_eks_api(aws, scratch_cluster):
    eks = aws("eks")
    name, role = scratch_cluster
    entry = eks.create_access_entry(clusterName=name, principalArn=role, type="EC2_LINUX")["accessEntry"]
    assert entry["username"] == "system:node:{{EC2PrivateDNSName}}"
    assert entry["accessEntryArn"].startswith(f"arn:aws:eks:ap-southeast-1:123456789012:access-entry/{name}/role/")
    with pytest.raises(eks.exceptions.ResourceInUseException):
        eks.create_access_entry(clusterName=name, principalArn=role, type="EC2_LINUX")
    with pytest.raises(eks.exceptions.InvalidParameterException):
        eks.create_access_entry(clusterName=name, principalArn=role.replace("-cluster", "-x"), type="EC2_LINUX",
                                kubernetesGroups=["system:masters"])
    assert eks.list_access_entries(clusterName=name)["accessEntries"] == [role]
    assert eks.describe_access_entry(clusterName=name, principalArn=role)["accessEntry"]["type"] == "EC2_LINUX"
    eks.delete_access_entry(clusterName=name, principalArn=role)
    with pytest.raises(eks.exceptions.ResourceNotFoundException):
        eks.describe_access_entry(clusterName=name, principalArn=role)


def test_access_entries_need_an_api_authentication_mode(aws):
    eks, ec2, iam = aws("eks"), aws("ec2"), aws("iam")
    name = f"cfgmap-{uuid.uuid4().hex[:6]}"
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    eks.create_cluster(name=name, roleArn=role, resourcesVpcConfig={"subnetIds": [ec2.describe_subnets()["Subnets"][0]["SubnetId"]]})
    try:
        assert eks.describe_cluster(name=name)["cluster"]["accessConfig"]["authenticationMode"] == "CONFIG_MAP"
        with pytest.raises(eks.exceptions.InvalidRequestException):
            eks.create_access_entry(clusterName=name, principalArn=role)
        eks.update_cluster_config(name=name, accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"})
        assert eks.create_access_entry(clusterName=name, principalArn=role)["accessEntry"]["type"] == "STANDARD"
        with pytest.raises(eks.exceptions.InvalidParameterException):
            eks.update_cluster_config(name=name, accessConfig={"authenticationMode": "CONFIG_MAP"})
    finally:
        eks.delete_cluster(name=name)
        iam.delete_role(RoleName=name)


def test_pod_identity_associations_follow_the_eks_api(aws, scratch_cluster):
    eks = aws("eks")
    name, role = scratch_cluster
    association = eks.create_pod_identity_association(
        clusterName=name, namespace="karpenter", serviceAccount="karpenter", roleArn=role
    )["association"]
    assert association["associationId"].startswith("a-") and len(association["associationId"]) == 19
    with pytest.raises(eks.exceptions.ResourceInUseException):
        eks.create_pod_identity_association(clusterName=name, namespace="karpenter", serviceAccount="karpenter", roleArn=role)
    with pytest.raises(eks.exceptions.InvalidParameterException):
        eks.create_pod_identity_association(clusterName=name, namespace="other", serviceAccount="sa", roleArn="not-an-arn")
    listed = eks.list_pod_identity_associations(clusterName=name, namespace="karpenter")["associations"]
    assert [a["associationId"] for a in listed] == [association["associationId"]]
    assert eks.list_pod_identity_associations(clusterName=name, namespace="nope")["associations"] == []
    deleted = eks.delete_pod_identity_association(clusterName=name, associationId=association["associationId"])
    assert deleted["association"]["serviceAccount"] == "karpenter"
    with pytest.raises(eks.exceptions.ResourceNotFoundException):
        eks.describe_pod_identity_association(clusterName=name, associationId=association["associationId"])


@pytest.fixture
def event_queue(aws):
    """An SQS queue fed by an EventBridge rule for the 4 EC2/Health event types, as the roles will build."""
    sqs, eb = aws("sqs"), aws("events")
    name = f"labtest-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    patterns = {
        "spot": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
        "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
        "state": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
        "health": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    }
    for suffix, pattern in patterns.items():
        eb.put_rule(Name=f"{name}-{suffix}", EventPattern=json.dumps(pattern))
        eb.put_targets(Rule=f"{name}-{suffix}", Targets=[{"Id": "queue", "Arn": arn}])
    yield url
    for suffix in patterns:
        eb.remove_targets(Rule=f"{name}-{suffix}", Ids=["queue"])
        eb.delete_rule(Name=f"{name}-{suffix}")
    sqs.delete_queue(QueueUrl=url)


def _receive_all(sqs, url, expected, timeout=15):
    bodies = []

    def got_all():
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(bodies) >= expected

    wait_until(f"{expected} messages", got_all, timeout, interval=0)
    return bodies


def test_injected_spot_warning_arrives_in_sqs(aws, kube_json, event_queue):
    node = kube_json("nodes", "-l", "eks.amazonaws.com/nodegroup=ng-ondemand")["items"][0]
    instance_id = node["spec"]["providerID"].rsplit("/", 1)[-1]
    result = subprocess.run(
        [sys.executable, "-m", "lab.labctl", "inject", "spot-interruption", "--node", node["metadata"]["name"]],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    assert json.loads(result.stdout)["instance_id"] == instance_id
    (body,) = _receive_all(aws("sqs"), event_queue, 1)
    assert body["detail-type"] == "EC2 Spot Instance Interruption Warning"
    assert body["source"] == "aws.ec2"
    assert body["region"] == "ap-southeast-1"
    assert body["detail"] == {"instance-id": instance_id, "instance-action": "terminate"}
    assert body["resources"] == [f"arn:aws:ec2:{node['metadata']['labels']['topology.kubernetes.io/zone']}:123456789012:instance/{instance_id}"]


def test_every_ec2_and_health_event_type_is_routed(lab, aws, event_queue):
    instance_id = json.loads(lab.AWS_FACTS.read_text())["instances"][1]["instance_id"]
    for kind in ("rebalance-recommendation", "instance-state-change", "scheduled-change"):
        events.inject(lab.AWS_ENDPOINT, kind, instance_id=instance_id, state="stopping")
    bodies = _receive_all(aws("sqs"), event_queue, 3)
    by_type = {b["detail-type"]: b for b in bodies}
    assert by_type["EC2 Instance Rebalance Recommendation"]["detail"] == {"instance-id": instance_id}
    assert by_type["EC2 Instance State-change Notification"]["detail"] == {"instance-id": instance_id, "state": "stopping"}
    health = by_type["AWS Health Event"]
    assert health["source"] == "aws.health"
    assert health["detail"]["eventTypeCategory"] == "scheduledChange"
    assert health["detail"]["affectedEntities"] == [{"entityValue": instance_id, "status": "PENDING"}]


def test_alarm_and_budget_notifications_arrive_through_sns(lab, aws):
    sns, sqs = aws("sns", "us-east-1"), aws("sqs", "us-east-1")
    topic = sns.create_topic(Name=f"labtest-cost-{uuid.uuid4().hex[:6]}")["TopicArn"]
    url = sqs.create_queue(QueueName=f"labtest-cost-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    try:
        events.inject(lab.AWS_ENDPOINT, "billing-alarm", topic_arn=topic, state="ALARM")
        events.inject(lab.AWS_ENDPOINT, "budget-alert", topic_arn=topic)
        envelopes = _receive_all(sqs, url, 2)
        assert all(e["Type"] == "Notification" and e["TopicArn"] == topic for e in envelopes)
        alarm = next(json.loads(e["Message"]) for e in envelopes if e["Subject"].startswith("ALARM"))
        assert alarm["NewStateValue"] == "ALARM" and alarm["Trigger"]["MetricName"] == "EstimatedCharges"
        budget = next(e for e in envelopes if e["Subject"].startswith("AWS Budgets"))
        assert "Budget Name: eksworkshop-monthly" in budget["Message"]
    finally:
        sqs.delete_queue(QueueUrl=url)
        sns.delete_topic(TopicArn=topic)
