"""The AWS half on real components: the Karpenter AWS provider's controller, run as the karpenter role's
Helm release says, with the controller role's IRSA credentials, launches instances in the lab's AWS
server that join as aws:/// nodes, and handles the interruption warnings of its own queue itself."""
import json
import time

import pytest

from lab import events as lab_events
from lab import labctl
from lab.rulebook import Rulebook

from .conftest import karpenter_counter, lab_log_lines, run_playbook, wait_until

APP_NS = "nlb-app-karpenter"
LOG_START = {}


@pytest.fixture(scope="module")
def converged(lab):
    # The AWS server's log is appended to for the whole lab: this module's lines start here.
    LOG_START["aws"] = len(lab_log_lines("aws"))
    run_playbook("site.yml")
    run_playbook("event_bus.yml")
    # The tutorial scales by hand before it creates the HPA, which would scale back to its minimum.
    run_playbook("autoscaling.yml", "--tags", "hpa", extra={"hpa_state": "absent"})
    yield labctl
    run_playbook("teardown.yml", check=False)


def kube(*args):
    return json.loads(labctl.kubectl(*args, "-o", "json").stdout)


def karpenter_instances(aws, states=("pending", "running")):
    pages = aws("ec2").get_paginator("describe_instances").paginate(Filters=[
        {"Name": "tag-key", "Values": ["karpenter.sh/nodepool"]}, {"Name": "instance-state-name", "Values": list(states)}])
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def karpenter_nodes():
    return [n for n in kube("get", "nodes")["items"] if "karpenter.sh/nodepool" in n["metadata"]["labels"]]


def app_pods_running(count):
    def check():
        pods = [p for p in kube("get", "pods", "-n", APP_NS)["items"] if not p["metadata"].get("deletionTimestamp")]
        return len(pods) == count and all(p["status"].get("phase") == "Running" for p in pods) and pods
    return check


def test_the_controller_runs_with_the_releases_settings_and_irsa_credentials(converged, aws):
    env = json.loads((labctl.STATE / "karpenter-pod" / "env.json").read_text())
    deployment = kube("get", "deployment", "-n", "karpenter", "karpenter")
    rendered = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    # What the role rendered reaches the controller unchanged: cluster name, queue, batch windows.
    for name in ("CLUSTER_NAME", "INTERRUPTION_QUEUE", "BATCH_MAX_DURATION"):
        assert env[name] == rendered[name]
    sa = kube("get", "serviceaccount", "-n", "karpenter", "karpenter")
    assert env["AWS_ROLE_ARN"] == sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert env["AWS_ROLE_ARN"].endswith(":role/KarpenterControllerRole-eksworkshop")
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    node_class = kube("get", "ec2nodeclass", "default")
    ready = next(c for c in node_class["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", node_class["status"]["conditions"]
    subnets = {s["SubnetId"] for s in aws("ec2").describe_subnets(Filters=[{"Name": "tag:karpenter.sh/discovery", "Values": ["eksworkshop"]}])["Subnets"]}
    assert {s["id"] for s in node_class["status"]["subnets"]} == subnets
    assert node_class["status"]["instanceProfile"]


def test_six_replicas_launch_spot_instances_that_join_as_aws_nodes(converged, aws):
    labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=6")
    wait_until("6 app pods Running", app_pods_running(6), 240, interval=2)
    instances = [i for i in karpenter_instances(aws) if i["State"]["Name"] == "running"]
    nodes = karpenter_nodes()
    assert instances and len(nodes) == len(instances)
    by_provider = {n["spec"]["providerID"]: n for n in nodes}
    for instance in instances:
        node = by_provider[f"aws:///{instance['Placement']['AvailabilityZone']}/{instance['InstanceId']}"]
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["kubernetes.io/cluster/eksworkshop"] == "owned" and tags["karpenter.sh/nodepool"] == "default"
        # The tutorial's NodePool asks for spot: the launch and the node say spot.
        assert instance.get("InstanceLifecycle") == "spot"
        assert node["metadata"]["labels"]["karpenter.sh/capacity-type"] == "spot"
        assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == instance["InstanceType"]
    # The HPA needs metrics of every node: metrics-server sees the new ones too.
    names = {n["metadata"]["name"] for n in nodes}
    wait_until("node metrics for Karpenter's nodes", lambda: names <= {
        i["metadata"]["name"] for i in json.loads(labctl.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").stdout)["items"]}, 60)


@pytest.fixture
def rulebook_leaving_drains_to_karpenter(converged, tmp_path):
    """The rulebook as eks.example.yml runs it: Karpenter drains its nodes, the rulebook records and counts."""
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(json.dumps({"events_queue_name": "eksworkshop-cluster-events", "cost_queue_name": "eksworkshop-cost-events",
                                     "aws_region": "ap-southeast-1", "drain_owner": "karpenter", "spot_review_interval_seconds": 3600}))
    runner = Rulebook(tmp_path / "rulebook.log", vars_file=str(vars_file))
    runner.start()
    yield runner
    runner.stop()
    print(runner.log()[-5000:])
    labctl.kubectl("annotate", "nodepool", "default", "eks-autoscaling.io/spot-interruptions-", check=False)


def test_a_spot_warning_is_handled_by_karpenter_itself_and_recorded_by_the_rulebook(converged, aws, rulebook_leaving_drains_to_karpenter):
    """Karpenter's native interruption handling: the warning reaches its queue through the interruption_queue
    role's rule, the real controller taints and drains the node, terminates the instance and launches a
    replacement; the rulebook, with drain_owner karpenter, leaves the node to Karpenter, counts the warning and acknowledges."""
    victim = sorted(karpenter_nodes(), key=lambda n: n["metadata"]["name"])[0]
    name = victim["metadata"]["name"]
    instance_id = victim["spec"]["providerID"].rsplit("/", 1)[-1]
    received = karpenter_counter("karpenter_interruption_received_messages_total", message_type="spot_interrupted")
    started = time.time()
    lab_events.inject(labctl.AWS_ENDPOINT, "spot-interruption", instance_id=instance_id)

    def tainted():
        node = next((n for n in karpenter_nodes() if n["metadata"]["name"] == name), None)
        return node is None or any(t["key"] == "karpenter.sh/disrupted" for t in node["spec"].get("taints") or [])

    wait_until("Karpenter to taint the interrupted node", tainted, 60, interval=0.2)
    print(f"spot warning -> node tainted by Karpenter: {time.time() - started:.1f}s")
    assert karpenter_counter("karpenter_interruption_received_messages_total", message_type="spot_interrupted") == received + 1
    wait_until("the interrupted node gone", lambda: name not in {n["metadata"]["name"] for n in karpenter_nodes()}, 180, interval=1)
    (instance,) = aws("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"]
    assert instance["State"]["Name"] in ("shutting-down", "terminated")
    # The pods it held run again, on a replacement Karpenter launched.
    wait_until("6 app pods Running again", app_pods_running(6), 240, interval=2)
    assert all(i["InstanceId"] != instance_id for i in karpenter_instances(aws))
    # The rulebook heard the same warning on its own queue, left the node to Karpenter, counted the
    # interruption on the NodePool and acknowledged it (last). Karpenter has often removed the node by then
    # (the lab's pods go at once): the count then comes from the instance's karpenter.sh/nodepool tag in EC2.
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName="eksworkshop-cluster-events")["QueueUrl"]
    wait_until("the rulebook to acknowledge the warning", lambda: sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}, 120, interval=1)
    annotations = kube("get", "nodepool", "default")["metadata"].get("annotations") or {}
    counted = [r for r in json.loads(annotations.get("eks-autoscaling.io/spot-interruptions", "[]")) if r["id"] == instance_id]
    assert [r["type"] for r in counted] == [victim["metadata"]["labels"]["node.kubernetes.io/instance-type"]]
    assert rulebook_leaving_drains_to_karpenter.alive()


def test_back_to_one_replica_consolidation_terminates_the_instances(converged, aws):
    labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=1")
    wait_until("Karpenter's nodes gone", lambda: not karpenter_nodes(), 300, interval=3)
    assert karpenter_instances(aws) == []


def test_the_aws_server_logged_no_denial_for_the_controller_role(converged):
    denials = [line for line in lab_log_lines("aws")[LOG_START["aws"]:] if "DENIED" in line]
    assert denials == []


def test_a_token_of_another_service_account_cannot_assume_the_controller_role(converged, aws):
    labctl.kubectl("create", "serviceaccount", "-n", "default", "intruder")
    try:
        token = labctl.kubectl("create", "token", "-n", "default", "intruder", "--audience", "sts.amazonaws.com").stdout.strip()
        role = aws("iam").get_role(RoleName="KarpenterControllerRole-eksworkshop")["Role"]["Arn"]
        with pytest.raises(Exception, match="Not authorized to perform sts:AssumeRoleWithWebIdentity"):
            aws("sts").assume_role_with_web_identity(RoleArn=role, RoleSessionName="lab-test", WebIdentityToken=token)
        # The controller's own service account gets credentials: the refusal is the trust policy's.
        own = labctl.kubectl("create", "token", "-n", "karpenter", "karpenter", "--audience", "sts.amazonaws.com").stdout.strip()
        assert aws("sts").assume_role_with_web_identity(RoleArn=role, RoleSessionName="lab-test", WebIdentityToken=own)["Credentials"]["AccessKeyId"]
    finally:
        labctl.kubectl("delete", "serviceaccount", "-n", "default", "intruder", check=False)


def test_one_statement_removed_from_the_policy_stops_every_launch_with_the_denial_logged(converged, aws):
    iam = aws("iam")
    role, name = "KarpenterControllerRole-eksworkshop", "KarpenterControllerPolicy-eksworkshop"
    original = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    broken = {**original, "Statement": [s for s in original["Statement"] if s.get("Sid") != "AllowScopedEC2InstanceAccessActions"]}
    assert len(broken["Statement"]) == len(original["Statement"]) - 1
    seen = len(lab_log_lines("aws"))
    iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(broken))
    try:
        before = {i["InstanceId"] for i in karpenter_instances(aws)}
        labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=6")

        def denied_launch():
            new = lab_log_lines("aws")[seen:]
            return [line for line in new if "DENIED ec2:CreateFleet" in line or "DENIED ec2:RunInstances" in line]

        lines = wait_until("a denied launch in the AWS server's log", denied_launch, 120, interval=2)
        assert "KarpenterControllerRole-eksworkshop" in lines[0] and (":subnet/" in lines[0] or ":security-group/" in lines[0] or ":image/" in lines[0])
        assert {i["InstanceId"] for i in karpenter_instances(aws)} == before
    finally:
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(original))
        labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=1")
